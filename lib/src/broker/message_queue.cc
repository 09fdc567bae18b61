#include "broker/message_queue.h"

#include <algorithm>

namespace zmqkit::internal {
namespace {

std::size_t MessageBytes(const Envelope& envelope, const std::string& reply_to) {
  std::size_t bytes = envelope.body.size() + envelope.stream.size() + reply_to.size();
  for (const auto& [key, value] : envelope.headers) bytes += key.size() + value.size();
  return bytes;
}

}  // namespace

std::string_view FailureReasonName(FailureReason reason) {
  switch (reason) {
    case FailureReason::kRejected: return "rejected";
    case FailureReason::kTimedOut: return "timeout";
    case FailureReason::kConsumerLost: return "consumer-lost";
  }
  return "unknown";
}

std::string_view DeadLetterReasonName(DeadLetterReason reason) {
  switch (reason) {
    case DeadLetterReason::kRejected: return "rejected";
    case DeadLetterReason::kExpired: return "expired";
    case DeadLetterReason::kMaxAttempts: return "max-attempts";
  }
  return "unknown";
}

MessageQueue::MessageQueue(std::string name, const QueueOptions& options)
    : name_(std::move(name)), options_(options) {}

Status MessageQueue::CheckRoom(const Envelope& envelope, const EnqueueOptions& options) const {
  const std::size_t bytes = MessageBytes(envelope, options.reply_to);
  if (entries_.size() >= options_.max_length || bytes_ + bytes > options_.max_bytes) {
    return Status::ResourceExhausted("queue \"" + name_ + "\" is full (" +
                                     std::to_string(entries_.size()) + " messages, " +
                                     std::to_string(bytes_) + " bytes)");
  }
  return Status::Ok();
}

Result<std::uint64_t> MessageQueue::Publish(Envelope envelope, EnqueueOptions options,
                                            TimePoint now) {
  if (Status room = CheckRoom(envelope, options); !room.ok() && !options.ignore_limits) {
    ++counters_.refused_full;
    return room;
  }
  const std::size_t bytes = MessageBytes(envelope, options.reply_to);
  const std::uint64_t number = options.number.value_or(next_number_);
  next_number_ = std::max(next_number_, number + 1);
  Entry& entry = entries_[number];
  entry.envelope = std::move(envelope);
  if (!options.reply_to.empty()) entry.mutable_extras().reply_to = std::move(options.reply_to);
  entry.bytes = bytes;
  entry.order = number;
  bytes_ += bytes;
  std::optional<Duration> ttl = options.ttl;
  if (!ttl && options_.message_ttl.count() > 0) ttl = options_.message_ttl;
  if (ttl) {
    entry.expires_at = now + *ttl;
    expiries_.emplace(*entry.expires_at, number);
  }
  ++counters_.published;
  if (options.delay && options.delay->count() > 0) {
    MakeDelayed(number, entry, now + *options.delay);
  } else {
    MakeReady(number, entry);
  }
  return number;
}

void MessageQueue::MakeReady(std::uint64_t number, Entry& entry) {
  entry.place = Place::kReady;
  ready_[entry.envelope.priority].emplace(entry.order, number);
  ++ready_count_;
}

void MessageQueue::MakeDelayed(std::uint64_t number, Entry& entry, TimePoint due) {
  entry.place = Place::kDelayed;
  entry.due = due;
  delayed_.emplace(due, number);
}

void MessageQueue::Erase(std::uint64_t number) {
  auto it = entries_.find(number);
  Entry& entry = it->second;
  switch (entry.place) {
    case Place::kReady:
      ready_[entry.envelope.priority].erase({entry.order, number});
      --ready_count_;
      break;
    case Place::kDelayed:
      delayed_.erase({entry.due, number});
      break;
    case Place::kInFlight:
      in_flight_.erase(entry.tag);
      deadlines_.erase({entry.deadline, entry.tag});
      break;
  }
  if (entry.expires_at) expiries_.erase({*entry.expires_at, number});
  bytes_ -= entry.bytes;
  entries_.erase(it);
}

std::optional<MessageQueue::Lease> MessageQueue::LeaseNext(std::uint64_t tag, TimePoint now,
                                                           Duration ack_timeout) {
  for (int priority = kMaxPriority; priority >= 0; --priority) {
    auto& ready = ready_[priority];
    if (ready.empty()) continue;
    const std::uint64_t number = ready.begin()->second;
    ready.erase(ready.begin());
    --ready_count_;
    Entry& entry = entries_.at(number);
    if (entry.expires_at) expiries_.erase({*entry.expires_at, number});
    entry.place = Place::kInFlight;
    entry.tag = tag;
    entry.deadline = now + ack_timeout;
    ++entry.envelope.attempt;
    in_flight_.emplace(tag, number);
    deadlines_.emplace(entry.deadline, tag);
    ++counters_.delivered;
    return Lease{tag, number, entry.envelope.Clone(), entry.reply_to(), entry.deadline};
  }
  return std::nullopt;
}

std::optional<std::uint64_t> MessageQueue::Ack(std::uint64_t tag) {
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) return std::nullopt;
  const std::uint64_t number = it->second;
  Erase(number);
  ++counters_.acked;
  return number;
}

