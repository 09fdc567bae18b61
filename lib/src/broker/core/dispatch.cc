// Queues and delivery, and time: which queue is due, handing ready messages to consumers (least
// recently served first), dead letters, and what Tick makes due.
// BrokerCore is one class (broker_core.h); its definitions are split by responsibility.
#include "broker/core/broker_core.h"

#include "broker/core/core_internal.h"
#include "broker/core/journal_records.h"

#include <algorithm>
#include <limits>

namespace zmqkit::internal {

namespace p = protocol;
using namespace core_internal;

BrokerCore::QueueSlot* BrokerCore::GetOrCreateQueue(std::string_view name, Refusal& refusal) {
  if (auto it = queues_.find(name); it != queues_.end()) return &it->second;
  if (auto invalid = CheckName("queue", name)) {
    refusal = std::move(*invalid);
    return nullptr;
  }
  if (queues_.size() >= options_.max_queues) {
    refusal = {p::kErrLimit,
               "the broker holds its maximum of " + std::to_string(options_.max_queues) + " queues",
               p::kLimitQueues};
    return nullptr;
  }
  auto it = queues_.try_emplace(std::string(name), std::string(name), options_.queue_defaults).first;
  Emit([&] { return records::EncodeQueue(name, options_.queue_defaults); });
  return &it->second;
}

void BrokerCore::AfterFailure(QueueSlot& slot, MessageQueue::FailResult failed,
                              FailureReason reason, TimePoint now) {
  if (!failed.found) return;
  Emit([&] { return records::EncodeFail(slot.queue.name(), failed.number, failed.attempt, reason); });
  if (!failed.dead) return;
  const DeadLetterReason why = failed.dead->reason;
  const std::uint64_t dlq_number = PlaceDeadLetter(std::move(*failed.dead), now);
  Emit([&] { return records::EncodeDead(slot.queue.name(), failed.number, why, dlq_number); });
}

void BrokerCore::PrepareRedrive(Envelope& message) {
  message.attempt = 0;
  message.headers["x-redriven"] = message.headers[std::string(kHeaderDeathReason)];
  for (std::string_view header : {kHeaderOriginQueue, kHeaderDeathReason, kHeaderAttempts}) {
    message.headers.erase(std::string(header));
  }
}

std::optional<std::size_t> BrokerCore::RedrivenFrontBytes(const MessageQueue& dlq) {
  const auto front_bytes = dlq.ReadyFrontBytes();
  if (!front_bytes) return std::nullopt;
  const auto front = dlq.Contents(1);
  if (front.empty() || front[0].place != "ready") return std::nullopt;
  Envelope redriven;
  redriven.headers = front[0].headers;
  PrepareRedrive(redriven);
  auto header_bytes = [](const Headers& headers) {
    std::size_t bytes = 0;
    for (const auto& [key, value] : headers) bytes += key.size() + value.size();
    return bytes;
  };
  return *front_bytes - header_bytes(front[0].headers) + header_bytes(redriven.headers);
}

std::uint64_t BrokerCore::PlaceDeadLetter(DeadLetter dead, TimePoint now,
                                          std::optional<std::uint64_t> number) {
  ++counters_.dead_lettered;
  const std::string origin = dead.envelope.headers[std::string(kHeaderOriginQueue)];
  // A dead-letter queue's own failures stay in it rather than nesting ".dlq.dlq".
  const bool from_dlq = origin.ends_with(kDeadLetterSuffix);
  const std::string name = from_dlq ? origin : origin + std::string(kDeadLetterSuffix);
  auto it = queues_.find(name);
  if (it == queues_.end()) {
    // Created even past max_queues and without name checks: a dead letter is never dropped.
    QueueOptions options;
    options.max_attempts = 0;
    options.retry_delay = std::chrono::milliseconds(0);  // for inspection: no back-off
    options.message_ttl = std::chrono::milliseconds(0);
    options.max_length = std::numeric_limits<std::size_t>::max();
    options.max_bytes = std::numeric_limits<std::size_t>::max();
    it = queues_.try_emplace(name, name, options).first;
    Emit([&] { return records::EncodeQueue(name, options); });
  }
  EnqueueOptions placement;
  placement.number = number;
  auto placed = it->second.queue.Publish(std::move(dead.envelope), placement, now);  // unbounded
  Dispatch(it->second, now);
  return placed.ok() ? *placed : 0;
}

void BrokerCore::DeadlineChanged(QueueSlot& slot) {
  if (slot.deadline_dirty) return;
  slot.deadline_dirty = true;
  deadline_dirty_.push_back(&slot);
}

void BrokerCore::Reindex(QueueSlot& slot, std::set<std::pair<TimePoint, QueueSlot*>>& index) {
  slot.deadline_dirty = false;
  const std::optional<TimePoint> due = slot.queue.NextDeadline();
  // An entry earlier than the queue's deadline is left as it is: when it comes due, Tick looks
  // and indexes the queue anew. A busy queue's earliest lease moves later with nearly every ack,
  // and moving its entry each turn would cost a tree node each time.
  if (slot.indexed_due && (!due || *due >= *slot.indexed_due)) return;
  if (slot.indexed_due) index.erase({*slot.indexed_due, &slot});
  if (due) index.emplace(*due, &slot);
  slot.indexed_due = due;
}

void BrokerCore::ReindexDeadlines() const {
  for (QueueSlot* slot : deadline_dirty_) Reindex(*slot, due_queues_);
  deadline_dirty_.clear();
}

void BrokerCore::Dispatch(QueueSlot& slot, TimePoint now) {
  // Whatever changed a queue dispatches it: a publish, a settle, a failure, a dead letter.
  DeadlineChanged(slot);
  dispatch_time_ = std::max(dispatch_time_, now);
  if (slot.dispatch_due) return;
  slot.dispatch_due = true;
  dispatch_due_.push_back(&slot);
}

void BrokerCore::DispatchDue() {
  // Index, not iterator: a dispatch never schedules another, but stay safe if one ever does.
  for (std::size_t i = 0; i < dispatch_due_.size(); ++i) {
    QueueSlot& slot = *dispatch_due_[i];
    slot.dispatch_due = false;
    DispatchNow(slot, dispatch_time_);
  }
  dispatch_due_.clear();
}

void BrokerCore::DispatchNow(QueueSlot& slot, TimePoint now) {
  if (slot.queue.ready() > 0 && !slot.waiting.empty()) DeadlineChanged(slot);  // leases to come
  while (slot.queue.ready() > 0 && !slot.waiting.empty()) {
    const std::uint64_t consumer_id = slot.waiting.front();
    slot.waiting.pop_front();
    Consumer& consumer = consumers_.at(consumer_id);
    consumer.waiting = false;
    if (consumer.session.side == Side::kClients) {
      const bool delivered = DeliverToClient(slot, consumer_id, now);
      MakeWaiting(consumer_id);  // back of the line, if it has credit left
      if (!delivered) return;
      continue;
    }
    const std::uint64_t tag = NextTag();
    auto lease = slot.queue.LeaseNext(tag, now, consumer.ack_timeout);
    if (!lease) {
      MakeWaiting(consumer_id);
      return;
    }
    consumer.given.push_back(tag);
    ++consumer.held;
    deliveries_.emplace(tag, Delivery{consumer_id, &slot, lease->reply_to});
    std::vector<zmq::message_t> frames;
    frames.push_back(TagAddress(tag));
    frames.emplace_back();
    frames.push_back(std::move(lease->envelope.body));
    SendDelivery(Side::kWorkers, consumer.session.peer, std::move(frames), {tag});
    MakeWaiting(consumer_id);
  }
}

bool BrokerCore::DeliverToClient(QueueSlot& slot, std::uint64_t consumer_id, TimePoint now) {
  Consumer& consumer = consumers_.at(consumer_id);
  const std::size_t credit = consumer.prefetch - std::min<std::size_t>(consumer.prefetch, consumer.held);
  const std::size_t wanted = std::min<std::size_t>({credit, consumer.batch, slot.queue.ready()});
  std::vector<std::uint64_t> tags;
  tags.reserve(wanted);
  std::vector<zmq::message_t> payload;
  payload.reserve(2 * wanted);
  std::string header;
  std::size_t bytes = 0;
  // Big messages go few at a time: a DELIVER stops growing past kMaxDeliverBytes of bodies.
  while (tags.size() < wanted && bytes < p::kMaxDeliverBytes) {
    const std::uint64_t tag = NextTag();
    auto lease = slot.queue.LeaseNext(tag, now, consumer.ack_timeout);
    if (!lease) break;
    consumer.given.push_back(tag);
    ++consumer.held;
    deliveries_.emplace(tag, Delivery{consumer_id, &slot, lease->reply_to});
    tags.push_back(tag);
    header.clear();
    EncodeHeader(lease->envelope, header);
    payload.emplace_back(header.data(), header.size());
    bytes += lease->envelope.body.size();
    payload.push_back(std::move(lease->envelope.body));
  }
  if (tags.empty()) return false;
  // One message: the single form every client understands. More (only for a consumer that asked
  // for batches): "tags", in the order of the envelopes that follow.
  p::ArgsWriter args(3);
  if (tags.size() == 1) {
    args.Uint("tag", tags.front());
  } else {
    args.UintList("tags", tags);
  }
  args.Str("consumer", consumer.name).Str("queue", slot.queue.name());
  SendDelivery(Side::kClients, consumer.session.peer,
               p::Frames(p::kDeliver, args.Finish(), std::move(payload)), std::move(tags));
  return true;
}

void BrokerCore::Tick(TimePoint now) {
  input_time_ = now;
  ReindexDeadlines();
  // Only the queues with something due; each is re-indexed when it is dispatched below.
  std::vector<QueueSlot*> due;
  for (auto it = due_queues_.begin(); it != due_queues_.end() && it->first <= now; ++it) {
    due.push_back(it->second);
  }
  for (QueueSlot* due_slot : due) {
    QueueSlot& slot = *due_slot;
    // Out of the index: it goes back in, at its next deadline, when it is dispatched below.
    due_queues_.erase({*slot.indexed_due, &slot});
    slot.indexed_due.reset();
    const std::string& name = slot.queue.name();
    auto result = slot.queue.Tick(now);
    for (const auto& timed_out : result.timed_out) {
      ++counters_.deliveries_taken_back;
      ForgetDelivery(timed_out.tag);
      Emit([&] { return records::EncodeFail(name, timed_out.number, timed_out.attempt, FailureReason::kTimedOut); });
    }
    for (DeadLetter& dead : result.dead) {
      const std::uint64_t number = dead.number;
      const DeadLetterReason why = dead.reason;
      const std::uint64_t dlq_number = PlaceDeadLetter(std::move(dead), now);
      Emit([&] { return records::EncodeDead(name, number, why, dlq_number); });
    }
    for (const auto& readied : result.readied) {
      Emit([&] { return records::EncodeReady(name, readied.number, readied.order); });
    }
    Dispatch(slot, now);
  }
  if (!paused_sessions_.empty()) ResumePausedSessions(now);
  if (next_housekeeping_ && now >= *next_housekeeping_) Housekeeping(now);
  DispatchDue();
}

void BrokerCore::Housekeeping(TimePoint now) {
  const auto silence_limit = options_.heartbeat_interval * options_.liveness;
  std::vector<SessionKey> dead;
  for (auto& [key, session] : sessions_) {
    if (now - session.last_seen >= silence_limit) {
      dead.push_back(key);
    } else if (now - session.last_heartbeat_sent >= options_.heartbeat_interval) {
      session.last_heartbeat_sent = now;
      if (key.side == Side::kWorkers) {
        std::vector<zmq::message_t> frames;
        frames.emplace_back(&p::kPppHeartbeat, 1);
        SendHeartbeat(Side::kWorkers, key.peer, std::move(frames));
      } else {
        SendHeartbeat(Side::kClients, key.peer, ClientHeartbeat());
      }
    }
  }
  for (const SessionKey& key : dead) {
    ++counters_.peers_expired;
    if (key.side == Side::kClients && expired_.insert(key.peer).second) {
      expired_order_.push_back(key.peer);
      constexpr std::size_t kRememberedExpiries = 10000;
      if (expired_order_.size() > kRememberedExpiries) {
        expired_.erase(expired_order_.front());
        expired_order_.pop_front();
      }
    }
    Log(std::string(key.side == Side::kWorkers ? "worker" : "client") +
        " silent for " + std::to_string(options_.liveness) + " heartbeats: taking back its work");
    DropSession(key, now);
  }
  const std::int64_t now_unix = unix_micros_();
  producers_.Expire(now_unix);
  dedup_.Expire(now_unix);
  log_budget_ = 20;
  if (log_suppressed_ > 0) {
    log_.push_back(std::to_string(log_suppressed_) + " more log lines suppressed");
    log_suppressed_ = 0;
  }
  next_housekeeping_ = sessions_.empty() ? std::nullopt
                                         : std::optional(now + options_.heartbeat_interval / 4);
}

std::optional<TimePoint> BrokerCore::NextDeadline() const {
  std::optional<TimePoint> next = next_housekeeping_;
  for (const auto& [key, until] : paused_sessions_) {
    if (!next || until < *next) next = until;
  }
  ReindexDeadlines();
  if (!due_queues_.empty() && (!next || due_queues_.begin()->first < *next)) {
    next = due_queues_.begin()->first;
  }
  return next;
}

}  // namespace zmqkit::internal
