// The core's front: a message in, routed to its handler; answers and log lines out.
// BrokerCore is one class (broker_core.h); its definitions are split by responsibility.
#include "broker/core/broker_core.h"

#include "broker/core/core_internal.h"
#include "zmqkit/message_id.h"

#include <algorithm>
#include <random>

namespace zmqkit::internal {

namespace p = protocol;
using namespace core_internal;

namespace {

std::uint64_t RandomEpoch() {
  std::random_device random;
  return std::uniform_int_distribution<std::uint64_t>(1, kMaxTagEpoch)(random);
}
// More than a well-behaved client ever gets; a peer past it is only sending garbage.
constexpr std::uint32_t kErrorsPerPeerPerSecond = 100;

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

BrokerCore::BrokerCore(const CoreOptions& options, CoreEnvironment environment)
    : options_(options),
      peer_identity_(ZapUserId),
      tag_epoch_(environment.tag_epoch != 0 ? environment.tag_epoch : RandomEpoch()),
      producers_(ProducerTable::Limits{
          std::chrono::duration_cast<std::chrono::microseconds>(options.producer_window).count(),
          options.max_producers, 4096}),
      dedup_(DedupWindow::Limits{
          std::chrono::duration_cast<std::chrono::microseconds>(options.dedup_window).count(),
          options.max_dedup_ids}),
      instance_(environment.instance.empty() ? MessageId::Generate().ToString()
                                             : std::move(environment.instance)),
      unix_micros_(std::move(environment.wall_clock)) {
  limits_.max_body_bytes = options_.max_message_bytes;
  limits_.max_header_bytes = std::min(options_.max_message_bytes, options_.max_header_bytes);
  limits_.max_headers = options_.max_headers;
}

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

std::vector<std::string> BrokerCore::QueueNames() const {
  std::vector<std::string> names;
  for (const auto& [name, slot] : queues_) names.push_back(name);
  return names;
}

const MessageQueue* BrokerCore::FindQueue(std::string_view name) const {
  auto it = queues_.find(name);
  return it == queues_.end() ? nullptr : &it->second.queue;
}

}  // namespace zmqkit::internal
