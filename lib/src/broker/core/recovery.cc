// Recovery: the journal's records applied to the state, and the snapshot that compaction writes.
// BrokerCore is one class (broker_core.h); its definitions are split by responsibility.
#include "broker/core/broker_core.h"

#include "broker/core/core_internal.h"
#include "broker/core/journal_records.h"

#include <algorithm>
#include <limits>

namespace zmqkit::internal {

namespace p = protocol;
using namespace core_internal;

std::vector<std::string> BrokerCore::SnapshotRecords(TimePoint now) const {
  std::vector<std::string> snapshot;
  const std::int64_t now_unix = unix_micros_();
  auto micros_until = [&](TimePoint at) {
    return std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::microseconds>(at - now).count());
  };
  // A compacted journal still says which epochs were used, or the next start could repeat one.
  snapshot.push_back(records::EncodeEpoch(tag_epoch_));
  // And what each idempotent producer's publishes were, though the messages may be long gone.
  producers_.Visit([&](const ProducerTable::Entry& entry) {
    snapshot.push_back(records::EncodeProducer(entry.producer, entry.highest, entry.floor,
                                               entry.gaps, entry.last_active_us));
  });
  // And which message ids were stored within the window, oldest first.
  dedup_.Visit([&](const DedupWindow::Entry& entry) {
    snapshot.push_back(records::EncodeDedup(entry.exchange, entry.key, entry.id, entry.at_us));
  });
  for (const auto& [name, slot] : queues_) {
    snapshot.push_back(records::EncodeQueue(name, slot.queue.options(),
                                            std::max<std::uint64_t>(slot.queue.next_number(), 1)));
  }
  for (const auto& [name, exchange] : exchanges_.all()) {
    snapshot.push_back(records::EncodeExchange(name, exchange.type));
    for (const auto& binding : exchange.bindings) {
      snapshot.push_back(records::EncodeBind(true, name, binding.queue, binding.pattern));
    }
  }
  std::string header;
  for (const auto& named_slot : queues_) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
    const std::string& name = named_slot.first;
    named_slot.second.queue.VisitSnapshot([&](const MessageQueue::SnapshotEntry& entry) {
      header.clear();
      EncodeHeader(entry.envelope, header);
      // A delay or TTL is written as what is left of it, from now.
      const std::int64_t delay_us = entry.due ? std::max<std::int64_t>(1, micros_until(*entry.due)) : 0;
      const std::int64_t ttl_us = entry.expires_at ? std::max<std::int64_t>(1, micros_until(*entry.expires_at)) : -1;
      snapshot.push_back(records::EncodePublish({{name, entry.number}}, header,
                                                entry.envelope.body_view(), now_unix, delay_us,
                                                ttl_us, entry.reply_to));
      if (entry.attempt > 0 || !entry.history.empty()) {
        snapshot.push_back(records::EncodeRestore(name, entry.number, entry.attempt, entry.history));
      }
      if (entry.order) snapshot.push_back(records::EncodeReady(name, entry.number, *entry.order));
    });
  }
  return snapshot;
}

void BrokerCore::NoteReplayedNumber(const std::string& queue, std::uint64_t number) {
  std::uint64_t& next = replay_next_number_.try_emplace(queue, 1).first->second;
  if (number > next) replay_audit_.messages_missing += number - next;
  next = std::max(next, number + 1);
}

Status BrokerCore::Replay(std::string_view bytes, TimePoint now) {
  auto decoded = records::Decode(bytes);
  if (!decoded.ok()) return decoded.error();
  return Apply(*decoded, now);
}

