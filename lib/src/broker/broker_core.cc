#include "broker/broker_core.h"

#include "broker/journal_records.h"
#include "zmqkit/message_id.h"
#include "util/coding.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>

namespace zmqkit::internal {
namespace {

namespace p = protocol;

std::string_view View(const zmq::message_t& frame) { return {frame.data<char>(), frame.size()}; }

constexpr std::string_view kDeadLetterSuffix = ".dlq";
// A delivery tag is epoch << kTagCounterBits | counter (BrokerCore::tag_epoch_).
constexpr unsigned kTagCounterBits = 32;
constexpr std::uint64_t kMaxTagEpoch = (std::uint64_t{1} << 21) - 1;
// How long a peer whose connection refused a delivery gets nothing before it is tried again. Short:
// a consumer that reads again should not wait long; a probe costs one DELIVER built and refused.
constexpr Duration kRefusedSendPause = std::chrono::milliseconds(20);

std::uint64_t EpochAfter(std::uint64_t epoch) { return epoch >= kMaxTagEpoch ? 1 : epoch + 1; }

std::uint64_t RandomEpoch() {
  std::random_device random;
  return std::uniform_int_distribution<std::uint64_t>(1, kMaxTagEpoch)(random);
}
// More than a well-behaved client ever gets; a peer past it is only sending garbage.
constexpr std::uint32_t kErrorsPerPeerPerSecond = 100;

}  // namespace

std::optional<BrokerCore::Refusal> BrokerCore::CheckName(std::string_view what,
                                                         std::string_view name) const {
  if (name.empty() || name.size() > options_.max_name_bytes) {
    return Refusal{name.empty() ? p::kErrInvalidArgument : p::kErrLimit,
                   std::string(what) + " names are 1 to " + std::to_string(options_.max_name_bytes) +
                       " bytes",
                   name.empty() ? std::string_view() : p::kLimitNameBytes};
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':';
    if (!ok) {
      std::string message(what);
      message.append(" name \"").append(name).append("\" may only hold letters, digits and . _ - :");
      return Refusal{p::kErrInvalidArgument, std::move(message), {}};
    }
  }
  return std::nullopt;
}

namespace {

// A PPP worker's job address: the delivery tag, 8 bytes big-endian. The worker echoes it back.
zmq::message_t TagAddress(std::uint64_t tag) {
  unsigned char bytes[8];
  EncodeBigEndian(bytes, tag, sizeof bytes);
  return zmq::message_t(bytes, sizeof bytes);
}

std::optional<std::uint64_t> ParseTagAddress(const zmq::message_t& frame) {
  if (frame.size() != 8) return std::nullopt;
  return DecodeBigEndian(frame.data<unsigned char>(), 8);
}

std::string_view ErrorCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kNotFound: return p::kErrNotFound;
    case StatusCode::kResourceExhausted: return p::kErrLimit;
    case StatusCode::kFailedPrecondition: return p::kErrConflict;
    default: return p::kErrInvalidArgument;
  }
}

// What a client without an admin key may not do (BrokerOptions::admin_keys).
bool IsAdminCommand(std::string_view command) {
  return command == p::kDeclareQueue || command == p::kDeclareExchange || command == p::kBind ||
         command == p::kUnbind || command == p::kStats || command == p::kPurge ||
         command == p::kRedrive || command == p::kPeek;
}

// The ZAP User-Id libzmq attached to a frame read from the network: the client's Z85 public key
// when the access policy allowed it (zap_server.h); empty without one.
std::string ZapUserId(const zmq::message_t& frame) {
  const char* value = zmq_msg_gets(const_cast<zmq_msg_t*>(frame.handle()), "User-Id");
  return value == nullptr ? std::string() : std::string(value);
}

Duration Millis(std::uint64_t ms) { return std::chrono::milliseconds(static_cast<std::int64_t>(ms)); }

}  // namespace

BrokerCore::BrokerCore(const BrokerOptions& options)
    : options_(options),
      peer_identity_(ZapUserId),
      tag_epoch_(RandomEpoch()),
      producers_(ProducerTable::Limits{
          std::chrono::duration_cast<std::chrono::microseconds>(options.producer_window).count(),
          options.max_producers, 4096}),
      dedup_(DedupWindow::Limits{
          std::chrono::duration_cast<std::chrono::microseconds>(options.dedup_window).count(),
          options.max_dedup_ids}),
      instance_(MessageId::Generate().ToString()) {
  limits_.max_body_bytes = options_.max_message_bytes;
  limits_.max_header_bytes = std::min(options_.max_message_bytes, options_.max_header_bytes);
  limits_.max_headers = options_.max_headers;
}

// ---- Input -----------------------------------------------------------------------------------

