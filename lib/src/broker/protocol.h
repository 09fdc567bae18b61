// The broker's wire protocol, as specified in docs/protocol.md: frame layout, command names, and the
// "args" frame codec. Pure: frames in, values out.
//
// Every native message is [signature][command][args][payload...] where args is one msgpack map.
// A ROUTER socket adds the peer's routing id in front; that frame is handled by the loop, not here.
#ifndef ZMQKIT_SRC_BROKER_PROTOCOL_H_
#define ZMQKIT_SRC_BROKER_PROTOCOL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <msgpack.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "zmqkit/status.h"

namespace zmqkit::internal::protocol {

inline constexpr std::string_view kSignature = "ZKB1";

// Client -> broker.
inline constexpr std::string_view kPublish = "PUBLISH";
inline constexpr std::string_view kConsume = "CONSUME";
inline constexpr std::string_view kCancel = "CANCEL";
inline constexpr std::string_view kAck = "ACK";
inline constexpr std::string_view kNack = "NACK";
inline constexpr std::string_view kExtend = "EXTEND";
inline constexpr std::string_view kDeclareQueue = "DECLARE_QUEUE";
inline constexpr std::string_view kDeclareExchange = "DECLARE_EXCHANGE";
inline constexpr std::string_view kBind = "BIND";
inline constexpr std::string_view kUnbind = "UNBIND";
inline constexpr std::string_view kStats = "STATS";
inline constexpr std::string_view kPurge = "PURGE";
inline constexpr std::string_view kRedrive = "REDRIVE";
inline constexpr std::string_view kPeek = "PEEK";
inline constexpr std::string_view kHeartbeat = "HEARTBEAT";  // both directions
inline constexpr std::string_view kBye = "BYE";
// Broker -> client.
inline constexpr std::string_view kConfirm = "CONFIRM";
inline constexpr std::string_view kRejected = "REJECTED";
inline constexpr std::string_view kDeliver = "DELIVER";
inline constexpr std::string_view kOk = "OK";
inline constexpr std::string_view kError = "ERROR";

// Error codes carried in ERROR and REJECTED ("code" key). docs/protocol.md lists when each is sent.
inline constexpr std::string_view kErrMalformed = "malformed";
inline constexpr std::string_view kErrUnsupportedVersion = "unsupported-version";
inline constexpr std::string_view kErrUnknownCommand = "unknown-command";
inline constexpr std::string_view kErrInvalidArgument = "invalid-argument";
inline constexpr std::string_view kErrNotFound = "not-found";
inline constexpr std::string_view kErrUnknownTag = "unknown-delivery-tag";
inline constexpr std::string_view kErrQueueFull = "queue-full";
inline constexpr std::string_view kErrTooLarge = "message-too-large";
inline constexpr std::string_view kErrLimit = "limit-reached";
inline constexpr std::string_view kErrConflict = "conflict";
inline constexpr std::string_view kErrStorage = "storage-unavailable";
inline constexpr std::string_view kErrSessionExpired = "session-expired";
inline constexpr std::string_view kErrForbidden = "forbidden";

// The "limit" key of a "limit-reached" or "message-too-large" refusal: which configured limit
// (BrokerOptions, zmqkit-broker's flags) it hit. docs/protocol.md lists them.
inline constexpr std::string_view kLimitMessageBytes = "max-message-bytes";
inline constexpr std::string_view kLimitFrames = "max-frames";
inline constexpr std::string_view kLimitPublishBatch = "max-publish-batch";
inline constexpr std::string_view kLimitProducerWindow = "producer-window";
inline constexpr std::string_view kLimitHeaderBytes = "max-header-bytes";
inline constexpr std::string_view kLimitHeaders = "max-headers";
inline constexpr std::string_view kLimitNameBytes = "max-name-bytes";
inline constexpr std::string_view kLimitQueues = "max-queues";
inline constexpr std::string_view kLimitExchanges = "max-exchanges";
inline constexpr std::string_view kLimitBindings = "max-bindings";
inline constexpr std::string_view kLimitConsumers = "max-consumers-per-client";
inline constexpr std::string_view kLimitPrefetch = "max-prefetch";
inline constexpr std::string_view kLimitClients = "max-clients";

// The most messages one DELIVER carries, whatever a consumer's "batch" asks for.
inline constexpr std::uint32_t kMaxDeliverBatch = 256;
// A batched DELIVER takes no further message once its bodies reach this many bytes.
inline constexpr std::size_t kMaxDeliverBytes = 1 << 20;
// Paranoid Pirate (RFC 6) one-byte commands on the worker endpoint.
inline constexpr char kPppReady = '\x01';
inline constexpr char kPppHeartbeat = '\x02';

// A decoded args map. Values stay msgpack objects (owned by the handle) until asked for; each
// accessor checks the type and reports a clear error instead of throwing.
class Args {
 public:
  // kInvalidArgument if `bytes` is not exactly one msgpack map with str keys.
  static Result<Args> Parse(std::string_view bytes);

  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  // Each returns the value, `fallback` if the key is absent (when given), or an error naming the
  // key if it is absent without a fallback or has the wrong type.
  Result<std::uint64_t> Uint(std::string_view key,
                             std::optional<std::uint64_t> fallback = std::nullopt) const;
  Result<std::string> Str(std::string_view key,
                          std::optional<std::string> fallback = std::nullopt) const;
  // The same without a copy: valid while this Args lives.
  Result<std::string_view> StrView(std::string_view key,
                                   std::optional<std::string_view> fallback = std::nullopt) const;
  Result<bool> Bool(std::string_view key, std::optional<bool> fallback = std::nullopt) const;
  Result<std::vector<std::uint64_t>> UintList(std::string_view key) const;

