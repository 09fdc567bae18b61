// The envelope's wire form: [header frame: msgpack][body frame: raw bytes], or packed, both in
// one frame: [msgpack header, then the body's bytes]; on PUB/SUB also topic-packed, the topic,
// header and body in one frame: [topic, header, body, the topic's length in 2 bytes].
//
// docs/wire-format.md is the normative description; the key names and the version numbers below are
// the ones it lists. The header is written as version 2 (an array) and read in both forms (version 1
// is a map). Encoding and decoding here are pure: bytes and zmq::message_t in, values out, no
// sockets. Decoding is total: any input yields either an Envelope or a DecodeError naming what was
// wrong, and never throws, aborts or reads past the frame.
#ifndef ZMQKIT_ENVELOPE_CODEC_H_
#define ZMQKIT_ENVELOPE_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "zmqkit/envelope.h"
#include "zmqkit/status.h"

namespace zmqkit {

namespace wire {
// The version EncodeHeader writes: an array [2, id, ts, pri, att, extension map], trailing defaults
// left out.
inline constexpr std::uint64_t kVersion = 2;
// The version of the map form, which readers still accept (journals written before version 2, and
// peers that write it).
inline constexpr std::uint64_t kVersionMap = 1;
// Field names: the keys of version 1's map, and of version 2's extension map for seq, src and h.
inline constexpr std::string_view kKeyVersion = "v";
inline constexpr std::string_view kKeyId = "id";
inline constexpr std::string_view kKeyCreated = "ts";
inline constexpr std::string_view kKeyPriority = "pri";
inline constexpr std::string_view kKeyAttempt = "att";
inline constexpr std::string_view kKeySeq = "seq";
inline constexpr std::string_view kKeyStream = "src";
inline constexpr std::string_view kKeyHeaders = "h";
}  // namespace wire

// What a reader accepts. Each violation is its own DecodeErrc.
struct DecodeLimits {
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_body_bytes = 64 * 1024 * 1024;
  std::size_t max_topic_bytes = 1024;
  std::size_t max_headers = 256;  // entries in the "h" map
};

enum class DecodeErrc : std::uint8_t {
  kMissingFrames,       // fewer frames than the pattern's form
  kExtraFrames,         // more frames than the pattern's form
  kFrameTooLarge,       // a topic, header or body frame over its DecodeLimits size
  kMalformedHeader,     // the header frame is not one complete msgpack value (or has bytes after it)
  kHeaderNotArrayOrMap, // the header frame is valid msgpack but neither an array nor a map
  kWrongType,           // a known field holds a value of the wrong msgpack type
  kMissingField,        // a required field is absent
  kValueOutOfRange,     // right type, impossible value (priority 12, a 15-byte id, negative time)
  kUnsupportedVersion,  // "v" is not a version this reader speaks
  kDuplicateField,      // the same key twice, in the header map or in "h"
  kTooManyHeaders,      // "h" has more than DecodeLimits::max_headers entries
};
inline constexpr std::size_t kDecodeErrcCount = 11;

std::string_view DecodeErrcName(DecodeErrc code);

struct DecodeError {
  DecodeErrc code;
  std::string detail;  // which key, which limit, at which byte

  std::string ToString() const;  // "<errc name>: <detail>"
  Status ToStatus() const { return Status::InvalidArgument(ToString()); }
};

// Appends the header of `envelope` to `out` in version 2's form (the body is not included). Trailing
// fields with their default value (priority 0, attempt 0, no seq, no headers) are left out, so a plain
// message's header is 29 bytes.
void EncodeHeader(const Envelope& envelope, std::string& out);

// Decodes one header frame into the metadata fields of `out`; the body is left untouched.
// Returns false and fills `error` if the frame is not a valid header.
bool DecodeHeader(std::string_view frame, const DecodeLimits& limits, Envelope& out,
                  DecodeError& error);

// Decodes exactly [header][body]. The body frame is moved out of `frames`, not copied.
Result<Envelope, DecodeError> DecodeFrames(std::span<zmq::message_t> frames,
                                           const DecodeLimits& limits);

// The packed form (docs/wire-format.md, section 1): the header and then the body's bytes in one
// frame. For small bodies it is the cheaper form by far: libzmq stores a frame of up to 33 bytes
// inline and allocates for a longer one, and every frame costs its own trip through the I/O
// thread. Raw libzmq moved [topic][83-byte header][100-byte body] at 0.6-0.75 of the rate of
// [topic][183 bytes] here, and the library's fanout gained 55-60% from packing
// (docs/performance.md). The price is a copy of the body on each side, which is why writers pack
// small bodies only.
// `scratch` is a buffer the caller keeps between calls so encoding does not allocate.
zmq::message_t EncodePacked(const Envelope& envelope, std::string& scratch);
// The same with `body` in place of envelope.body (which is not read), for a body held elsewhere.
zmq::message_t EncodePacked(const Envelope& envelope, std::string_view body, std::string& scratch);

// Decodes a packed frame. The header must end within limits.max_header_bytes (else kFrameTooLarge);
// the bytes after it, possibly none, are the body, copied out of `frame`.
Result<Envelope, DecodeError> DecodePacked(const zmq::message_t& frame, const DecodeLimits& limits);
// The same, and sets `header_size` to the header's length: the frame's first `header_size` bytes
// are the header exactly as written, for a reader that keeps or forwards it without encoding it
// again (the broker journals it).
Result<Envelope, DecodeError> DecodePacked(const zmq::message_t& frame, const DecodeLimits& limits,
                                           std::size_t& header_size);

// The topic-packed form (docs/wire-format.md, section 1), for PUB/SUB: the topic's bytes, the
// header, the body's bytes, and the topic's length as 2 bytes, big-endian, in one frame. The topic
// comes first because libzmq matches subscriptions against a message's first bytes; its length
// comes last because nothing else marks where an arbitrary topic ends. Against [topic][packed] it
// saves a frame per message, which costs raw libzmq itself 5-15% of its rate here; the library's
// fanout gained 12-39% from it (docs/performance.md). The catch is on the reader's side: libzmq
// now matches a subscription against more than the topic, so a subscription longer than a topic
// can match the header's first bytes, and a reader must check the topic against its own
// subscriptions (Subscriber does).
inline constexpr std::size_t kTopicPackedMaxTopic = 0xffff;
// Throws std::length_error if `topic` is longer than kTopicPackedMaxTopic (a writer sends such a
// message in another form). `scratch` as in EncodePacked.
zmq::message_t EncodeTopicPacked(std::string_view topic, const Envelope& envelope,
                                 std::string_view body, std::string& scratch);
// Decodes a topic-packed frame into its envelope, and its topic into `topic` (left alone on
// failure). A topic over limits.max_topic_bytes is kFrameTooLarge; a frame too short for its
// trailer, or for the topic length it states, is kMalformedHeader; the rest as DecodePacked.
Result<Envelope, DecodeError> DecodeTopicPacked(const zmq::message_t& frame,
                                                const DecodeLimits& limits, std::string& topic);

}  // namespace zmqkit

#endif  // ZMQKIT_ENVELOPE_CODEC_H_