MessageQueue::FailResult MessageQueue::Fail(std::uint64_t tag, FailureReason reason, bool requeue,
                                            TimePoint now) {
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) return {};
  const std::uint64_t number = it->second;
  Entry& entry = entries_.at(number);
  in_flight_.erase(it);
  deadlines_.erase({entry.deadline, tag});
  entry.AddFailure(FailureReasonName(reason));
  ++entry.failures;
  // Out of flight; until placed again below, it is "delayed" in no index, which Erase tolerates.
  entry.place = Place::kDelayed;
  entry.due = TimePoint::min();
  const std::uint32_t attempt = entry.envelope.attempt;
  if (!requeue) return {true, number, attempt, Kill(number, DeadLetterReason::kRejected)};
  return {true, number, attempt, Requeue(number, reason, now)};
}

std::optional<DeadLetter> MessageQueue::Requeue(std::uint64_t number, FailureReason reason,
                                                TimePoint now) {
  Entry& entry = entries_.at(number);
  if (options_.max_attempts != 0 && entry.envelope.attempt >= options_.max_attempts) {
    return Kill(number, DeadLetterReason::kMaxAttempts);
  }
  if (entry.expires_at && *entry.expires_at <= now) {
    ++counters_.expired;
    return Kill(number, DeadLetterReason::kExpired);
  }
  ++counters_.requeued;
  if (entry.expires_at) expiries_.emplace(*entry.expires_at, number);
  // Only a NACK backs off: the consumer said the message failed, and retrying at once would likely
  // fail again. A lost consumer or an expired lease says nothing about the message, and the ack
  // timeout was already the wait (as SQS redelivers at the visibility timeout, not after it).
  const Duration delay =
      reason == FailureReason::kRejected ? RetryDelay(entry.failures) : Duration::zero();
  if (delay > Duration::zero()) {
    entry.requeued = true;
    MakeDelayed(number, entry, now + delay);
  } else {
    MakeReady(number, entry);
  }
  return std::nullopt;
}

Duration MessageQueue::RetryDelay(std::uint32_t failures) const {
  Duration delay = options_.retry_delay;
  for (std::uint32_t i = 1; i < failures && delay < Duration(options_.max_retry_delay); ++i) {
    delay *= 2;
  }
  return std::min(delay, Duration(options_.max_retry_delay));
}

DeadLetter MessageQueue::Kill(std::uint64_t number, DeadLetterReason reason) {
  Entry& entry = entries_.at(number);
  DeadLetter dead{std::move(entry.envelope), reason, number};
  dead.envelope.headers[std::string(kHeaderOriginQueue)] = name_;
  dead.envelope.headers[std::string(kHeaderDeathReason)] = DeadLetterReasonName(reason);
  dead.envelope.headers[std::string(kHeaderAttempts)] = std::to_string(dead.envelope.attempt);
  dead.envelope.headers[std::string(kHeaderAttemptHistory)] = entry.history();
  Erase(number);
  ++counters_.dead_lettered;
  return dead;
}

bool MessageQueue::Extend(std::uint64_t tag, TimePoint deadline) {
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) return false;
  Entry& entry = entries_.at(it->second);
  deadlines_.erase({entry.deadline, tag});
  entry.deadline = deadline;
  deadlines_.emplace(deadline, tag);
  return true;
}

MessageQueue::TickResult MessageQueue::Tick(TimePoint now) {
  TickResult result;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const std::uint64_t tag = deadlines_.begin()->second;
    auto failed = Fail(tag, FailureReason::kTimedOut, /*requeue=*/true, now);
    result.timed_out.push_back({tag, failed.number, failed.attempt});
    if (failed.dead) result.dead.push_back(std::move(*failed.dead));
  }
  while (!expiries_.empty() && expiries_.begin()->first <= now) {
    ++counters_.expired;
    result.dead.push_back(Kill(expiries_.begin()->second, DeadLetterReason::kExpired));
  }
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    const std::uint64_t number = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    Entry& entry = entries_.at(number);
    if (!entry.requeued) entry.order = next_number_++;
    entry.requeued = false;
    MakeReady(number, entry);
  }
  return result;
}

std::optional<TimePoint> MessageQueue::NextDeadline() const {
  std::optional<TimePoint> next;
  auto consider = [&](TimePoint at) {
    if (!next || at < *next) next = at;
  };
  if (!deadlines_.empty()) consider(deadlines_.begin()->first);
  if (!expiries_.empty()) consider(expiries_.begin()->first);
  if (!delayed_.empty()) consider(delayed_.begin()->first);
  return next;
}

