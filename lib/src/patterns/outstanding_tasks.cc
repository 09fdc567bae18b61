#include "zmqkit/outstanding_tasks.h"

namespace zmqkit {

OutstandingTasks::OutstandingTasks(std::chrono::steady_clock::duration resend_after,
                                   std::uint32_t max_attempts)
    : resend_after_(resend_after), max_attempts_(max_attempts) {}

bool OutstandingTasks::IsLive(const Deadline& deadline) const {
  auto it = tasks_.find(deadline.id);
  return it != tasks_.end() && it->second.generation == deadline.generation;
}

void OutstandingTasks::Arm(const MessageId& id, Task& task, TimePoint now) {
  task.generation = next_generation_++;
  deadlines_.push_back({now + resend_after_, id, task.generation});
}

void OutstandingTasks::DropStaleFront() {
  while (!deadlines_.empty() && !IsLive(deadlines_.front())) deadlines_.pop_front();
}

bool OutstandingTasks::Track(const MessageId& id, TimePoint now) {
  auto [it, inserted] = tasks_.try_emplace(id, Task{1, 0});
  if (!inserted) return false;
  Arm(id, it->second, now);
  return true;
}

bool OutstandingTasks::Complete(const MessageId& id) {
  if (tasks_.erase(id) == 0) return false;
  DropStaleFront();
  return true;
}

OutstandingTasks::Expired OutstandingTasks::Expire(TimePoint now) {
  Expired expired;
  while (!deadlines_.empty() && deadlines_.front().at <= now) {
    Deadline due = deadlines_.front();
    deadlines_.pop_front();
    auto it = tasks_.find(due.id);
    if (it == tasks_.end() || it->second.generation != due.generation) continue;
    if (max_attempts_ != 0 && it->second.attempts >= max_attempts_) {
      expired.abandoned.push_back(due.id);
      tasks_.erase(it);
      continue;
    }
    ++it->second.attempts;
    Arm(due.id, it->second, now);
    expired.resend.push_back(due.id);
  }
  DropStaleFront();
  return expired;
}

std::optional<TimePoint> OutstandingTasks::NextDeadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.front().at;
}

std::uint32_t OutstandingTasks::attempts(const MessageId& id) const {
  auto it = tasks_.find(id);
  return it == tasks_.end() ? 0 : it->second.attempts;
}

}  // namespace zmqkit
