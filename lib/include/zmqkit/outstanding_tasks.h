// OutstandingTasks: which sent tasks are still unfinished, and which are overdue for a resend.
//
// The brokerless reliability pattern keeps this state in the producer: every task sent is tracked
// until its completion comes back; one not completed within `resend_after` is sent again, up to
// `max_attempts` times. Pure logic, no sockets, no clock reads: callers pass `now`.
//
// With one timeout for every task, deadlines are in send order, so a FIFO of deadlines is already
// sorted: Expire() pops from the front and stops at the first live entry (zloop's "ticket" timers).
// Completion removes a task from the index and leaves its FIFO entry to be skipped later.
#ifndef ZMQKIT_OUTSTANDING_TASKS_H_
#define ZMQKIT_OUTSTANDING_TASKS_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "zmqkit/clock.h"
#include "zmqkit/message_id.h"

namespace zmqkit {

class OutstandingTasks {
 public:
  struct Expired {
    std::vector<MessageId> resend;     // overdue; re-armed, the caller must send them again
    std::vector<MessageId> abandoned;  // overdue after max_attempts sends; no longer tracked
  };

  // `max_attempts` 0 means resend forever.
  OutstandingTasks(std::chrono::steady_clock::duration resend_after, std::uint32_t max_attempts);

  // Starts tracking a task sent at `now` (its first attempt). Returns false, changing nothing, if
  // `id` is already tracked.
  bool Track(const MessageId& id, TimePoint now);
  // Marks a task done. Returns false if it was not outstanding: already completed, abandoned, or
  // never tracked (a duplicate or stray completion).
  bool Complete(const MessageId& id);
  // Tasks whose deadline is at or before `now`. Those resent get a new deadline now+resend_after
  // and one more attempt. REQUIRES: `now` never goes backwards between calls.
  Expired Expire(TimePoint now);

  // The earliest deadline, if anything is outstanding.
  std::optional<TimePoint> NextDeadline() const;
  // Sends so far for `id` (1 after Track), or 0 if it is not tracked.
  std::uint32_t attempts(const MessageId& id) const;
  std::size_t size() const { return tasks_.size(); }

 private:
  struct Task {
    std::uint32_t attempts;
    std::uint64_t generation;  // which deadline entry is current; older ones are stale
  };
  struct Deadline {
    TimePoint at;
    MessageId id;
    std::uint64_t generation;
  };

  bool IsLive(const Deadline& deadline) const;
  void Arm(const MessageId& id, Task& task, TimePoint now);
  void DropStaleFront();

  std::chrono::steady_clock::duration resend_after_;
  std::uint32_t max_attempts_;
  std::uint64_t next_generation_ = 0;
  std::unordered_map<MessageId, Task, MessageIdHash> tasks_;
  // In deadline order. Invariant: empty, or the front entry is live.
  std::deque<Deadline> deadlines_;
};

}  // namespace zmqkit

#endif  // ZMQKIT_OUTSTANDING_TASKS_H_
