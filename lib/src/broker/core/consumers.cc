// Sessions, consumers and their deliveries: CONSUME, CANCEL, settling (ACK, NACK, REJECT, EXTEND),
// liveness of sessions, deliveries a peer's connection refused, and delivery tags.
// BrokerCore is one class (broker_core.h); its definitions are split by responsibility.
#include "broker/core/broker_core.h"

#include "broker/core/core_internal.h"
#include "broker/core/journal_records.h"

#include <algorithm>

namespace zmqkit::internal {

namespace p = protocol;
using namespace core_internal;

void BrokerCore::HandleConsume(Session& session, const SessionKey& key, const p::Args& args,
                               TimePoint now) {
  auto queue = args.Str("queue");
  auto name = args.Str("consumer");
  auto prefetch = args.Uint("prefetch", 100);
  auto batch = args.Uint("batch", 1);
  for (const Status* status : {queue.ok() ? nullptr : &queue.error(),
                               name.ok() ? nullptr : &name.error(),
                               prefetch.ok() ? nullptr : &prefetch.error(),
                               batch.ok() ? nullptr : &batch.error()}) {
    if (status) {
      return SendError(key.peer, p::kErrInvalidArgument, status->message(), p::kConsume);
    }
  }
  if (*prefetch == 0) {
    return SendError(key.peer, p::kErrInvalidArgument, "prefetch must be at least 1", p::kConsume);
  }
  if (*batch == 0) {
    return SendError(key.peer, p::kErrInvalidArgument, "batch must be at least 1", p::kConsume);
  }
  if (*prefetch > options_.max_prefetch) {
    return SendError(key.peer, p::kErrLimit,
                     "prefetch (unacked deliveries per consumer) may be at most " +
                         std::to_string(options_.max_prefetch),
                     p::kConsume, std::nullopt, p::kLimitPrefetch);
  }
  if (session.consumers.size() >= options_.max_consumers_per_client) {
    return SendError(key.peer, p::kErrLimit,
                     "this connection holds its maximum of " +
                         std::to_string(options_.max_consumers_per_client) + " consumers",
                     p::kConsume, std::nullopt, p::kLimitConsumers);
  }
  for (std::uint64_t id : session.consumers) {
    if (consumers_.at(id).name == *name) {
      return SendError(key.peer, p::kErrConflict, "consumer \"" + *name + "\" already exists",
                       p::kConsume);
    }
  }
  Refusal refusal;
  QueueSlot* slot = GetOrCreateQueue(*queue, refusal);
  if (slot == nullptr) return SendError(key.peer, refusal, p::kConsume);
  auto ack_timeout = args.Uint(
      "ack_timeout_ms",
      static_cast<std::uint64_t>(slot->queue.options().ack_timeout.count()));
  if (!ack_timeout.ok() || *ack_timeout == 0) {
    return SendError(key.peer, p::kErrInvalidArgument, "ack_timeout_ms must be a positive integer",
                     p::kConsume);
  }
  // A batch above the broker's own bound is not an error: it says what the client can take.
  AddConsumer(key, session, *name, *slot, static_cast<std::uint32_t>(*prefetch),
              Millis(*ack_timeout),
              static_cast<std::uint32_t>(std::min<std::uint64_t>(*batch, p::kMaxDeliverBatch)));
  SendOk(key);
  Dispatch(*slot, now);
}

std::uint64_t BrokerCore::AddConsumer(const SessionKey& key, Session& session, std::string name,
                                      QueueSlot& slot, std::uint32_t prefetch,
                                      Duration ack_timeout, std::uint32_t batch) {
  std::uint64_t id = next_consumer_id_++;
  consumers_.emplace(id, Consumer{key, std::move(name), &slot, prefetch, ack_timeout, batch, {}, 0, false, false, {}});
  session.consumers.insert(id);
  ++slot.consumers;
  MakeWaiting(id);
  return id;
}

void BrokerCore::HandleCancel(Session& session, const SessionKey& key, const p::Args& args,
                              TimePoint now) {
  auto name = args.Str("consumer");
  if (!name.ok()) {
    return SendError(key.peer, p::kErrInvalidArgument, name.error().message(), p::kCancel);
  }
  for (std::uint64_t id : session.consumers) {
    if (consumers_.at(id).name == *name) {
      session.consumers.erase(id);
      RemoveConsumer(id, now);
      return SendOk(key);
    }
  }
  SendError(key.peer, p::kErrNotFound, "no consumer \"" + *name + "\"", p::kCancel);
}

void BrokerCore::HandleSettle(const SessionKey& key, std::string_view command, const p::Args& args,
                              TimePoint now) {
  std::vector<std::uint64_t> tags;
  if (command == p::kNack) {
    auto tag = args.Uint("tag");
    if (!tag.ok()) return SendError(key.peer, p::kErrInvalidArgument, tag.error().message(), command);
    tags.push_back(*tag);
  } else {
    auto list = args.UintList("tags");
    if (!list.ok()) {
      return SendError(key.peer, p::kErrInvalidArgument, list.error().message(), command);
    }
    tags = std::move(*list);
  }
  if (command == p::kExtend) {
    // A client's background EXTEND names the broker instance its tags came from: one sent to a
    // restarted broker before the client noticed is void, and not an error worth answering.
    auto instance = args.StrView("instance", "");
    if (instance.ok() && !instance->empty() && *instance != instance_) return;
  }
  auto requeue = args.Bool("requeue", true);
  auto extend_ms = args.Uint("ms", 0);
  if (!requeue.ok() || !extend_ms.ok()) {
    return SendError(key.peer, p::kErrInvalidArgument, "bad requeue or ms", command);
  }
  std::vector<std::uint64_t> unknown;
  std::set<QueueSlot*> touched;
  for (std::uint64_t tag : tags) {
    Delivery* delivery = OwnDelivery(key, tag);
    if (!delivery) {
      unknown.push_back(tag);
      continue;
    }
    QueueSlot* slot = delivery->slot;
    if (command == p::kExtend) {
      slot->queue.Extend(tag, now + Millis(*extend_ms));
      DeadlineChanged(*slot);
      continue;
    }
    if (command == p::kAck) {
      if (auto number = slot->queue.Ack(tag)) Emit([&] { return records::EncodeAck(slot->queue.name(), *number); });
    } else {
      AfterFailure(*slot, slot->queue.Fail(tag, FailureReason::kRejected, *requeue, now),
                   FailureReason::kRejected, now);
    }
    ForgetDelivery(tag);
    touched.insert(slot);
  }
  for (QueueSlot* slot : touched) Dispatch(*slot, now);
  if (!unknown.empty()) {
    std::string list;
    for (std::size_t i = 0; i < unknown.size() && i < 10; ++i) {
      list += (i ? ", " : "") + std::to_string(unknown[i]);
    }
    SendError(key.peer, p::kErrUnknownTag,
              "delivery tag(s) " + list + (unknown.size() > 10 ? ", ..." : "") +
                  " not held by this connection (settled, taken back, or never delivered)",
              command);
  }
}

std::vector<zmq::message_t> BrokerCore::ClientHeartbeat() const {
  return p::Frames(p::kHeartbeat,
                   p::ArgsWriter(6)
                       .Str("instance", instance_)
                       .Uint("max_publish_batch", MaxPublishBatch())
                       .Bool("packed_publish", true)
                       .Bool("idempotent", true)
                       .Uint("heartbeat_ms", static_cast<std::uint64_t>(options_.heartbeat_interval.count()))
                       .Uint("liveness", options_.liveness)
                       .Finish());
}

BrokerCore::Session& BrokerCore::Touch(const SessionKey& key, TimePoint now) {
  auto [it, inserted] = sessions_.try_emplace(key);
  it->second.last_seen = now;
  if (inserted) {
    it->second.last_heartbeat_sent = now;
    if (!next_housekeeping_) next_housekeeping_ = now + options_.heartbeat_interval / 4;
  }
  return it->second;
}

void BrokerCore::DropSession(const SessionKey& key, TimePoint now) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return;
  std::set<std::uint64_t> ids = std::move(it->second.consumers);
  sessions_.erase(it);
  paused_sessions_.erase(key);
  owed_confirms_.erase(key.peer);
  for (std::uint64_t id : ids) RemoveConsumer(id, now);
}