void BrokerCore::OnClientMessage(std::string_view peer, std::span<zmq::message_t> frames,
                                 TimePoint now) {
  ++counters_.messages_in;
  input_time_ = now;
  if (frames.empty()) {
    ++counters_.malformed;
    return;
  }
  if (frames[0].size() == 0) {  // REQ's empty delimiter: a Lazy Pirate client
    HandleRequest(peer, frames.subspan(1), now);
    return;
  }
  std::string_view signature = View(frames[0]);
  if (signature != p::kSignature) {
    if (signature.starts_with("ZKB")) {
      ++counters_.unsupported_version;
      SendError(peer, p::kErrUnsupportedVersion,
                "this broker speaks " + std::string(p::kSignature), "");
    } else {
      ++counters_.malformed;
      SendError(peer, p::kErrMalformed, "the first frame must be the signature ZKB1", "");
    }
    Log("malformed message from a client: bad signature");
    return;
  }
  if (frames.size() < 3) {
    ++counters_.malformed;
    SendError(peer, p::kErrMalformed, "expected [ZKB1][command][args][payload...]", "");
    return;
  }
  std::string_view command = View(frames[1]);
  auto args = p::Args::Parse(View(frames[2]));
  if (!args.ok()) {
    ++counters_.malformed;
    SendError(peer, p::kErrMalformed, args.error().message(), command);
    Log("malformed args from a client: " + args.error().message());
    return;
  }
  SessionKey key{Side::kClients, std::string(peer)};
  const bool new_session = !sessions_.contains(key);  // one lookup: this runs for every message
  if (new_session && sessions_.size() >= options_.max_clients) {
    const std::string message = "the broker serves its maximum of " +
                                std::to_string(options_.max_clients) + " clients; try again later";
    if (command == p::kPublish) {
      RejectWholePublish(peer, *args, frames.size() - 3, p::kErrLimit, message, p::kLimitClients);
    } else {
      SendError(peer, p::kErrLimit, message, command, std::nullopt, p::kLimitClients);
    }
    Log("refused a new client: max_clients reached");
    return;
  }
  if (new_session && expired_.erase(key.peer) > 0) {
    SendError(peer, p::kErrSessionExpired,
              "the broker did not hear from this client for " + std::to_string(options_.liveness) +
                  " heartbeats and took back its deliveries; its consumers are gone: CONSUME again",
              "");
  }
  Session& session = Touch(key, now);
  // A first heartbeat at once: a client reconnecting after a broker restart learns of it within
  // one round trip, instead of waiting for the next interval.
  if (new_session) SendHeartbeat(Side::kClients, key.peer, ClientHeartbeat());
  auto rid = args->Uint("rid", 0);
  current_rid_ = rid.ok() ? *rid : 0;
  if (!options_.admin_keys.empty() && IsAdminCommand(command) &&
      !options_.admin_keys.contains(peer_identity_(frames[0]))) {
    ++counters_.forbidden;
    SendError(peer, p::kErrForbidden,
              std::string(command) + " needs an admin key (the broker's --admin-keys); this "
              "client may publish, consume and settle only", command);
    Log("refused " + std::string(command) + " from a client without an admin key");
  } else {
    HandleNative(session, key, command, *args, frames.subspan(3), now);
  }
  current_rid_ = 0;
}

void BrokerCore::OnOversizedMessage(Side side, std::string_view peer,
                                    std::span<zmq::message_t> kept, std::size_t dropped,
                                    TimePoint now) {
  ++counters_.messages_in;
  input_time_ = now;
  ++counters_.oversized_messages;
  Log("dropped a message with more than " + std::to_string(options_.max_frames) + " frames");
  if (side != Side::kClients) return;
  const std::string message = "a message may have at most " + std::to_string(options_.max_frames) +
                              " frames; this one had " + std::to_string(kept.size() + dropped) +
                              " and was dropped";
  if (kept.size() >= 3 && View(kept[0]) == p::kSignature && View(kept[1]) == p::kPublish) {
    if (auto args = p::Args::Parse(View(kept[2])); args.ok() && args->Has("seq")) {
      return RejectWholePublish(peer, *args, kept.size() - 3 + dropped, p::kErrLimit, message,
                                p::kLimitFrames);
    }
  }
  SendError(peer, p::kErrLimit, message, "", std::nullopt, p::kLimitFrames);
}

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

