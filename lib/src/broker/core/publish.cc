// Publishing: a PUBLISH admitted into its queues (or each of its messages rejected with its seq),
// idempotent producers and dedup ids, and the confirms that follow.
// BrokerCore is one class (broker_core.h); its definitions are split by responsibility.
#include "broker/core/broker_core.h"

#include "broker/core/core_internal.h"
#include "broker/core/journal_records.h"

#include <algorithm>

namespace zmqkit::internal {

namespace p = protocol;
using namespace core_internal;

void BrokerCore::RejectWholePublish(std::string_view peer, const p::Args& args,
                                    std::size_t payload_frames, std::string_view code,
                                    const std::string& message, std::string_view limit) {
  auto seq = args.Uint("seq");
  if (!seq.ok()) {
    ++counters_.malformed;
    return SendError(peer, p::kErrInvalidArgument, seq.error().message(), p::kPublish);
  }
  // Every seq the client may think it sent is answered. Each message takes at least one frame, so
  // a count beyond both the frames that came and what any message may carry is a lie, and is not
  // believed past them.
  auto count = args.Uint("count", 1);
  const std::uint64_t claimed = count.ok() ? std::max<std::uint64_t>(*count, 1) : 1;
  const std::uint64_t answered =
      std::min<std::uint64_t>(claimed, std::max(payload_frames, options_.max_frames));
  for (std::uint64_t i = 0; i < answered; ++i) SendRejected(peer, *seq + i, code, message, limit);
}

void BrokerCore::HandlePublish(Session& session, const SessionKey& key, const p::Args& args,
                               std::span<zmq::message_t> payload, TimePoint now) {
  auto seq = args.Uint("seq");
  if (!seq.ok()) {
    // Nothing can be rejected by seq: the ERROR is all the client gets.
    ++counters_.malformed;
    SendError(key.peer, p::kErrInvalidArgument, seq.error().message(), p::kPublish);
    return;
  }
  if (!session.first_seq) session.first_seq = *seq;
  auto count = args.Uint("count", 1);
  // Each message is two frames, [header][body], or one, packed [header+body]: n messages are 2n
  // frames or n, never both.
  if (!count.ok() || *count == 0 ||
      (payload.size() != 2 * *count && payload.size() != *count)) {
    ++counters_.malformed;
    return RejectWholePublish(key.peer, args, payload.size(), p::kErrMalformed,
                              "PUBLISH carries [header][body], or packed [header+body], for each "
                              "of its \"count\" messages (default 1) after its args");
  }
  if (*count > MaxPublishBatch()) {
    // A packed PUBLISH of more would fit in max_frames; the limit is on messages, in both forms,
    // so that a client needs to know one number.
    ++counters_.oversized_messages;
    return RejectWholePublish(key.peer, args, payload.size(), p::kErrLimit,
                              "a PUBLISH may carry at most " + std::to_string(MaxPublishBatch()) +
                                  " messages (max_publish_batch in the broker's HEARTBEAT)",
                              p::kLimitPublishBatch);
  }
  PublishRoute route;
  auto exchange = args.Str("exchange", "");
  auto routing_key = args.Str("key", "");
  auto delay_ms = args.Uint("delay_ms", 0);
  auto ttl_ms = args.Uint("ttl_ms", 0);
  auto producer = args.StrView("producer", "");  // no copy: one per publish
  auto pseq = args.Uint("pseq", *seq);
  const Status* invalid = nullptr;
  for (const Status* status : {exchange.ok() ? nullptr : &exchange.error(),
                               routing_key.ok() ? nullptr : &routing_key.error(),
                               delay_ms.ok() ? nullptr : &delay_ms.error(),
                               ttl_ms.ok() ? nullptr : &ttl_ms.error(),
                               producer.ok() ? nullptr : &producer.error(),
                               pseq.ok() ? nullptr : &pseq.error()}) {
    if (status && !invalid) invalid = status;
  }
  static const Status kProducerTooLong =
      Status::InvalidArgument("a producer id is at most 255 bytes");
  if (!invalid && producer->size() > 255) invalid = &kProducerTooLong;
  if (!invalid) {
    route.producer = *producer;
    route.pseq = *pseq;
    route.exchange = *exchange;
    route.key = *routing_key;
    route.delay_us = static_cast<std::int64_t>(*delay_ms) * 1000;
    route.ttl_us = static_cast<std::int64_t>(*ttl_ms) * 1000;
    if (*delay_ms > 0) route.enqueue.delay = Millis(*delay_ms);
    if (*ttl_ms > 0) route.enqueue.ttl = Millis(*ttl_ms);
  }
  const std::size_t frames_per_message = payload.size() / *count;
  bool accepted = false;
  for (std::uint64_t i = 0; i < *count; ++i) {
    const std::uint64_t message_seq = *seq + i;
    if (invalid) {
      SendRejected(key.peer, message_seq, p::kErrInvalidArgument, invalid->message());
      continue;
    }
    if (PublishOne(key, message_seq, route.pseq + i,
                   payload.subspan(frames_per_message * i, frames_per_message), route, now)) {
      accepted = true;
      session.confirm_upto = message_seq;
      owed_confirms_.insert(key.peer);
    }
  }
  if (accepted) {
    for (QueueSlot* slot : route.targets) Dispatch(*slot, now);
  }
}

void BrokerCore::ResolveRoute(PublishRoute& route) {
  route.resolved = true;
  auto names = exchanges_.Route(route.exchange, route.key);
  if (!names.ok()) {
    route.refusal = Refusal{p::kErrNotFound, names.error().message(), {}};
    return;
  }
  for (const std::string& name : *names) {
    Refusal refusal;
    QueueSlot* slot = GetOrCreateQueue(name, refusal);
    if (slot == nullptr) {
      route.refusal = std::move(refusal);
      route.targets.clear();
      return;
    }
    route.targets.push_back(slot);
  }
}

bool BrokerCore::PublishOne(const SessionKey& key, std::uint64_t seq, std::uint64_t pseq,
                            std::span<zmq::message_t> message, PublishRoute& route,
                            TimePoint now) {
  if (!route.producer.empty()) {
    switch (producers_.Check(route.producer, pseq)) {
      case ProducerTable::Verdict::kNew:
        break;
      case ProducerTable::Verdict::kDuplicate:
        // Its first copy is stored (and journaled before this confirm can leave): confirm it.
        ++counters_.duplicates;
        return true;
      case ProducerTable::Verdict::kTooOld:
        SendRejected(key.peer, seq, p::kErrLimit,
                     "producer sequence number " + std::to_string(pseq) +
                         " is older than what the broker remembers of this producer; whether it "
                         "was stored is unknown",
                     p::kLimitProducerWindow);
        return false;
    }
  }
  Refusal refusal;
  std::string_view header;  // as the client wrote it, journaled as it is
  std::optional<Envelope> envelope = DecodePublished(message, header, refusal);
  if (!envelope) {
    SendRejected(key.peer, seq, refusal);
    return false;
  }
  // A message id the producer chose: a copy of one stored within the window is confirmed, as
  // its first copy was (journaled before this confirm can leave), and not stored again.
  std::string_view dedup_id;
  std::int64_t at_us = 0;
  if (dedup_.enabled()) {
    if (auto it = envelope->headers.find(kDedupIdHeader); it != envelope->headers.end()) {
      dedup_id = it->second;
      if (dedup_id.empty() || dedup_id.size() > DedupWindow::kMaxIdBytes) {
        SendRejected(key.peer, seq, p::kErrInvalidArgument,
                     "a \"dedup-id\" header is 1 to 255 bytes");
        return false;
      }
      at_us = unix_micros_();
      if (dedup_.Seen(route.exchange, route.key, dedup_id, at_us)) {
        ++counters_.duplicates;
        return true;
      }
    }
  }
  if (!route.resolved) ResolveRoute(route);
  if (route.refusal) {
    SendRejected(key.peer, seq, *route.refusal);
    return false;
  }
  // All or nothing: a fanout publish is refused whole if any of its queues is full.
  for (QueueSlot* slot : route.targets) {
    if (Status room = slot->queue.CheckRoom(*envelope, route.enqueue); !room.ok()) {
      SendRejected(key.peer, seq, p::kErrQueueFull, room.message());
      return false;
    }
  }
  StorePublished(*envelope, header, pseq, dedup_id, at_us, route, now);
  return true;
}

std::optional<Envelope> BrokerCore::DecodePublished(std::span<zmq::message_t> message,
                                                    std::string_view& header, Refusal& refusal) {
  if (publish_refusal_) {
    refusal = {p::kErrStorage, *publish_refusal_, {}};
    return std::nullopt;
  }
  std::size_t message_bytes = 0;
  for (const zmq::message_t& frame : message) message_bytes += frame.size();
  if (message_bytes > options_.max_message_bytes) {
    ++counters_.oversized_messages;
    refusal = {p::kErrTooLarge,
               "message is " + std::to_string(message_bytes) + " bytes, the limit is " +
                   std::to_string(options_.max_message_bytes),
               p::kLimitMessageBytes};
    return std::nullopt;
  }
  header = View(message[0]);
  std::size_t packed_header_size = 0;
  auto envelope = message.size() == 1 ? DecodePacked(message[0], limits_, packed_header_size)
                                      : DecodeFrames(message, limits_);
  if (message.size() == 1) header = header.substr(0, packed_header_size);
  if (envelope.ok()) return std::move(*envelope);
  const DecodeErrc errc = envelope.error().code;
  if (errc == DecodeErrc::kFrameTooLarge || errc == DecodeErrc::kTooManyHeaders) {
    // The body's size was checked above, so an oversized frame here is the header.
    ++counters_.oversized_messages;
    refusal = {p::kErrLimit, envelope.error().ToString(),
               errc == DecodeErrc::kTooManyHeaders ? p::kLimitHeaders : p::kLimitHeaderBytes};
    return std::nullopt;
  }
  ++counters_.malformed;
  refusal = {p::kErrMalformed, envelope.error().ToString(), {}};
  return std::nullopt;
}

void BrokerCore::StorePublished(Envelope& envelope, std::string_view header, std::uint64_t pseq,
                                std::string_view dedup_id, std::int64_t at_us, PublishRoute& route,
                                TimePoint now) {
  if (route.targets.empty()) ++counters_.unroutable;
  std::vector<std::pair<std::string, std::uint64_t>> numbers;
  for (QueueSlot* slot : route.targets) {
    auto number = slot->queue.Publish(envelope.Clone(), route.enqueue, now);  // room checked
    if (number.ok()) numbers.emplace_back(slot->queue.name(), *number);
    ++counters_.published;
  }
  if (!numbers.empty() || !route.producer.empty() || !dedup_id.empty()) {
    // An unroutable publish of an idempotent producer, or with a message id, is journaled too
    // (with no targets): that it was taken is what a copy sent again after a restart must find.
    if (at_us == 0) at_us = unix_micros_();
    if (!route.producer.empty()) producers_.Stored(route.producer, pseq, at_us);
    if (!dedup_id.empty()) dedup_.Stored(route.exchange, route.key, dedup_id, at_us);
    Emit([&] {
      return records::EncodePublish(numbers, header, envelope.body_view(), at_us, route.delay_us,
                                    route.ttl_us, "", route.producer, pseq, dedup_id,
                                    route.exchange, route.key);
    });
  }
}

// A client's heartbeat may say how far its publishes go. Messages on one connection arrive in
// order, so if this session has received none of them by now, none will ever come: they were
// written into an earlier connection (or to an earlier broker) that went away with them. A client
// cannot tell that by itself — without this, a publish written just before a broker restart would
// wait for its confirm forever unless the client happened to publish again. The CONFIRM names them
// lost ("from" past them) and confirms nothing ("upto" below "from").
void BrokerCore::HandleClientHeartbeat(Session& session, const SessionKey& key,
                                       const p::Args& args) {
  auto published = args.Uint("published", 0);
  if (!published.ok() || *published == 0 || session.first_seq) return;
  session.first_seq = *published + 1;
  session.confirm_upto = *published;
  owed_confirms_.insert(key.peer);
}

}  // namespace zmqkit::internal