// Takes back everything the consumer holds (at once, ahead of newer messages) and forgets it.
void BrokerCore::RemoveConsumer(std::uint64_t consumer_id, TimePoint now) {
  Consumer& consumer = consumers_.at(consumer_id);
  QueueSlot& slot = *consumer.slot;
  StopWaiting(consumer);
  for (std::uint64_t tag : consumer.given) {
    if (!deliveries_.contains(tag)) continue;  // settled since
    auto failed = slot.queue.Fail(tag, FailureReason::kConsumerLost, /*requeue=*/true, now);
    ++counters_.deliveries_taken_back;
    deliveries_.erase(tag);
    AfterFailure(slot, std::move(failed), FailureReason::kConsumerLost, now);
  }
  --slot.consumers;
  consumers_.erase(consumer_id);
  Dispatch(slot, now);
}

void BrokerCore::StopWaiting(Consumer& consumer) {
  if (!consumer.waiting) return;
  consumer.slot->waiting.erase(consumer.waiting_position);
  consumer.waiting = false;
}

void BrokerCore::MakeWaiting(std::uint64_t consumer_id) {
  Consumer& consumer = consumers_.at(consumer_id);
  if (consumer.waiting || consumer.paused || consumer.held >= consumer.prefetch) return;
  consumer.waiting = true;
  consumer.waiting_position = consumer.slot->waiting.insert(consumer.slot->waiting.end(), consumer_id);
}