void BrokerCore::HandleNative(Session& session, const SessionKey& key, std::string_view command,
                              const p::Args& args, std::span<zmq::message_t> payload,
                              TimePoint now) {
  if (command == p::kPublish) return HandlePublish(session, key, args, payload, now);
  if (command == p::kAck || command == p::kNack || command == p::kExtend) {
    return HandleSettle(key, command, args, now);
  }
  if (command == p::kHeartbeat) return HandleClientHeartbeat(session, key, args);
  if (command == p::kConsume) return HandleConsume(session, key, args, now);
  if (command == p::kCancel) return HandleCancel(session, key, args, now);
  if (command == p::kDeclareQueue) return HandleDeclareQueue(key, args);
  if (command == p::kDeclareExchange) return HandleDeclareExchange(key, args);
  if (command == p::kBind) return HandleBind(key, args, true);
  if (command == p::kUnbind) return HandleBind(key, args, false);
  if (command == p::kStats) return HandleStats(key, args);
  if (command == p::kPurge) return HandlePurge(key, args);
  if (command == p::kRedrive) return HandleRedrive(key, args, now);
  if (command == p::kPeek) return HandlePeek(key, args);
  if (command == p::kBye) return DropSession(key, now);
  ++counters_.unknown_commands;
  SendError(key.peer, p::kErrUnknownCommand,
            "unknown command \"" + std::string(command.substr(0, 32)) + "\"", command);
  Log("unknown command from a client");
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
  if (publish_refusal_) {
    SendRejected(key.peer, seq, p::kErrStorage, *publish_refusal_);
    return false;
  }
  std::size_t message_bytes = 0;
  for (const zmq::message_t& frame : message) message_bytes += frame.size();
  if (message_bytes > options_.max_message_bytes) {
    ++counters_.oversized_messages;
    SendRejected(key.peer, seq, p::kErrTooLarge,
                 "message is " + std::to_string(message_bytes) + " bytes, the limit is " +
                     std::to_string(options_.max_message_bytes),
                 p::kLimitMessageBytes);
    return false;
  }
  // The header's bytes as the client wrote them, journaled as they are.
  std::string_view header = View(message[0]);
  std::size_t packed_header_size = 0;
  auto envelope = message.size() == 1 ? DecodePacked(message[0], limits_, packed_header_size)
                                      : DecodeFrames(message, limits_);
  if (message.size() == 1) header = header.substr(0, packed_header_size);
  if (!envelope.ok()) {
    const DecodeErrc errc = envelope.error().code;
    if (errc == DecodeErrc::kFrameTooLarge || errc == DecodeErrc::kTooManyHeaders) {
      // The body's size was checked above, so an oversized frame here is the header.
      ++counters_.oversized_messages;
      SendRejected(key.peer, seq, p::kErrLimit, envelope.error().ToString(),
                   errc == DecodeErrc::kTooManyHeaders ? p::kLimitHeaders : p::kLimitHeaderBytes);
      return false;
    }
    ++counters_.malformed;
    SendRejected(key.peer, seq, p::kErrMalformed, envelope.error().ToString());
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
  if (route.targets.empty()) ++counters_.unroutable;
  std::vector<std::pair<std::string, std::uint64_t>> numbers;
  for (QueueSlot* slot : route.targets) {
    auto number = slot->queue.Publish(envelope->Clone(), route.enqueue, now);  // room checked above
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
      return records::EncodePublish(numbers, header, envelope->body_view(), at_us, route.delay_us,
                                    route.ttl_us, "", route.producer, pseq, dedup_id,
                                    route.exchange, route.key);
    });
  }
  return true;
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

void BrokerCore::HandleDeclareQueue(const SessionKey& key, const p::Args& args) {
  auto name = args.Str("name");
  if (!name.ok()) return SendError(key.peer, p::kErrInvalidArgument, name.error().message(), p::kDeclareQueue);
  Refusal refusal;
  QueueSlot* slot = GetOrCreateQueue(*name, refusal);
  if (slot == nullptr) return SendError(key.peer, refusal, p::kDeclareQueue);
  QueueOptions options = slot->queue.options();
  auto millis = [&](std::string_view field, std::chrono::milliseconds& target) {
    auto value = args.Uint(field, static_cast<std::uint64_t>(target.count()));
    if (value.ok()) target = std::chrono::milliseconds(static_cast<std::int64_t>(*value));
    return value.ok();
  };
  auto count = [&](std::string_view field, auto& target) {
    auto value = args.Uint(field, static_cast<std::uint64_t>(target));
    if (value.ok()) target = static_cast<std::remove_reference_t<decltype(target)>>(*value);
    return value.ok();
  };
  bool ok = millis("ack_timeout_ms", options.ack_timeout) && count("max_attempts", options.max_attempts) &&
            millis("retry_delay_ms", options.retry_delay) &&
            millis("max_retry_delay_ms", options.max_retry_delay) &&
            millis("message_ttl_ms", options.message_ttl) && count("max_length", options.max_length) &&
            count("max_bytes", options.max_bytes);
  if (!ok || options.ack_timeout.count() == 0) {
    return SendError(key.peer, p::kErrInvalidArgument, "queue options must be non-negative integers "
                     "(ack_timeout_ms positive)", p::kDeclareQueue);
  }
  slot->queue.set_options(options);
  Emit([&] { return records::EncodeQueue(*name, options); });
  SendOk(key);
}

void BrokerCore::HandleDeclareExchange(const SessionKey& key, const p::Args& args) {
  auto name = args.Str("name");
  auto type = args.Str("type", "fanout");
  if (!name.ok() || !type.ok() || (*type != "fanout" && *type != "topic")) {
    return SendError(key.peer, p::kErrInvalidArgument,
                     "DECLARE_EXCHANGE needs name (str) and type \"fanout\" or \"topic\"",
                     p::kDeclareExchange);
  }
  if (auto invalid = CheckName("exchange", *name)) {
    return SendError(key.peer, *invalid, p::kDeclareExchange);
  }
  if (!exchanges_.Exists(*name) && exchanges_.all().size() >= options_.max_queues) {
    return SendError(key.peer, p::kErrLimit,
                     "the broker holds its maximum of " + std::to_string(options_.max_queues) +
                         " exchanges",
                     p::kDeclareExchange, std::nullopt, p::kLimitExchanges);
  }
  const ExchangeType exchange_type = *type == "fanout" ? ExchangeType::kFanout : ExchangeType::kTopic;
  Status declared = exchanges_.Declare(*name, exchange_type);
  if (!declared.ok()) {
    return SendError(key.peer, ErrorCodeFor(declared), declared.message(), p::kDeclareExchange);
  }
  Emit([&] { return records::EncodeExchange(*name, exchange_type); });
  SendOk(key);
}

