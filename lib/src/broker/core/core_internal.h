// What the files of BrokerCore share and nothing else needs: constants of the delivery tag
// format, the dead-letter suffix, and small conversions.
#ifndef ZMQKIT_SRC_BROKER_CORE_CORE_INTERNAL_H_
#define ZMQKIT_SRC_BROKER_CORE_CORE_INTERNAL_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <zmq.hpp>

#include "broker/protocol.h"
#include "util/coding.h"
#include "zmqkit/clock.h"
#include "zmqkit/status.h"

namespace zmqkit::internal::core_internal {

inline std::string_view View(const zmq::message_t& frame) { return {frame.data<char>(), frame.size()}; }

inline constexpr std::string_view kDeadLetterSuffix = ".dlq";
// A delivery tag is epoch << kTagCounterBits | counter (BrokerCore::tag_epoch_).
inline constexpr unsigned kTagCounterBits = 32;
inline constexpr std::uint64_t kMaxTagEpoch = (std::uint64_t{1} << 21) - 1;
// How long a peer whose connection refused a delivery gets nothing before it is tried again. Short:
// a consumer that reads again should not wait long; a probe costs one DELIVER built and refused.
inline constexpr Duration kRefusedSendPause = std::chrono::milliseconds(20);

inline std::uint64_t EpochAfter(std::uint64_t epoch) { return epoch >= kMaxTagEpoch ? 1 : epoch + 1; }

// A PPP worker's job address: the delivery tag, 8 bytes big-endian. The worker echoes it back.
inline zmq::message_t TagAddress(std::uint64_t tag) {
  unsigned char bytes[8];
  EncodeBigEndian(bytes, tag, sizeof bytes);
  return zmq::message_t(bytes, sizeof bytes);
}

inline std::optional<std::uint64_t> ParseTagAddress(const zmq::message_t& frame) {
  if (frame.size() != 8) return std::nullopt;
  return DecodeBigEndian(frame.data<unsigned char>(), 8);
}

inline std::string_view ErrorCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kNotFound: return protocol::kErrNotFound;
    case StatusCode::kResourceExhausted: return protocol::kErrLimit;
    case StatusCode::kFailedPrecondition: return protocol::kErrConflict;
    default: return protocol::kErrInvalidArgument;
  }
}

inline Duration Millis(std::uint64_t ms) { return std::chrono::milliseconds(static_cast<std::int64_t>(ms)); }

}  // namespace zmqkit::internal::core_internal

#endif  // ZMQKIT_SRC_BROKER_CORE_CORE_INTERNAL_H_
