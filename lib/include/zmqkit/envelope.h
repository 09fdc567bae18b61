// Envelope: one message as zmqkit carries it — metadata plus an opaque body.
//
// The same type travels through every pattern (work queue, fanout, the broker), so metadata that only
// some patterns use lives here too: `seq`/`stream` are set by a Publisher, `attempt` by whoever
// redelivers. The wire form is in docs/wire-format.md and envelope_codec.h.
//
// The body is a zmq::message_t so that a received body is handed over without a copy and a broker can
// forward it by reference count. That makes Envelope move-only; Clone() makes a copy that shares the
// body's bytes.
#ifndef ZMQKIT_ENVELOPE_H_
#define ZMQKIT_ENVELOPE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "zmqkit/message_id.h"

namespace zmqkit {

using Headers = std::map<std::string, std::string, std::less<>>;

inline constexpr std::uint8_t kMaxPriority = 9;

// The broker stores a message whose headers hold this once per exchange, routing key and id within
// its deduplication window (docs/protocol.md): set it to an id derived from the work itself
// ("order-1234") and publishing the message again is harmless, with no state in the producer.
inline constexpr std::string_view kDedupIdHeader = "dedup-id";

struct Envelope {
  MessageId id;
  // When the message was first created: microseconds since the Unix epoch (system clock).
  std::int64_t created_us = 0;
  // 0 (default, lowest) to kMaxPriority (most urgent).
  std::uint8_t priority = 0;
  // How many times delivery has been attempted; 0 for a freshly produced message.
  std::uint32_t attempt = 0;
  // Position in a publisher's stream, from 1; 0 means "not part of a sequenced stream".
  std::uint64_t seq = 0;
  // Which publisher's stream `seq` counts in. Non-empty exactly when seq != 0.
  std::string stream;
  Headers headers;
  zmq::message_t body;

  // A message with a fresh id, created now, holding a copy of `body`.
  static Envelope New(std::string_view body = {});

  std::string_view body_view() const { return {body.data<char>(), body.size()}; }
  void set_body(std::string_view bytes);
  // A copy of every field; the body's bytes are shared, not copied (zmq_msg_copy).
  Envelope Clone() const;
};

// Microseconds since the Unix epoch, from the system clock.
std::int64_t UnixMicrosNow();

}  // namespace zmqkit

#endif  // ZMQKIT_ENVELOPE_H_
