// Deadline: "wait up to T" turned into "how long is left", for loops that wait several times.
#ifndef ZMQKIT_SRC_UTIL_DEADLINE_H_
#define ZMQKIT_SRC_UTIL_DEADLINE_H_

#include <algorithm>
#include <chrono>

namespace zmqkit::internal {

class Deadline {
 public:
  // A negative timeout never expires: remaining() stays negative, which zmq_poll reads as "forever".
  explicit Deadline(std::chrono::milliseconds timeout)
      : forever_(timeout < std::chrono::milliseconds(0)),
        at_(std::chrono::steady_clock::now() + std::max(timeout, std::chrono::milliseconds(0))) {}

  // Milliseconds left, rounded up so a wait never ends just short of the deadline; zero once it has
  // passed; negative if the deadline is "forever".
  std::chrono::milliseconds remaining() const {
    if (forever_) return std::chrono::milliseconds(-1);
    return std::max(std::chrono::ceil<std::chrono::milliseconds>(at_ -
                                                                 std::chrono::steady_clock::now()),
                    std::chrono::milliseconds(0));
  }
  bool expired() const { return remaining() == std::chrono::milliseconds(0); }

 private:
  bool forever_;
  std::chrono::steady_clock::time_point at_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_UTIL_DEADLINE_H_
