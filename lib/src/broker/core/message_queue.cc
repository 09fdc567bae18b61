#include "broker/core/message_queue.h"

#include <algorithm>
#include <cstring>

namespace zmqkit::internal {
namespace {

std::size_t MessageBytes(const Envelope& envelope, std::string_view reply_to) {
  std::size_t bytes = envelope.body.size() + envelope.stream.size() + reply_to.size();
  for (const auto& [key, value] : envelope.headers) bytes += key.size() + value.size();
  return bytes;
}

// Pool blocks double from this size up to the cap, so a queue holding a few messages costs a few
// records and a deep one a block allocation per thousands of messages.
constexpr std::size_t kFirstBlockRecords = 8;
constexpr std::size_t kMaxBlockRecords = 4096;
// The index is compacted when it holds this many slots more than twice the messages in it.
constexpr std::size_t kIndexSlack = 4096;

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

// --- storage ---------------------------------------------------------------------------------

MessageQueue::Record* MessageQueue::RecordPool::Allocate() {
  if (!free_.empty()) {
    Record* record = free_.back();
    free_.pop_back();
    return record;
  }
  if (used_in_last_ == last_block_size_) {
    last_block_size_ = std::clamp(last_block_size_ * 2, kFirstBlockRecords, kMaxBlockRecords);
    blocks_.push_back(std::make_unique<Record[]>(last_block_size_));
    capacity_ += last_block_size_;
    used_in_last_ = 0;
  }
  return &blocks_.back()[used_in_last_++];
}

void MessageQueue::RecordPool::Release(Record* record) {
  *record = Record{};  // frees its body and extras now, not when the slot is reused
  free_.push_back(record);
}

void MessageQueue::RecordPool::ReleaseAll() {
  blocks_.clear();
  free_ = {};
  last_block_size_ = 0;
  used_in_last_ = 0;
  capacity_ = 0;
}

MessageQueue::Record* MessageQueue::Find(std::uint64_t number) const {
  if (number < base_) {
    auto it = outliers_.find(number);
    return it == outliers_.end() ? nullptr : it->second;
  }
  const std::uint64_t slot = number - base_;
  return slot < index_.size() ? index_[slot] : nullptr;
}

std::optional<std::pair<std::uint8_t, PackedMessage>> MessageQueue::FindPacked(
    std::uint64_t number) const {
  for (std::size_t priority = 0; priority < lanes_.size(); ++priority) {
    const Lane* lane = lanes_[priority].get();
    if (lane == nullptr || lane->packed.empty() || number > lane->packed.back_number()) continue;
    if (auto packed = lane->packed.Find(number)) {
      return std::pair(static_cast<std::uint8_t>(priority), *packed);
    }
  }
  return std::nullopt;
}

bool MessageQueue::Holds(std::uint64_t number) const {
  return Find(number) != nullptr || FindPacked(number).has_value();
}

MessageQueue::Record* MessageQueue::Locate(std::uint64_t number) {
  if (Record* record = Find(number)) return record;
  auto found = FindPacked(number);
  if (!found) return nullptr;
  const auto& [priority, packed] = *found;
  Lane& lane = *lanes_[priority];
  // Still ready, at the same place in the ready order: with the taken-back ones, by order.
  Record& record = Unpack(packed, priority);
  lane.packed.Erase(number);
  record.place = Place::kReady;
  record.returned = true;
  lane.returned.emplace(record.order, number);
  return &record;
}

MessageQueue::Record& MessageQueue::Unpack(const PackedMessage& message, std::uint8_t priority) {
  Record& record = Insert(message.number);
  record.id = message.id;
  record.created_us = message.created_us;
  record.seq = message.seq;
  record.priority = priority;
  record.attempt = message.attempt;
  record.order = message.number;
  if (!message.body.empty()) record.body.rebuild(message.body.data(), message.body.size());
  if (!message.stream.empty()) record.mutable_extras().stream = message.stream;
  if (!message.packed_headers.empty()) record.mutable_extras().headers = message.DecodeHeaders();
  if (!message.reply_to.empty()) record.mutable_extras().reply_to = message.reply_to;
  return record;
}

bool MessageQueue::ErasePacked(std::uint64_t number) {
  auto found = FindPacked(number);
  if (!found) return false;
  Lane& lane = *lanes_[found->first];
  bytes_ -= found->second.Bytes();
  lane.packed.Erase(number);
  --ready_count_;
  if (--lane.count == 0) lane.fresh.clear();
  --live_;
  return true;
}

MessageQueue::StorageStats MessageQueue::storage() const {
  StorageStats stats{pool_.capacity(), index_.size(), outliers_.size(), 0};
  for (const auto& lane : lanes_) {
    if (lane) stats.packed_bytes += lane->packed.allocated_bytes();
  }
  return stats;
}

MessageQueue::Record& MessageQueue::Insert(std::uint64_t number) {
  Record* record = pool_.Allocate();
  ++records_live_;
  if (index_.empty() && (outliers_.empty() || number > outliers_.rbegin()->first)) base_ = number;
  if (number < base_) {
    // Only a restore names a number this old; it lives with the outliers.
    outliers_.emplace(number, record);
  } else {
    std::uint64_t slot = number - base_;
    const std::size_t in_index = records_live_ - 1 - outliers_.size();
    if (slot >= index_.size() && slot + 1 > 2 * (in_index + 1) + kIndexSlack) {
      // Far past the rest (a restore after a long gap): the index starts anew at this number, and
      // what it held becomes outliers, rather than the gap becoming holes.
      for (std::size_t i = 0; i < index_.size(); ++i) {
        if (index_[i] != nullptr) outliers_.emplace(base_ + i, index_[i]);
      }
      index_.clear();
      base_ = number;
      slot = 0;
    }
    if (slot >= index_.size()) index_.resize(slot + 1, nullptr);
    index_[slot] = record;
  }
  return *record;
}

void MessageQueue::CompactIndex() {
  std::size_t in_index = records_live_ - outliers_.size();
  while (index_.size() > 2 * in_index + kIndexSlack) {
    if (Record* record = index_.front()) {
      outliers_.emplace(base_, record);
      --in_index;
    }
    index_.pop_front();
    ++base_;
  }
}

template <typename Fn>
void MessageQueue::ForEachByNumber(Fn&& fn) const {
  for (const auto& [number, record] : outliers_) fn(number, *record);
  for (std::size_t slot = 0; slot < index_.size(); ++slot) {
    if (index_[slot] != nullptr) fn(base_ + slot, *index_[slot]);
  }
}

template <typename Fn>
void MessageQueue::ForEachMessage(Fn&& fn) const {
  struct Packed {
    PackedLog::Cursor cursor;
    std::uint8_t priority;
  };
  std::vector<Packed> logs;
  for (std::size_t priority = 0; priority < lanes_.size(); ++priority) {
    const Lane* lane = lanes_[priority].get();
    if (lane != nullptr && !lane->packed.empty()) {
      logs.push_back({lane->packed.Begin(), static_cast<std::uint8_t>(priority)});
    }
  }
  // Merges the logs (each by number) with the records (by number).
  auto packed_below = [&](std::uint64_t limit) {
    while (true) {
      Packed* lowest = nullptr;
      for (Packed& log : logs) {
        if (!log.cursor.done() && (lowest == nullptr || log.cursor.message().number <
                                                             lowest->cursor.message().number)) {
          lowest = &log;
        }
      }
      if (lowest == nullptr || lowest->cursor.message().number >= limit) return;
      const PackedMessage& message = lowest->cursor.message();
      fn(message.number, static_cast<const Record*>(nullptr), &message, lowest->priority);
      lowest->cursor.Next();
    }
  };
  ForEachByNumber([&](std::uint64_t number, const Record& record) {
    packed_below(number);
    fn(number, &record, static_cast<const PackedMessage*>(nullptr), record.priority);
  });
  packed_below(UINT64_MAX);
}

void MessageQueue::Erase(std::uint64_t number) {
  Record* record = Find(number);
  switch (record->place) {
    case Place::kReady: {
      Lane& lane = LaneOf(*record);
      // A fresh one stays in the FIFO until it reaches the front, where LaneFront drops it.
      if (record->returned) lane.returned.erase({record->order, number});
      --ready_count_;
      if (--lane.count == 0) lane.fresh.clear();
      break;
    }
    case Place::kDelayed:
      delayed_.erase({record->when, number});
      break;
    case Place::kInFlight:
      in_flight_.erase(record->tag);
      deadlines_.erase({record->when, record->tag});
      break;
  }
  if (record->expires()) expiries_.erase({record->expires_at, number});
  bytes_ -= Bytes(*record);
  pool_.Release(record);
  --records_live_;
  --live_;
  if (number < base_) {
    outliers_.erase(number);
  } else {
    index_[number - base_] = nullptr;
    while (!index_.empty() && index_.front() == nullptr) {
      index_.pop_front();
      ++base_;
    }
    CompactIndex();
  }
  // An emptied deep queue gives its memory back; a shallow one keeps its few records for the next
  // message rather than allocating them anew each time it empties.
  if (records_live_ == 0 && pool_.capacity() > kMaxBlockRecords) {
    pool_.ReleaseAll();
    index_.shrink_to_fit();
  }
}

std::size_t MessageQueue::Bytes(const Record& record) {
  std::size_t bytes = record.body.size();
  if (record.extras) {
    const Extras& extras = *record.extras;
    bytes += extras.stream.size() + extras.reply_to.size();
    for (const auto& [key, value] : extras.headers) bytes += key.size() + value.size();
  }
  return bytes;
}

Envelope MessageQueue::EnvelopeWithoutExtras(const Record& record) {
  Envelope envelope;
  envelope.id = record.id;
  envelope.created_us = record.created_us;
  envelope.priority = record.priority;
  envelope.attempt = record.attempt;
  envelope.seq = record.seq;
  // zmq_msg_copy shares the bytes (a reference count), but its source parameter is not const.
  if (record.body.size() > 0) envelope.body.copy(const_cast<zmq::message_t&>(record.body));
  return envelope;
}

Envelope MessageQueue::CopyEnvelope(const Record& record) {
  Envelope envelope = EnvelopeWithoutExtras(record);
  if (record.extras) {
    envelope.stream = record.extras->stream;
    envelope.headers = record.extras->headers;
  }
  return envelope;
}

Envelope MessageQueue::PackedEnvelope(const PackedMessage& message, std::uint8_t priority) {
  Envelope envelope;
  envelope.id = message.id;
  envelope.created_us = message.created_us;
  envelope.priority = priority;
  envelope.attempt = message.attempt;
  envelope.seq = message.seq;
  envelope.stream = message.stream;
  envelope.headers = message.DecodeHeaders();
  envelope.set_body(message.body);
  return envelope;
}

Envelope MessageQueue::MoveEnvelope(Record& record) {
  Envelope envelope = EnvelopeWithoutExtras(record);
  if (record.extras) {
    envelope.stream = std::move(record.extras->stream);
    envelope.headers = std::move(record.extras->headers);
  }
  return envelope;
}

// --- the ready order -------------------------------------------------------------------------

MessageQueue::Lane& MessageQueue::LaneAt(std::uint8_t priority) {
  auto& lane = lanes_[std::min(priority, kMaxPriority)];
  if (!lane) lane = std::make_unique<Lane>();
  return *lane;
}

std::optional<MessageQueue::Front> MessageQueue::LaneFront(Lane& lane) const {
  while (!lane.fresh.empty()) {
    const Record* record = Find(lane.fresh.front());
    if (record != nullptr && record->place == Place::kReady && !record->returned) break;
    lane.fresh.pop_front();
  }
  std::optional<Front> front;
  auto consider = [&](Front candidate) {
    if (!front || candidate.order < front->order) front = candidate;
  };
  if (!lane.packed.empty()) {
    const std::uint64_t number = lane.packed.front().number;
    consider({number, number, Source::kPacked});
  }
  if (!lane.fresh.empty()) {
    consider({Find(lane.fresh.front())->order, lane.fresh.front(), Source::kFresh});
  }
  if (!lane.returned.empty()) {
    consider({lane.returned.begin()->first, lane.returned.begin()->second, Source::kReturned});
  }
  return front;
}

std::optional<std::uint64_t> MessageQueue::PopReady() {
  for (int priority = kMaxPriority; priority >= 0; --priority) {
    Lane* lane = lanes_[priority].get();
    if (lane == nullptr || lane->count == 0) continue;
    auto front = LaneFront(*lane);
    const std::uint64_t number = front->number;
    switch (front->source) {
      case Source::kPacked:
        // Out of the ready order (the caller places it), and out of the log.
        Unpack(lane->packed.front(), static_cast<std::uint8_t>(priority)).place = Place::kDelayed;
        lane->packed.PopFront();
        break;
      case Source::kFresh:
        lane->fresh.pop_front();
        break;
      case Source::kReturned:
        lane->returned.erase(lane->returned.begin());
        Find(number)->returned = false;
        break;
    }
    --ready_count_;
    if (--lane->count == 0) lane->fresh.clear();
    return number;
  }
  return std::nullopt;
}

void MessageQueue::MakeReady(std::uint64_t number, Record& record) {
  Lane& lane = LaneOf(record);
  record.place = Place::kReady;
  // The FIFO stays in ready order; anything that belongs before its back goes in the set.
  if (record.order >= lane.last_fresh_order) {
    lane.fresh.push_back(number);
    lane.last_fresh_order = record.order;
    record.returned = false;
  } else {
    lane.returned.emplace(record.order, number);
    record.returned = true;
  }
  ++lane.count;
  ++ready_count_;
}

void MessageQueue::MakeDelayed(std::uint64_t number, Record& record, TimePoint due) {
  record.place = Place::kDelayed;
  record.when = due;
  delayed_.emplace(due, number);
}

// --- operations ------------------------------------------------------------------------------

Status MessageQueue::CheckRoom(std::size_t bytes) const {
  if (live_ >= options_.max_length || bytes_ + bytes > options_.max_bytes) {
    std::string message = "queue \"";
    message.append(name_).append("\" is full (").append(std::to_string(live_));
    message.append(" messages, ").append(std::to_string(bytes_)).append(" bytes)");
    return Status::ResourceExhausted(std::move(message));
  }
  return Status::Ok();
}

Status MessageQueue::CheckRoom(const Envelope& envelope, const EnqueueOptions& options) const {
  return CheckRoom(MessageBytes(envelope, options.reply_to));
}

Result<std::uint64_t> MessageQueue::Publish(Envelope envelope, EnqueueOptions options,
                                            TimePoint now) {
  const std::size_t bytes = MessageBytes(envelope, options.reply_to);
  if (Status room = CheckRoom(bytes); !room.ok() && !options.ignore_limits) {
    ++counters_.refused_full;
    return room;
  }
  const std::uint64_t number = options.number.value_or(next_number_);
  // Every number the queue holds is below next_number_, so only a restore can name one it holds.
  if (number < next_number_ && Holds(number)) {
    return Status::InvalidArgument("queue \"" + name_ + "\" already holds message " +
                                   std::to_string(number));
  }
  next_number_ = std::max(next_number_, number + 1);
  std::optional<Duration> ttl = options.ttl;
  if (!ttl && !options.no_ttl && options_.message_ttl.count() > 0) ttl = options_.message_ttl;
  const bool delayed = options.delay && options.delay->count() > 0;
  if (!ttl && !delayed && envelope.body.size() <= kOwnedBodyLimit &&
      envelope.priority <= kMaxPriority) {
    Lane& lane = LaneAt(envelope.priority);
    if (number > lane.packed.back_number()) {
      lane.packed.Append(number, envelope, options.reply_to);
      ++lane.count;
      ++ready_count_;
      ++live_;
      bytes_ += bytes;
      ++counters_.published;
      return number;
    }
  }
  ++live_;
  Record& record = Insert(number);
  record.id = envelope.id;
  record.created_us = envelope.created_us;
  record.seq = envelope.seq;
  record.priority = envelope.priority;
  record.attempt = envelope.attempt;
  record.order = number;
  if (envelope.body.size() > kOwnedBodyLimit) {
    record.body = std::move(envelope.body);
  } else if (envelope.body.size() > 0) {
    record.body.rebuild(envelope.body.data(), envelope.body.size());
  }
  if (!envelope.stream.empty()) record.mutable_extras().stream = std::move(envelope.stream);
  if (!envelope.headers.empty()) record.mutable_extras().headers = std::move(envelope.headers);
  if (!options.reply_to.empty()) record.mutable_extras().reply_to = std::move(options.reply_to);
  bytes_ += bytes;
  if (ttl) {
    record.expires_at = now + *ttl;
    expiries_.emplace(record.expires_at, number);
  }
  ++counters_.published;
  if (delayed) {
    MakeDelayed(number, record, now + *options.delay);
  } else {
    MakeReady(number, record);
  }
  return number;
}

std::optional<MessageQueue::Lease> MessageQueue::LeaseNext(std::uint64_t tag, TimePoint now,
                                                           Duration ack_timeout) {
  auto number = PopReady();
  if (!number) return std::nullopt;
  Record& record = *Find(*number);
  if (record.expires()) expiries_.erase({record.expires_at, *number});
  record.place = Place::kInFlight;
  record.tag = tag;
  record.when = now + ack_timeout;
  ++record.attempt;
  in_flight_.emplace(tag, *number);
  deadlines_.emplace(record.when, tag);
  ++counters_.delivered;
  return Lease{tag, *number, CopyEnvelope(record), std::string(record.reply_to()), record.when};
}

bool MessageQueue::Unlease(std::uint64_t tag) {
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) return false;
  const std::uint64_t number = it->second;
  Record& record = *Find(number);
  in_flight_.erase(it);
  deadlines_.erase({record.when, tag});
  --record.attempt;
  --counters_.delivered;
  // Expired meanwhile: the next Tick dead-letters it, as it would have before the lease.
  if (record.expires()) expiries_.emplace(record.expires_at, number);
  MakeReady(number, record);
  return true;
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
  Record& record = *Find(number);
  in_flight_.erase(it);
  deadlines_.erase({record.when, tag});
  std::string& history = record.mutable_extras().history;
  if (!history.empty()) history += ',';
  history += FailureReasonName(reason);
  ++record.failures;
  // Out of flight; until placed again below, it is "delayed" in no index, which Erase tolerates.
  record.place = Place::kDelayed;
  record.when = TimePoint::min();
  const std::uint32_t attempt = record.attempt;
  if (!requeue) return {true, number, attempt, Kill(number, DeadLetterReason::kRejected)};
  return {true, number, attempt, Requeue(number, reason, now)};
}

std::optional<DeadLetter> MessageQueue::Requeue(std::uint64_t number, FailureReason reason,
                                                TimePoint now) {
  Record& record = *Find(number);
  if (options_.max_attempts != 0 && record.attempt >= options_.max_attempts) {
    return Kill(number, DeadLetterReason::kMaxAttempts);
  }
  if (record.expires() && record.expires_at <= now) {
    ++counters_.expired;
    return Kill(number, DeadLetterReason::kExpired);
  }
  ++counters_.requeued;
  if (record.expires()) expiries_.emplace(record.expires_at, number);
  // Only a NACK backs off: the consumer said the message failed, and retrying at once would likely
  // fail again. A lost consumer or an expired lease says nothing about the message, and the ack
  // timeout was already the wait (as SQS redelivers at the visibility timeout, not after it).
  const Duration delay =
      reason == FailureReason::kRejected ? RetryDelay(record.failures) : Duration::zero();
  if (delay > Duration::zero()) {
    record.requeued = true;
    MakeDelayed(number, record, now + delay);
  } else {
    MakeReady(number, record);
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
  Record& record = *Find(number);
  DeadLetter dead{MoveEnvelope(record), reason, number};
  dead.envelope.headers[std::string(kHeaderOriginQueue)] = name_;
  dead.envelope.headers[std::string(kHeaderDeathReason)] = DeadLetterReasonName(reason);
  dead.envelope.headers[std::string(kHeaderAttempts)] = std::to_string(dead.envelope.attempt);
  dead.envelope.headers[std::string(kHeaderAttemptHistory)] = record.history();
  Erase(number);
  ++counters_.dead_lettered;
  return dead;
}

bool MessageQueue::Extend(std::uint64_t tag, TimePoint deadline) {
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) return false;
  Record& record = *Find(it->second);
  deadlines_.erase({record.when, tag});
  record.when = deadline;
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
    Record& record = *Find(number);
    if (!record.requeued) {
      record.order = next_number_++;
      result.readied.push_back({number, record.order});
    }
    record.requeued = false;
    MakeReady(number, record);
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
  std::vector<std::uint64_t> with_records;
  ForEachMessage([&](std::uint64_t number, const Record* record, const PackedMessage* packed,
                     std::uint8_t) {
    if (packed != nullptr) {
      bytes_ -= packed->Bytes();
      doomed.push_back(number);
    } else if (record->place != Place::kInFlight) {
      doomed.push_back(number);
      with_records.push_back(number);
    }
  });
  for (auto& lane : lanes_) {
    if (!lane || lane->packed.empty()) continue;
    ready_count_ -= lane->packed.size();
    lane->count -= lane->packed.size();
    live_ -= lane->packed.size();
    lane->packed.Clear();
  }
  for (std::uint64_t number : with_records) Erase(number);
  counters_.purged += doomed.size();
  return doomed;
}

std::vector<std::pair<std::uint64_t, Envelope>> MessageQueue::TakeReady(std::size_t limit) {
  std::vector<std::pair<std::uint64_t, Envelope>> taken;
  while (taken.size() < limit) {
    auto number = PopReady();
    if (!number) break;
    Record& record = *Find(*number);
    // Out of the ready order already; Erase must not count it out of a lane again.
    record.place = Place::kDelayed;
    record.when = TimePoint::min();
    taken.emplace_back(*number, MoveEnvelope(record));
    Erase(*number);
  }
  return taken;
}

std::optional<std::size_t> MessageQueue::ReadyFrontBytes() const {
  for (int priority = kMaxPriority; priority >= 0; --priority) {
    Lane* lane = lanes_[priority].get();
    if (lane == nullptr || lane->count == 0) continue;
    const Front front = *LaneFront(*lane);
    if (front.source == Source::kPacked) return lane->packed.front().Bytes();
    return Bytes(*Find(front.number));
  }
  return std::nullopt;
}

bool MessageQueue::RestoreFailure(std::uint64_t number, std::uint32_t attempt,
                                  FailureReason reason) {
  Record* record = Locate(number);
  if (record == nullptr) return false;
  record->attempt = attempt;
  std::string& history = record->mutable_extras().history;
  if (!history.empty()) history += ',';
  history += FailureReasonName(reason);
  ++record->failures;
  ++counters_.requeued;
  return true;
}

bool MessageQueue::RestoreReady(std::uint64_t number, std::uint64_t order) {
  Record* record = Locate(number);  // a packed one becomes a taken-back record
  if (record == nullptr || record->place == Place::kInFlight) return false;
  if (record->place == Place::kDelayed) {
    delayed_.erase({record->when, number});
  } else {
    Lane& lane = LaneOf(*record);
    if (record->returned) {
      lane.returned.erase({record->order, number});
    } else if (!lane.fresh.empty() && lane.fresh.back() == number) {
      lane.fresh.pop_back();
    } else {
      return false;  // not where a snapshot or a READY record leaves it
    }
    --lane.count;
    --ready_count_;
  }
  record->order = order;
  record->requeued = false;
  MakeReady(number, *record);
  next_number_ = std::max(next_number_, order + 1);
  return true;
}

std::optional<DeadLetter> MessageQueue::KillNumber(std::uint64_t number, DeadLetterReason reason) {
  if (Locate(number) == nullptr) return std::nullopt;
  if (reason == DeadLetterReason::kExpired) ++counters_.expired;
  return Kill(number, reason);
}

bool MessageQueue::Remove(std::uint64_t number) {
  if (Find(number) != nullptr) {
    Erase(number);
  } else if (!ErasePacked(number)) {
    return false;
  }
  ++counters_.purged;
  return true;
}

bool MessageQueue::Settle(std::uint64_t number) {
  if (Find(number) != nullptr) {
    Erase(number);
  } else if (!ErasePacked(number)) {
    return false;
  }
  ++counters_.acked;
  return true;
}

std::optional<Envelope> MessageQueue::Take(std::uint64_t number) {
  Record* record = Locate(number);
  if (record == nullptr) return std::nullopt;
  Envelope envelope = MoveEnvelope(*record);
  Erase(number);
  return envelope;
}

// --- inspection ------------------------------------------------------------------------------

std::vector<MessageQueue::MessageView> MessageQueue::Contents(std::size_t limit) const {
  std::vector<MessageView> contents;
  auto view = [&](std::uint64_t number, std::string_view place) {
    const Record& record = *Find(number);
    Envelope envelope = CopyEnvelope(record);
    contents.push_back({number, place, record.priority, record.attempt,
                        std::string(record.history()), std::move(envelope.headers),
                        std::string(envelope.body_view())});
    return contents.size() < limit;
  };
  // The ready order of each lane, merged from its log, its FIFO and its set without changing any.
  for (int priority = kMaxPriority; priority >= 0; --priority) {
    const Lane* lane = lanes_[priority].get();
    if (lane == nullptr) continue;
    PackedLog::Cursor packed = lane->packed.Begin();
    auto fresh = lane->fresh.begin();
    auto returned = lane->returned.begin();
    while (true) {
      while (fresh != lane->fresh.end()) {
        const Record* record = Find(*fresh);
        if (record != nullptr && record->place == Place::kReady && !record->returned) break;
        ++fresh;
      }
      constexpr std::uint64_t kNone = UINT64_MAX;
      const std::uint64_t packed_order = packed.done() ? kNone : packed.message().number;
      const std::uint64_t fresh_order = fresh == lane->fresh.end() ? kNone : Find(*fresh)->order;
      const std::uint64_t returned_order = returned == lane->returned.end() ? kNone : returned->first;
      const std::uint64_t first = std::min({packed_order, fresh_order, returned_order});
      if (first == kNone) break;
      if (first == packed_order) {
        const PackedMessage& message = packed.message();
        contents.push_back({message.number, "ready", static_cast<std::uint8_t>(priority),
                            message.attempt, "", message.DecodeHeaders(), std::string(message.body)});
        packed.Next();
        if (contents.size() >= limit) return contents;
        continue;
      }
      const std::uint64_t number = first == fresh_order ? *fresh++ : (returned++)->second;
      if (!view(number, "ready")) return contents;
    }
  }
  for (const auto& [due, number] : delayed_) {
    if (!view(number, "delayed")) return contents;
  }
  std::vector<std::uint64_t> flying;
  ForEachByNumber([&](std::uint64_t number, const Record& record) {
    if (record.place == Place::kInFlight) flying.push_back(number);
  });
  for (std::uint64_t number : flying) {
    if (!view(number, "in-flight")) return contents;
  }
  return contents;
}

void MessageQueue::VisitSnapshot(const std::function<void(const SnapshotEntry&)>& visit) const {
  ForEachMessage([&](std::uint64_t number, const Record* with_record, const PackedMessage* packed,
                     std::uint8_t priority) {
    if (packed != nullptr) {
      visit(SnapshotEntry{number, PackedEnvelope(*packed, priority), packed->reply_to,
                          std::nullopt, std::nullopt, packed->attempt, "", std::nullopt});
      return;
    }
    const Record& record = *with_record;
    const bool flying = record.place == Place::kInFlight;
    const bool delayed = record.place == Place::kDelayed;
    visit(SnapshotEntry{number, CopyEnvelope(record), record.reply_to(),
                        delayed ? std::optional(record.when) : std::nullopt,
                        record.expires() ? std::optional(record.expires_at) : std::nullopt,
                        flying && record.attempt > 0 ? record.attempt - 1 : record.attempt,
                        record.history(),
                        !delayed && record.order != number ? std::optional(record.order) : std::nullopt});
  });
}

bool MessageQueue::RestoreState(std::uint64_t number, std::uint32_t attempt,
                                const std::string& history) {
  Record* record = Locate(number);
  if (record == nullptr) return false;
  record->attempt = attempt;
  if (!history.empty()) record->mutable_extras().history = history;
  else if (record->extras) record->extras->history.clear();
  record->failures = history.empty()
                         ? 0
                         : static_cast<std::uint32_t>(std::count(history.begin(), history.end(), ',') + 1);
  return true;
}

}  // namespace zmqkit::internal