Status BrokerCore::Apply(const records::Record& record, TimePoint now) {
  replaying_ = true;
  struct ReplayingScope {
    bool& flag;
    ~ReplayingScope() { flag = false; }
  } scope{replaying_};
  using records::Op;
  switch (record.op) {
    case Op::kQueue: return ApplyQueue(record);
    case Op::kExchange: return exchanges_.Declare(record.exchange, record.exchange_type);
    case Op::kBind:
      ReplayedQueue(record.queue);
      return exchanges_.Bind(record.exchange, record.queue, record.pattern);
    case Op::kUnbind: return exchanges_.Unbind(record.exchange, record.queue, record.pattern);
    case Op::kPublish: return ApplyPublish(record, now);
    case Op::kAck: return ApplyAck(record);
    case Op::kFail: return ApplyFail(record);
    case Op::kDead: return ApplyDead(record, now);
    case Op::kRemove: return ApplyRemove(record);
    case Op::kRedrive: return ApplyRedrive(record, now);
    case Op::kRestore: return ApplyRestore(record);
    case Op::kReady: return ApplyReady(record);
    case Op::kEpoch:
      last_journaled_epoch_ = record.epoch;
      return Status::Ok();
    case Op::kProducer:
      producers_.Restore(ProducerTable::Entry{record.producer, record.highest, record.floor,
                                              record.gaps, record.last_active_us});
      return Status::Ok();
    case Op::kDedup:
      dedup_.Stored(record.exchange, record.routing_key, record.dedup_id, record.at_unix_us);
      return Status::Ok();
  }
  return Status::Corruption("unknown journal record");
}

namespace {

Status Missing(std::string_view what) {
  return Status::Corruption("journal names " + std::string(what) + " that recovery does not have");
}

// A time journaled as `at_unix_us` + `after_us` on the wall clock, as a duration from now (the
// queue runs on the steady clock); at least `floor`.
Duration Remaining(std::int64_t at_unix_us, std::int64_t after_us, std::int64_t now_unix,
                   std::int64_t floor = 0) {
  return std::chrono::microseconds(std::max<std::int64_t>(floor, at_unix_us + after_us - now_unix));
}

std::int64_t Micros(Duration duration) {
  return std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
}

}  // namespace

BrokerCore::QueueSlot& BrokerCore::ReplayedQueue(const std::string& name) {
  // Replay recreates what existed, whatever the limits are now.
  auto it = queues_.find(name);
  if (it == queues_.end()) it = queues_.try_emplace(name, name, options_.queue_defaults).first;
  DeadlineChanged(it->second);  // a replayed message may bring a delay or a TTL
  return it->second;
}

MessageQueue* BrokerCore::FindReplayedQueue(const std::string& name) {
  auto it = queues_.find(name);
  return it == queues_.end() ? nullptr : &it->second.queue;
}

Status BrokerCore::ApplyQueue(const records::Record& record) {
  QueueSlot& slot = ReplayedQueue(record.queue);
  slot.queue.set_options(record.options);
  if (record.next_number > 0) {
    slot.queue.set_next_number(record.next_number);
    // A snapshot: its messages have numbers below this, in no particular order.
    replay_next_number_[record.queue] = record.next_number;
  }
  return Status::Ok();
}

Status BrokerCore::ApplyPublish(const records::Record& record, TimePoint now) {
  // Straight from the record's bytes: recovery does this once per journaled message.
  DecodeLimits unlimited;
  unlimited.max_body_bytes = std::numeric_limits<std::size_t>::max();
  unlimited.max_header_bytes = std::numeric_limits<std::size_t>::max();
  Envelope envelope;
  DecodeError error;
  if (!DecodeHeader(record.header, unlimited, envelope, error)) {
    return Status::Corruption("journaled envelope: " + error.ToString());
  }
  envelope.set_body(record.body);
  if (!record.producer.empty()) producers_.Stored(record.producer, record.pseq, record.at_unix_us);
  if (!record.dedup_id.empty()) {
    dedup_.Stored(record.exchange, record.routing_key, record.dedup_id, record.at_unix_us);
  }
  const std::int64_t now_unix = unix_micros_();
  for (std::size_t target = 0; target < record.targets.size(); ++target) {
    const auto& [name, number] = record.targets[target];
    NoteReplayedNumber(name, number);
    QueueSlot& slot = ReplayedQueue(name);
    EnqueueOptions options;
    options.number = number;
    options.ignore_limits = true;
    options.reply_to = record.reply_to;
    // A delay stays a delay even if its time has passed: where the message joined the ready
    // order is a READY record's to say, or (none: the broker stopped first) the first Tick's.
    if (record.delay_us > 0) options.delay = Remaining(record.at_unix_us, record.delay_us, now_unix, 1);
    const std::int64_t ttl_us = record.ttl_us != 0 ? record.ttl_us : Micros(slot.queue.options().message_ttl);
    if (ttl_us > 0) {
      options.ttl = Remaining(record.at_unix_us, ttl_us, now_unix);
    } else {
      options.no_ttl = record.ttl_us < 0;
    }
    const bool last = target + 1 == record.targets.size();
    if (!slot.queue.Publish(last ? std::move(envelope) : envelope.Clone(), std::move(options), now).ok()) {
      return Status::Corruption("journaled message could not be restored in " + name);
    }
  }
  return Status::Ok();
}