void BrokerCore::HandleBind(const SessionKey& key, const p::Args& args, bool bind) {
  std::string_view command = bind ? p::kBind : p::kUnbind;
  auto exchange = args.Str("exchange");
  auto queue = args.Str("queue");
  auto pattern = args.Str("pattern", "");
  if (!exchange.ok() || !queue.ok() || !pattern.ok()) {
    return SendError(key.peer, p::kErrInvalidArgument,
                     "needs exchange and queue (str), optional pattern (str)", command);
  }
  if (pattern->size() > options_.max_name_bytes) {
    return SendError(key.peer, p::kErrLimit,
                     "binding patterns are at most " + std::to_string(options_.max_name_bytes) +
                         " bytes",
                     command, std::nullopt, p::kLimitNameBytes);
  }
  if (bind) {
    auto exchange_it = exchanges_.all().find(*exchange);
    if (exchange_it != exchanges_.all().end() &&
        exchange_it->second.bindings.size() >= options_.max_queues) {
      return SendError(key.peer, p::kErrLimit,
                       "exchange \"" + *exchange + "\" holds its maximum of " +
                           std::to_string(options_.max_queues) + " bindings",
                       command, std::nullopt, p::kLimitBindings);
    }
    Refusal refusal;
    if (GetOrCreateQueue(*queue, refusal) == nullptr) return SendError(key.peer, refusal, command);
  }
  Status status = bind ? exchanges_.Bind(*exchange, *queue, *pattern)
                       : exchanges_.Unbind(*exchange, *queue, *pattern);
  if (!status.ok()) return SendError(key.peer, ErrorCodeFor(status), status.message(), command);
  Emit([&] { return records::EncodeBind(bind, *exchange, *queue, *pattern); });
  SendOk(key);
}

void BrokerCore::HandleStats(const SessionKey& key, const p::Args& args) {
  auto only = args.Str("queue", "");
  auto with_queues = args.Bool("queues", true);
  if (!only.ok()) return SendError(key.peer, p::kErrInvalidArgument, only.error().message(), p::kStats);
  if (!with_queues.ok()) {
    return SendError(key.peer, p::kErrInvalidArgument, with_queues.error().message(), p::kStats);
  }
  std::vector<const QueueSlot*> selected;
  if (*with_queues) {
    for (const auto& [name, slot] : queues_) {
      if (only->empty() || name == *only) selected.push_back(&slot);
    }
  }
  if (*with_queues && !only->empty() && selected.empty()) {
    return SendError(key.peer, p::kErrNotFound, "no queue \"" + *only + "\"", p::kStats);
  }
  p::ArgsWriter writer(3);
  writer.Uint("rid", current_rid_);
  writer.Key("broker");
  auto& packer = writer.packer();
  const BrokerCounters& b = counters_;
  const std::pair<std::string_view, std::uint64_t> broker_fields[] = {
      {"messages_in", b.messages_in},
      {"published", b.published},
      {"unroutable", b.unroutable},
      {"refused", b.refused},
      {"malformed", b.malformed},
      {"unknown_commands", b.unknown_commands},
      {"unsupported_version", b.unsupported_version},
      {"unknown_tags", b.unknown_tags},
      {"peers_expired", b.peers_expired},
      {"deliveries_taken_back", b.deliveries_taken_back},
      {"dead_lettered", b.dead_lettered},
      {"journal_failures", b.journal_failures},
      {"journal_syncs", b.journal_syncs},
      {"forbidden", b.forbidden},
      {"connections_refused", b.connections_refused},
      {"oversized_messages", b.oversized_messages},
      {"errors_unsent", b.errors_unsent},
      {"deliveries_withheld", b.deliveries_withheld},
      {"answers_held", b.answers_held},
      {"answers_dropped", b.answers_dropped},
      {"duplicates", b.duplicates},
      {"late_replies", b.late_replies},
      {"producers", producers_.size()},
      {"dedup_ids", dedup_.size()},
      {"dedup_ids_evicted_early", dedup_.evicted_early()},
      {"sessions", sessions_.size()},
      {"consumers", consumers_.size()},
      {"queues", queues_.size()}};
  packer.pack_map(static_cast<std::uint32_t>(std::size(broker_fields)));
  for (const auto& [field, value] : broker_fields) {
    p::PackStr(packer, field);
    packer.pack_uint64(value);
  }
  writer.Key("queues");
  packer.pack_array(static_cast<std::uint32_t>(selected.size()));
  for (const QueueSlot* slot : selected) {
    const MessageQueue& queue = slot->queue;
    auto dlq = queues_.find(queue.name() + std::string(kDeadLetterSuffix));
    const QueueCounters& c = queue.counters();
    const std::pair<std::string_view, std::uint64_t> fields[] = {
        {"ready", queue.ready()},        {"in_flight", queue.in_flight()},
        {"delayed", queue.delayed()},    {"consumers", slot->consumers},
        {"bytes", queue.bytes()},        {"published", c.published},
        {"delivered", c.delivered},      {"acked", c.acked},
        {"requeued", c.requeued},        {"dead_lettered", c.dead_lettered},
        {"expired", c.expired},          {"refused_full", c.refused_full},
        {"dlq_depth", dlq == queues_.end() ? 0 : dlq->second.queue.size()}};
    packer.pack_map(static_cast<std::uint32_t>(std::size(fields) + 1));
    p::PackStr(packer, "name");
    p::PackStr(packer, queue.name());
    for (const auto& [field, value] : fields) {
      p::PackStr(packer, field);
      packer.pack_uint64(value);
    }
  }
  Send(Side::kClients, key.peer, p::Frames(p::kOk, writer.Finish()));
}