void BrokerCore::OnDeliveryRefused(Side side, std::string_view peer,
                                   std::span<const std::uint64_t> tags, TimePoint now) {
  input_time_ = now;
  for (std::uint64_t tag : tags) {
    auto it = deliveries_.find(tag);
    if (it == deliveries_.end()) continue;  // settled or taken back since (cannot be, but safe)
    QueueSlot& slot = *it->second.slot;
    slot.queue.Unlease(tag);
    ++counters_.deliveries_withheld;
    ForgetDelivery(tag);
    Dispatch(slot, now);
  }
  const SessionKey key{side, std::string(peer)};
  auto session = sessions_.find(key);
  if (session == sessions_.end()) return;
  if (paused_sessions_.insert_or_assign(key, now + kRefusedSendPause).second) {
    Log(std::string(side == Side::kClients ? "a client's" : "a worker's") +
        " connection is full (it is not reading): holding its deliveries back");
  }
  for (std::uint64_t id : session->second.consumers) {
    Consumer& consumer = consumers_.at(id);
    consumer.paused = true;
    StopWaiting(consumer);
  }
  DispatchDue();
}

void BrokerCore::ResumePausedSessions(TimePoint now) {
  for (auto it = paused_sessions_.begin(); it != paused_sessions_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    if (auto session = sessions_.find(it->first); session != sessions_.end()) {
      for (std::uint64_t id : session->second.consumers) {
        Consumer& consumer = consumers_.at(id);
        consumer.paused = false;
        MakeWaiting(id);
        Dispatch(*consumer.slot, now);
      }
    }
    it = paused_sessions_.erase(it);
  }
}

std::uint64_t BrokerCore::NextTag() {
  if (next_tag_counter_ >> kTagCounterBits != 0) {
    // 2^32 deliveries in this epoch (hours at full speed): go on in the next one. Journaled like
    // the epoch of a start, so the next start goes past it; this record leaves with the delivery's
    // write, not its sync, so only a power cut in that moment and a stale ack from before it could
    // meet a tag twice.
    tag_epoch_ = EpochAfter(tag_epoch_);
    next_tag_counter_ = 1;
    Emit([&] { return records::EncodeEpoch(tag_epoch_); });
  }
  return tag_epoch_ << kTagCounterBits | next_tag_counter_++;
}

void BrokerCore::BeginJournaledEpoch(std::uint64_t skip) {
  tag_epoch_ = last_journaled_epoch_;
  for (std::uint64_t i = 0; i < std::max<std::uint64_t>(skip, 1); ++i) tag_epoch_ = EpochAfter(tag_epoch_);
  next_tag_counter_ = 1;
  Emit([&] { return records::EncodeEpoch(tag_epoch_); });
}

void BrokerCore::ForgetDelivery(std::uint64_t tag) {
  auto it = deliveries_.find(tag);
  if (it == deliveries_.end()) return;
  std::uint64_t consumer_id = it->second.consumer;
  deliveries_.erase(it);
  auto consumer = consumers_.find(consumer_id);
  if (consumer == consumers_.end()) return;
  Consumer& holder = consumer->second;
  --holder.held;
  // Tags are unique for the broker's life, so one no longer in deliveries_ is settled for good.
  if (holder.given.size() > 2 * holder.held + 64) {
    std::erase_if(holder.given, [this](std::uint64_t given) { return !deliveries_.contains(given); });
  }
  MakeWaiting(consumer_id);
}

BrokerCore::Delivery* BrokerCore::OwnDelivery(const SessionKey& key, std::uint64_t tag) {
  auto it = deliveries_.find(tag);
  if (it != deliveries_.end() && consumers_.at(it->second.consumer).session == key) {
    return &it->second;
  }
  ++counters_.unknown_tags;
  return nullptr;
}

}  // namespace zmqkit::internal