std::vector<std::uint64_t> MessageQueue::Purge() {
  std::vector<std::uint64_t> doomed;
  for (const auto& [number, entry] : entries_) {
    if (entry.place != Place::kInFlight) doomed.push_back(number);
  }
  std::sort(doomed.begin(), doomed.end());
  for (std::uint64_t number : doomed) Erase(number);
  counters_.purged += doomed.size();
  return doomed;
}

std::vector<std::pair<std::uint64_t, Envelope>> MessageQueue::TakeReady(std::size_t limit) {
  std::vector<std::pair<std::uint64_t, Envelope>> taken;
  for (int priority = kMaxPriority; priority >= 0 && taken.size() < limit; --priority) {
    while (!ready_[priority].empty() && taken.size() < limit) {
      const std::uint64_t number = ready_[priority].begin()->second;
      taken.emplace_back(number, std::move(entries_.at(number).envelope));
      Erase(number);
    }
  }
  return taken;
}

bool MessageQueue::RestoreFailure(std::uint64_t number, std::uint32_t attempt,
                                  FailureReason reason) {
  auto it = entries_.find(number);
  if (it == entries_.end()) return false;
  Entry& entry = it->second;
  entry.envelope.attempt = attempt;
  entry.AddFailure(FailureReasonName(reason));
  ++entry.failures;
  ++counters_.requeued;
  return true;
}

std::optional<DeadLetter> MessageQueue::KillNumber(std::uint64_t number, DeadLetterReason reason) {
  if (!entries_.contains(number)) return std::nullopt;
  if (reason == DeadLetterReason::kExpired) ++counters_.expired;
  return Kill(number, reason);
}

bool MessageQueue::Remove(std::uint64_t number) {
  if (!entries_.contains(number)) return false;
  Erase(number);
  ++counters_.purged;
  return true;
}

bool MessageQueue::Settle(std::uint64_t number) {
  if (!entries_.contains(number)) return false;
  Erase(number);
  ++counters_.acked;
  return true;
}

std::vector<MessageQueue::MessageView> MessageQueue::Contents() const {
  std::vector<MessageView> contents;
  auto view = [&](std::uint64_t number, std::string_view place) {
    const Entry& entry = entries_.at(number);
    contents.push_back({number, place, entry.envelope.priority, entry.envelope.attempt,
                        entry.history(), entry.envelope.headers,
                        std::string(entry.envelope.body_view())});
  };
  for (int priority = kMaxPriority; priority >= 0; --priority) {
    for (const auto& [order, number] : ready_[priority]) view(number, "ready");
  }
  for (const auto& [due, number] : delayed_) view(number, "delayed");
  std::vector<std::uint64_t> flying;
  for (const auto& [tag, number] : in_flight_) flying.push_back(number);
  std::sort(flying.begin(), flying.end());
  for (std::uint64_t number : flying) view(number, "in-flight");
  return contents;
}

std::vector<MessageQueue::SnapshotEntry> MessageQueue::SnapshotEntries() const {
  std::vector<SnapshotEntry> entries;
  entries.reserve(entries_.size());
  for (const auto& [number, entry] : entries_) {
    const bool flying = entry.place == Place::kInFlight;
    entries.push_back({number, &entry.envelope, &entry.reply_to(),
                       entry.place == Place::kDelayed ? std::optional(entry.due) : std::nullopt,
                       entry.expires_at,
                       flying && entry.envelope.attempt > 0 ? entry.envelope.attempt - 1
                                                            : entry.envelope.attempt,
                       &entry.history()});
  }
  std::sort(entries.begin(), entries.end(),
            [](const SnapshotEntry& a, const SnapshotEntry& b) { return a.number < b.number; });
  return entries;
}

bool MessageQueue::RestoreState(std::uint64_t number, std::uint32_t attempt,
                                const std::string& history) {
  auto it = entries_.find(number);
  if (it == entries_.end()) return false;
  it->second.envelope.attempt = attempt;
  if (!history.empty()) it->second.mutable_extras().history = history;
  else if (it->second.extras) it->second.extras->history.clear();
  it->second.failures = history.empty()
                            ? 0
                            : static_cast<std::uint32_t>(std::count(history.begin(), history.end(), ',') + 1);
  return true;
}

const Envelope* MessageQueue::PeekReady() const {
  for (int priority = kMaxPriority; priority >= 0; --priority) {
    if (!ready_[priority].empty()) return &entries_.at(ready_[priority].begin()->second).envelope;
  }
  return nullptr;
}

std::optional<Envelope> MessageQueue::Take(std::uint64_t number) {
  auto it = entries_.find(number);
  if (it == entries_.end()) return std::nullopt;
  Envelope envelope = std::move(it->second.envelope);
  Erase(number);
  return envelope;
}

}  // namespace zmqkit::internal