void BrokerCore::HandlePurge(const SessionKey& key, const p::Args& args) {
  auto name = args.Str("queue");
  if (!name.ok()) return SendError(key.peer, p::kErrInvalidArgument, name.error().message(), p::kPurge);
  auto it = queues_.find(*name);
  if (it == queues_.end()) return SendError(key.peer, p::kErrNotFound, "no queue \"" + *name + "\"", p::kPurge);
  std::vector<std::uint64_t> removed = it->second.queue.Purge();
  const std::size_t purged = removed.size();
  if (!removed.empty()) Emit([&] { return records::EncodeRemove(*name, removed); });
  Log("queue \"" + *name + "\" purged: " + std::to_string(purged) + " messages");
  Send(Side::kClients, key.peer,
       p::Frames(p::kOk, p::ArgsWriter(2).Uint("rid", current_rid_).Uint("purged", purged).Finish()));
}

void BrokerCore::HandleRedrive(const SessionKey& key, const p::Args& args, TimePoint now) {
  auto name = args.Str("queue");
  auto limit = args.Uint("limit", std::numeric_limits<std::uint64_t>::max());
  if (!name.ok() || !limit.ok()) {
    return SendError(key.peer, p::kErrInvalidArgument, "REDRIVE needs queue (str), optional limit",
                     p::kRedrive);
  }
  auto origin = queues_.find(*name);
  auto dlq = queues_.find(*name + std::string(kDeadLetterSuffix));
  if (origin == queues_.end() || dlq == queues_.end()) {
    return SendError(key.peer, p::kErrNotFound, "no queue \"" + *name + "\" with a dead-letter queue",
                     p::kRedrive);
  }
  std::uint64_t moved = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> moves;
  while (moved < *limit) {
    auto next_bytes = dlq->second.queue.ReadyFrontBytes();
    if (!next_bytes || !origin->second.queue.CheckRoom(*next_bytes).ok()) break;
    auto taken = dlq->second.queue.TakeReady(1);
    auto& [dlq_number, message] = taken.front();
    PrepareRedrive(message);
    auto number = origin->second.queue.Publish(std::move(message), {}, now);  // room checked
    if (number.ok()) moves.emplace_back(dlq_number, *number);
    ++moved;
  }
  if (!moves.empty()) Emit([&] { return records::EncodeRedrive(*name, moves, unix_micros_()); });
  Send(Side::kClients, key.peer,
       p::Frames(p::kOk, p::ArgsWriter(2).Uint("rid", current_rid_).Uint("moved", moved).Finish()));
  Dispatch(origin->second, now);
}

// Lists a queue's messages without touching them: no lease, no attempt, no journal record.
void BrokerCore::HandlePeek(const SessionKey& key, const p::Args& args) {
  auto name = args.Str("queue");
  auto limit = args.Uint("limit", 100);
  if (!name.ok() || !limit.ok()) {
    return SendError(key.peer, p::kErrInvalidArgument, "PEEK needs queue (str), optional limit", p::kPeek);
  }
  auto it = queues_.find(*name);
  if (it == queues_.end()) return SendError(key.peer, p::kErrNotFound, "no queue \"" + *name + "\"", p::kPeek);
  auto contents = it->second.queue.Contents(
      static_cast<std::size_t>(std::min<std::uint64_t>(*limit, SIZE_MAX)));
  p::ArgsWriter writer(2);
  writer.Uint("rid", current_rid_);
  writer.Key("messages");
  auto& packer = writer.packer();
  packer.pack_array(static_cast<std::uint32_t>(contents.size()));
  for (const auto& message : contents) {
    packer.pack_map(6);
    p::PackStr(packer, "number");
    packer.pack_uint64(message.number);
    p::PackStr(packer, "place");
    p::PackStr(packer, message.place);
    p::PackStr(packer, "priority");
    packer.pack_uint64(message.priority);
    p::PackStr(packer, "attempt");
    packer.pack_uint64(message.attempt);
    p::PackStr(packer, "headers");
    packer.pack_map(static_cast<std::uint32_t>(message.headers.size()));
    for (const auto& [header, value] : message.headers) {
      p::PackStr(packer, header);
      p::PackStr(packer, value);
    }
    p::PackStr(packer, "body");
    packer.pack_bin(static_cast<std::uint32_t>(message.body.size()));
    packer.pack_bin_body(message.body.data(), static_cast<std::uint32_t>(message.body.size()));
  }
  Send(Side::kClients, key.peer, p::Frames(p::kOk, writer.Finish()));
}