Status BrokerCore::ApplyAck(const records::Record& record) {
  MessageQueue* queue = FindReplayedQueue(record.queue);
  if (queue == nullptr || !queue->Settle(record.number)) {
    ++replay_audit_.missing_acked;
    return Missing("an acked message");
  }
  return Status::Ok();
}

Status BrokerCore::ApplyFail(const records::Record& record) {
  MessageQueue* queue = FindReplayedQueue(record.queue);
  if (queue == nullptr ||
      !queue->RestoreFailure(record.number, record.attempt, static_cast<FailureReason>(record.reason))) {
    return Missing("a failed message");
  }
  return Status::Ok();
}

Status BrokerCore::ApplyDead(const records::Record& record, TimePoint now) {
  MessageQueue* queue = FindReplayedQueue(record.queue);
  if (queue == nullptr) return Missing("a dead-lettered message's queue");
  NoteReplayedNumber(record.queue.ends_with(kDeadLetterSuffix) ? record.queue
                                                               : record.queue + std::string(kDeadLetterSuffix),
                     record.dlq_number);
  auto dead = queue->KillNumber(record.number, static_cast<DeadLetterReason>(record.reason));
  if (!dead) return Missing("a dead-lettered message");
  PlaceDeadLetter(std::move(*dead), now, record.dlq_number);
  return Status::Ok();
}

Status BrokerCore::ApplyRemove(const records::Record& record) {
  MessageQueue* queue = FindReplayedQueue(record.queue);
  if (queue == nullptr) return Missing("a purged queue");
  for (std::uint64_t number : record.numbers) queue->Remove(number);
  return Status::Ok();
}

Status BrokerCore::ApplyRedrive(const records::Record& record, TimePoint now) {
  auto origin = queues_.find(record.queue);
  MessageQueue* dlq = FindReplayedQueue(record.queue + std::string(kDeadLetterSuffix));
  if (origin == queues_.end() || dlq == nullptr) return Missing("a redriven queue");
  const std::int64_t now_unix = unix_micros_();
  const Duration queue_ttl = origin->second.queue.options().message_ttl;
  for (const auto& [from, to] : record.moves) {
    NoteReplayedNumber(record.queue, to);
    auto message = dlq->Take(from);
    if (!message) return Missing("a redriven message");
    PrepareRedrive(*message);
    EnqueueOptions options;
    options.number = to;
    options.ignore_limits = true;
    // The queue's default TTL ran from the redrive, not from recovery. (A record written before
    // REDRIVE had a time carries none: its TTL starts again now.)
    if (record.at_unix_us != 0 && queue_ttl.count() > 0) {
      options.ttl = Remaining(record.at_unix_us, Micros(queue_ttl), now_unix);
    }
    if (!origin->second.queue.Publish(std::move(*message), std::move(options), now).ok()) {
      return Status::Corruption("redriven message could not be restored in " + record.queue);
    }
  }
  DeadlineChanged(origin->second);
  return Status::Ok();
}

Status BrokerCore::ApplyRestore(const records::Record& record) {
  MessageQueue* queue = FindReplayedQueue(record.queue);
  if (queue == nullptr || !queue->RestoreState(record.number, record.attempt, record.history)) {
    return Missing("a restored message");
  }
  return Status::Ok();
}

Status BrokerCore::ApplyReady(const records::Record& record) {
  auto it = queues_.find(record.queue);
  if (it == queues_.end() || !it->second.queue.RestoreReady(record.number, record.order)) {
    return Missing("a delayed message");
  }
  NoteReplayedNumber(record.queue, record.order);  // the order was the queue's next number
  DeadlineChanged(it->second);
  return Status::Ok();
}

}  // namespace zmqkit::internal