 private:
  const msgpack::object* Find(std::string_view key) const;

  // The unpacked map lives in `zone_`, reused from one command to the next (ZoneForArgs):
  // msgpack's default zone would allocate 8 KiB for every message, which was once the broker's
  // largest single cost per message. Keys are views into the zone; a map this small is searched
  // faster in a line than in a tree.
  std::shared_ptr<msgpack::zone> zone_;
  std::vector<std::pair<std::string_view, msgpack::object>> values_;
};

// Writes an args map. The number of entries is given first because msgpack maps are
// length-prefixed; Finish() checks it was kept.
class ArgsWriter {
 public:
  // The buffer starts small: msgpack's default (8 KiB) would be a large allocation for every
  // command, and most args maps are a few dozen bytes.
  explicit ArgsWriter(std::uint32_t entries) : buffer_(128), packer_(buffer_), expected_(entries) {
    packer_.pack_map(entries);
  }
  ArgsWriter& Uint(std::string_view key, std::uint64_t value);
  ArgsWriter& Str(std::string_view key, std::string_view value);
  ArgsWriter& Bool(std::string_view key, bool value);
  ArgsWriter& UintList(std::string_view key, const std::vector<std::uint64_t>& values);
  // For nested values: write the key, then pack the value with packer().
  ArgsWriter& Key(std::string_view key);
  msgpack::packer<msgpack::sbuffer>& packer() { return packer_; }
  zmq::message_t Finish();

 private:
  msgpack::sbuffer buffer_;
  msgpack::packer<msgpack::sbuffer> packer_;
  std::uint32_t expected_;
  std::uint32_t written_ = 0;
};

void PackStr(msgpack::packer<msgpack::sbuffer>& packer, std::string_view text);

// [signature][command][args] followed by `payload`.
std::vector<zmq::message_t> Frames(std::string_view command, zmq::message_t args,
                                   std::vector<zmq::message_t> payload = {});

// An empty args map.
zmq::message_t NoArgs();

}  // namespace zmqkit::internal::protocol

#endif  // ZMQKIT_SRC_BROKER_PROTOCOL_H_