void BrokerCore::HandleRequest(std::string_view peer, std::span<zmq::message_t> frames,
                               TimePoint now) {
  auto reply_error = [&](const std::string& text) {
    std::vector<zmq::message_t> reply;
    reply.emplace_back();
    reply.emplace_back(text.data(), text.size());
    Send(Side::kClients, peer, std::move(reply));
  };
  if (frames.size() != 1) {
    ++counters_.malformed;
    return reply_error("zmqkit-broker: a request is one frame");
  }
  if (frames[0].size() > options_.max_message_bytes) {
    return reply_error("zmqkit-broker: request too large");
  }
  if (publish_refusal_) return reply_error("zmqkit-broker: " + *publish_refusal_);
  Refusal refusal;
  QueueSlot* slot = GetOrCreateQueue(options_.request_queue, refusal);
  if (slot == nullptr) return reply_error("zmqkit-broker: " + refusal.message);
  Envelope request = Envelope::New();
  request.body = std::move(frames[0]);
  EnqueueOptions publish;
  publish.reply_to = std::string(peer);
  std::string header;
  EncodeHeader(request, header);
  const std::string body(request.body_view());
  auto queued = slot->queue.Publish(std::move(request), publish, now);
  if (!queued.ok()) {
    ++counters_.refused;
    return reply_error("zmqkit-broker: " + queued.error().message());
  }
  Emit([&] { return records::EncodePublish({{options_.request_queue, *queued}}, header, body, unix_micros_(), 0,
                              0, publish.reply_to); });
  ++counters_.published;
  Dispatch(*slot, now);
}

void BrokerCore::OnWorkerMessage(std::string_view peer, std::span<zmq::message_t> frames,
                                 TimePoint now) {
  ++counters_.messages_in;
  input_time_ = now;
  SessionKey key{Side::kWorkers, std::string(peer)};
  if (frames.size() == 1 && frames[0].size() == 1 &&
      (frames[0].data<char>()[0] == p::kPppReady || frames[0].data<char>()[0] == p::kPppHeartbeat)) {
    const bool ready = frames[0].data<char>()[0] == p::kPppReady;
    const bool known = sessions_.contains(key);
    Session& session = Touch(key, now);
    if (known && ready) {
      // READY again from a live session: the worker restarted and lost whatever it held.
      for (std::uint64_t id : std::vector<std::uint64_t>(session.consumers.begin(), session.consumers.end())) {
        session.consumers.erase(id);
        RemoveConsumer(id, now);
      }
    }
    if (session.consumers.empty()) {
      Refusal refusal;
      QueueSlot* slot = GetOrCreateQueue(options_.request_queue, refusal);
      if (slot == nullptr) return;
      AddConsumer(key, session, "ppp", *slot, 1, slot->queue.options().ack_timeout, 1);
      Dispatch(*slot, now);
    }
    return;
  }
  if (frames.size() >= 3 && frames[1].size() == 0) {
    // [address][empty][reply...]: an answer, whether or not the job is still the worker's.
    const bool known = sessions_.contains(key);
    auto tag = ParseTagAddress(frames[0]);
    Delivery* delivery = known && tag ? OwnDelivery(key, *tag) : nullptr;
    if (!delivery) {
      // Its job was taken back (a timeout, or the worker fell silent and was dropped) and is
      // someone else's now: the reply is late, not malformed.
      ++counters_.late_replies;
      Log("a late reply from a worker: its job was taken back (" +
          std::string(known ? "the lease ran out" : "the worker had been dropped for silence") + ")");
      return;
    }
    Touch(key, now);
    std::string reply_to = std::move(delivery->reply_to);
    QueueSlot* slot = delivery->slot;
    if (auto number = slot->queue.Ack(*tag)) Emit([&] { return records::EncodeAck(slot->queue.name(), *number); });
    ForgetDelivery(*tag);
    if (!reply_to.empty()) {
      std::vector<zmq::message_t> reply;
      reply.emplace_back();
      for (std::size_t i = 2; i < frames.size(); ++i) reply.push_back(std::move(frames[i]));
      Send(Side::kClients, reply_to, std::move(reply));
    }
    Dispatch(*slot, now);
    return;
  }
  ++counters_.malformed;
  Log("malformed message from a worker (" + std::to_string(frames.size()) + " frames)");
}

// ---- Sessions and consumers ------------------------------------------------------------------

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

// ---- Queues and delivery ---------------------------------------------------------------------

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

// ---- Time ------------------------------------------------------------------------------------

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

void BrokerCore::Flush() {
  DispatchDue();
  for (const std::string& peer : owed_confirms_) {
    auto it = sessions_.find(SessionKey{Side::kClients, peer});
    if (it == sessions_.end() || !it->second.confirm_upto) continue;
    Send(Side::kClients, peer,
         p::Frames(p::kConfirm, p::ArgsWriter(3)
                                    .Uint("upto", *it->second.confirm_upto)
                                    .Uint("from", it->second.first_seq.value_or(1))
                                    .Str("level", confirm_level_)
                                    .Finish()));
    outbox_.back().confirm = true;
    it->second.confirm_upto.reset();
  }
  owed_confirms_.clear();
}

