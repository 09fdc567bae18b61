// Clock: where time comes from, injectable so deadline logic is tested without sleeping.
//
// State machines (OutstandingTasks, and later the broker's queues) never read a clock: time is passed
// in. The socket loops that drive them hold a Clock&, which is a SteadyClock in programs and a
// ManualClock in tests.
#ifndef ZMQKIT_CLOCK_H_
#define ZMQKIT_CLOCK_H_

#include <chrono>

namespace zmqkit {

using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
};

// A clock that moves only when told to. Not thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint{}) : now_(start) {}
  TimePoint Now() const override { return now_; }
  void Advance(std::chrono::steady_clock::duration by) { now_ += by; }

 private:
  TimePoint now_;
};

}  // namespace zmqkit

#endif  // ZMQKIT_CLOCK_H_