// ---- Output ----------------------------------------------------------------------------------

void BrokerCore::Send(Side side, std::string_view peer, std::vector<zmq::message_t> frames) {
  outbox_.push_back(Outgoing{side, std::string(peer), std::move(frames), WaitsFor::kSync, {}});
}

void BrokerCore::SendDelivery(Side side, std::string_view peer, std::vector<zmq::message_t> frames,
                              std::vector<std::uint64_t> tags) {
  outbox_.push_back(
      Outgoing{side, std::string(peer), std::move(frames), WaitsFor::kWrite, std::move(tags)});
}

void BrokerCore::SendHeartbeat(Side side, std::string_view peer,
                               std::vector<zmq::message_t> frames) {
  outbox_.push_back(Outgoing{side, std::string(peer), std::move(frames), WaitsFor::kNothing, {}});
}

void BrokerCore::SendOk(const SessionKey& key) {
  Send(Side::kClients, key.peer, p::Frames(p::kOk, p::ArgsWriter(1).Uint("rid", current_rid_).Finish()));
}

void BrokerCore::SendError(std::string_view peer, std::string_view code, const std::string& message,
                           std::string_view command, std::optional<std::uint64_t> rid,
                           std::string_view limit) {
  if (input_time_ - error_window_start_ >= std::chrono::seconds(1)) {
    errors_in_window_.clear();
    error_window_start_ = input_time_;
  }
  if (++errors_in_window_[std::string(peer)] > kErrorsPerPeerPerSecond) {
    ++counters_.errors_unsent;
    return;
  }
  if (!rid && current_rid_ != 0) rid = current_rid_;
  p::ArgsWriter writer(3 + (rid ? 1 : 0) + (limit.empty() ? 0 : 1));
  writer.Str("code", code).Str("message", message).Str("command", command.substr(0, 32));
  if (rid) writer.Uint("rid", *rid);
  if (!limit.empty()) writer.Str("limit", limit);
  Send(Side::kClients, peer, p::Frames(p::kError, writer.Finish()));
}

void BrokerCore::SendRejected(std::string_view peer, std::uint64_t seq, std::string_view code,
                              const std::string& message, std::string_view limit) {
  ++counters_.refused;
  p::ArgsWriter writer(limit.empty() ? 3 : 4);
  writer.Uint("seq", seq).Str("code", code).Str("message", message);
  if (!limit.empty()) writer.Str("limit", limit);
  Send(Side::kClients, peer, p::Frames(p::kRejected, writer.Finish()));
}

void BrokerCore::Log(std::string line) {
  if (log_budget_ > 0) {
    --log_budget_;
    log_.push_back(std::move(line));
  } else {
    ++log_suppressed_;
  }
}

std::vector<std::string> BrokerCore::TakeLog() { return std::exchange(log_, {}); }

std::uint64_t BrokerCore::LiveBytes() const {
  std::uint64_t bytes = 0;
  for (const auto& [name, slot] : queues_) bytes += slot.queue.bytes();
  return bytes;
}

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

std::vector<std::string> BrokerCore::QueueNames() const {
  std::vector<std::string> names;
  for (const auto& [name, slot] : queues_) names.push_back(name);
  return names;
}

void BrokerCore::NoteReplayedNumber(const std::string& queue, std::uint64_t number) {
  std::uint64_t& next = replay_next_number_.try_emplace(queue, 1).first->second;
  if (number > next) replay_audit_.messages_missing += number - next;
  next = std::max(next, number + 1);
}

Status BrokerCore::Replay(std::string_view bytes, TimePoint now) {
  auto decoded = records::Decode(bytes);
  if (!decoded.ok()) return decoded.error();
  const records::Record& record = *decoded;
  replaying_ = true;
  struct ReplayingScope {
    bool& flag;
    ~ReplayingScope() { flag = false; }
  } scope{replaying_};
  auto missing = [&](std::string_view what) {
    return Status::Corruption("journal names " + std::string(what) + " that recovery does not have");
  };
  // Replay recreates what existed, whatever the limits are now.
  auto queue = [&](const std::string& name) -> QueueSlot& {
    auto it = queues_.find(name);
    if (it == queues_.end()) {
      it = queues_.try_emplace(name, name, options_.queue_defaults).first;
    }
    DeadlineChanged(it->second);  // a replayed message may bring a delay or a TTL
    return it->second;
  };
  const std::int64_t now_unix = unix_micros_();
  switch (record.op) {
    case records::Op::kQueue: {
      QueueSlot& slot = queue(record.queue);
      slot.queue.set_options(record.options);
      if (record.next_number > 0) {
        slot.queue.set_next_number(record.next_number);
        // A snapshot: its messages have numbers below this, in no particular order.
        replay_next_number_[record.queue] = record.next_number;
      }
      return Status::Ok();
    }
    case records::Op::kRestore: {
      auto it = queues_.find(record.queue);
      if (it == queues_.end() ||
          !it->second.queue.RestoreState(record.number, record.attempt, record.history)) {
        return missing("a restored message");
      }
      return Status::Ok();
    }
    case records::Op::kReady: {
      auto it = queues_.find(record.queue);
      if (it == queues_.end() || !it->second.queue.RestoreReady(record.number, record.order)) {
        return missing("a delayed message");
      }
      NoteReplayedNumber(record.queue, record.order);  // the order was the queue's next number
      DeadlineChanged(it->second);
      return Status::Ok();
    }
    case records::Op::kEpoch:
      last_journaled_epoch_ = record.epoch;
      return Status::Ok();
    case records::Op::kProducer:
      producers_.Restore(ProducerTable::Entry{record.producer, record.highest, record.floor,
                                              record.gaps, record.last_active_us});
      return Status::Ok();
    case records::Op::kDedup:
      dedup_.Stored(record.exchange, record.routing_key, record.dedup_id, record.at_unix_us);
      return Status::Ok();
    case records::Op::kExchange:
      return exchanges_.Declare(record.exchange, record.exchange_type);
    case records::Op::kBind:
      queue(record.queue);
      return exchanges_.Bind(record.exchange, record.queue, record.pattern);
    case records::Op::kUnbind:
      return exchanges_.Unbind(record.exchange, record.queue, record.pattern);
    case records::Op::kPublish: {
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
      for (std::size_t target = 0; target < record.targets.size(); ++target) {
        const auto& [name, number] = record.targets[target];
        NoteReplayedNumber(name, number);
        QueueSlot& slot = queue(name);
        EnqueueOptions options;
        options.number = number;
        options.ignore_limits = true;
        options.reply_to = record.reply_to;
        // Times were journaled against the wall clock; the queue runs on the steady clock. A
        // delay stays a delay even if its time has passed: where the message joined the ready
        // order is a READY record's to say, or (none: the broker stopped first) the first Tick's.
        if (record.delay_us > 0) {
          options.delay = std::chrono::microseconds(
              std::max<std::int64_t>(1, record.at_unix_us + record.delay_us - now_unix));
        }
        const std::int64_t ttl_us = record.ttl_us != 0
                                        ? record.ttl_us
                                        : std::chrono::duration_cast<std::chrono::microseconds>(
                                              slot.queue.options().message_ttl)
                                              .count();
        if (ttl_us > 0) {
          options.ttl = std::chrono::microseconds(
              std::max<std::int64_t>(0, record.at_unix_us + ttl_us - now_unix));
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
    case records::Op::kAck: {
      auto it = queues_.find(record.queue);
      if (it == queues_.end() || !it->second.queue.Settle(record.number)) {
        ++replay_audit_.missing_acked;
        return missing("an acked message");
      }
      return Status::Ok();
    }
    case records::Op::kFail: {
      auto it = queues_.find(record.queue);
      if (it == queues_.end() ||
          !it->second.queue.RestoreFailure(record.number, record.attempt,
                                           static_cast<FailureReason>(record.reason))) {
        return missing("a failed message");
      }
      return Status::Ok();
    }
    case records::Op::kDead: {
      auto it = queues_.find(record.queue);
      if (it == queues_.end()) return missing("a dead-lettered message's queue");
      NoteReplayedNumber(record.queue.ends_with(kDeadLetterSuffix)
                             ? record.queue
                             : record.queue + std::string(kDeadLetterSuffix),
                         record.dlq_number);
      auto dead = it->second.queue.KillNumber(record.number,
                                              static_cast<DeadLetterReason>(record.reason));
      if (!dead) return missing("a dead-lettered message");
      PlaceDeadLetter(std::move(*dead), now, record.dlq_number);
      return Status::Ok();
    }
    case records::Op::kRemove: {
      auto it = queues_.find(record.queue);
      if (it == queues_.end()) return missing("a purged queue");
      for (std::uint64_t number : record.numbers) it->second.queue.Remove(number);
      return Status::Ok();
    }
    case records::Op::kRedrive: {
      auto origin = queues_.find(record.queue);
      auto dlq = queues_.find(record.queue + std::string(kDeadLetterSuffix));
      if (origin == queues_.end() || dlq == queues_.end()) return missing("a redriven queue");
      for (const auto& [from, to] : record.moves) {
        NoteReplayedNumber(record.queue, to);
        auto message = dlq->second.queue.Take(from);
        if (!message) return missing("a redriven message");
        PrepareRedrive(*message);
        EnqueueOptions options;
        options.number = to;
        options.ignore_limits = true;
        // The queue's default TTL ran from the redrive, not from recovery. (A record written
        // before REDRIVE had a time carries none: its TTL starts again now.)
        const auto queue_ttl = origin->second.queue.options().message_ttl;
        if (record.at_unix_us != 0 && queue_ttl.count() > 0) {
          const std::int64_t ttl_us = std::chrono::duration_cast<std::chrono::microseconds>(queue_ttl).count();
          options.ttl = std::chrono::microseconds(std::max<std::int64_t>(0, record.at_unix_us + ttl_us - now_unix));
        }
        (void)origin->second.queue.Publish(std::move(*message), std::move(options), now);
      }
      DeadlineChanged(origin->second);
      return Status::Ok();
    }
  }
  return Status::Corruption("unknown journal record");
}

const MessageQueue* BrokerCore::FindQueue(std::string_view name) const {
  auto it = queues_.find(name);
  return it == queues_.end() ? nullptr : &it->second.queue;
}

}  // namespace zmqkit::internal
