// The header is decoded with msgpack-c's visitor parser straight into Envelope fields: no
// msgpack::object tree, no zone, so a header without custom headers costs one small allocation (the
// parser's stack) and no copies. See docs/performance.md for why this matters.
//
// Two forms are read (docs/wire-format.md): version 2, an array with the frequent fields by position
// and a map of the rest, which is what EncodeHeader writes; and version 1, a map of every field by
// name, which journals and older peers still hold. The array form exists for its size: a plain
// message's header is 29 bytes, within the 33 bytes libzmq carries inside a message without a heap
// allocation, where version 1 needs 37.
#include "zmqkit/envelope_codec.h"

#include <cstring>
#include <limits>
#include <msgpack.hpp>
#include <new>
#include <stdexcept>

#include "util/coding.h"

namespace zmqkit {
namespace {

enum class Field : std::uint8_t {
  kUnknown,
  kVersion,
  kId,
  kCreated,
  kPriority,
  kAttempt,
  kSeq,
  kStream,
  kHeaders,
  kExtension,  // version 2's map of the fields not given a position
};

constexpr std::uint16_t Bit(Field field) {
  return static_cast<std::uint16_t>(1u << static_cast<unsigned>(field));
}

Field FieldFromKey(std::string_view key) {
  if (key == wire::kKeyVersion) return Field::kVersion;
  if (key == wire::kKeyId) return Field::kId;
  if (key == wire::kKeyCreated) return Field::kCreated;
  if (key == wire::kKeyPriority) return Field::kPriority;
  if (key == wire::kKeyAttempt) return Field::kAttempt;
  if (key == wire::kKeySeq) return Field::kSeq;
  if (key == wire::kKeyStream) return Field::kStream;
  if (key == wire::kKeyHeaders) return Field::kHeaders;
  return Field::kUnknown;
}

std::string_view FieldKey(Field field) {
  switch (field) {
    case Field::kVersion: return wire::kKeyVersion;
    case Field::kId: return wire::kKeyId;
    case Field::kCreated: return wire::kKeyCreated;
    case Field::kPriority: return wire::kKeyPriority;
    case Field::kAttempt: return wire::kKeyAttempt;
    case Field::kSeq: return wire::kKeySeq;
    case Field::kStream: return wire::kKeyStream;
    case Field::kHeaders: return wire::kKeyHeaders;
    case Field::kExtension: return "extension map";
    case Field::kUnknown: break;
  }
  return "?";
}

// Version 2's positions. Elements past the extension map are skipped, so a later minor revision
// can append fields that older readers ignore.
Field FieldAtPosition(std::uint32_t position) {
  switch (position) {
    case 0: return Field::kVersion;
    case 1: return Field::kId;
    case 2: return Field::kCreated;
    case 3: return Field::kPriority;
    case 4: return Field::kAttempt;
    case 5: return Field::kExtension;
    default: return Field::kUnknown;
  }
}

// In version 2's extension map only the fields without a position are known; the others' names
// there are unknown keys, ignored like any other.
Field ExtensionFieldFromKey(std::string_view key) {
  const Field field = FieldFromKey(key);
  return field == Field::kSeq || field == Field::kStream || field == Field::kHeaders ? field
                                                                                      : Field::kUnknown;
}

constexpr std::size_t kMaxStreamIdBytes = 255;

// Receives msgpack-c's parse events for one header frame and writes the fields it recognises into an
// Envelope. Returning false from an event stops the parse; the reason is kept in error_.
//
// Position is tracked with a few pieces of state: form_ (array or map, from the outermost
// container), depth_ (containers open), fields_depth_ (the depth of the map whose keys name fields:
// 1 for version 1's header map, 2 inside version 2's extension map, 0 elsewhere), in_key_ (whether
// that map is reading a key), position_ (the next element of version 2's array), and ignore_depth_
// (non-zero while inside a container that is the value of an unknown key, which is skipped whatever
// it holds).
class HeaderVisitor : public msgpack::null_visitor {
 public:
  HeaderVisitor(const DecodeLimits& limits, Envelope& out, DecodeError& error)
      : limits_(limits), out_(out), error_(error) {}

  bool failed() const { return failed_; }
  std::uint16_t seen() const { return seen_; }
  bool truncated() const { return truncated_; }
  std::size_t error_offset() const { return error_offset_; }

  bool visit_nil() { return OnScalar(Scalar{Kind::kOther, 0, {}}); }
  bool visit_boolean(bool) { return OnScalar(Scalar{Kind::kOther, 0, {}}); }
  bool visit_positive_integer(std::uint64_t v) { return OnScalar(Scalar{Kind::kUint, v, {}}); }
  // msgpack-c reports every signed encoding (int 8/16/32/64) here, whatever the sign of its value;
  // a non-negative value in a signed format is as good an integer as any.
  bool visit_negative_integer(std::int64_t v) {
    if (v >= 0) return OnScalar(Scalar{Kind::kUint, static_cast<std::uint64_t>(v), {}});
    return OnScalar(Scalar{Kind::kNegativeInt, 0, {}});
  }
  bool visit_float32(float) { return OnScalar(Scalar{Kind::kOther, 0, {}}); }
  bool visit_float64(double) { return OnScalar(Scalar{Kind::kOther, 0, {}}); }
  bool visit_str(const char* p, std::uint32_t n) { return OnScalar(Scalar{Kind::kStr, 0, {p, n}}); }
  bool visit_bin(const char* p, std::uint32_t n) { return OnScalar(Scalar{Kind::kBin, 0, {p, n}}); }
  bool visit_ext(const char*, std::uint32_t) { return OnScalar(Scalar{Kind::kOther, 0, {}}); }

  bool start_array(std::uint32_t) { return OpenContainer(/*is_map=*/false, 0); }
  bool end_array() { return CloseContainer(); }
  bool start_array_item() {
    if (form_ == Form::kArray && depth_ == 1) {
      field_ = FieldAtPosition(position_++);
      if (field_ != Field::kUnknown) seen_ |= Bit(field_);
    }
    return true;
  }
  bool start_map(std::uint32_t entries) { return OpenContainer(/*is_map=*/true, entries); }
  bool end_map() { return CloseContainer(); }

  bool start_map_key() {
    if (ignore_depth_ == 0) in_key_ = true;
    return true;
  }
  bool end_map_key() {
    if (ignore_depth_ != 0) return true;
    in_key_ = false;
    if (depth_ == fields_depth_ && field_ != Field::kUnknown) {
      if (seen_ & Bit(field_)) {
        return Fail(DecodeErrc::kDuplicateField, "key \"" + std::string(FieldKey(field_)) + "\"");
      }
      seen_ |= Bit(field_);
    }
    return true;
  }

  void parse_error(std::size_t, std::size_t error_offset) { error_offset_ = error_offset; }
  void insufficient_bytes(std::size_t, std::size_t error_offset) {
    truncated_ = true;
    error_offset_ = error_offset;
  }

 private:
  enum class Kind : std::uint8_t { kUint, kNegativeInt, kStr, kBin, kOther };
  enum class Form : std::uint8_t { kNone, kArray, kMap };
  struct Scalar {
    Kind kind;
    std::uint64_t uint_value = 0;
    std::string_view bytes;
  };

  bool Fail(DecodeErrc code, std::string detail) {
    failed_ = true;
    error_.code = code;
    error_.detail = std::move(detail);
    return false;
  }
  bool WrongType(std::string_view expected) {
    return Fail(DecodeErrc::kWrongType, "key \"" + std::string(FieldKey(field_)) +
                                            "\" must be " + std::string(expected));
  }

  bool OpenContainer(bool is_map, std::uint32_t entries) {
    if (ignore_depth_ != 0) {
      ++depth_;
      return true;
    }
    if (depth_ == 0) {
      form_ = is_map ? Form::kMap : Form::kArray;
      depth_ = 1;
      fields_depth_ = is_map ? 1 : 0;
      return true;
    }
    const bool at_field_value = (depth_ == fields_depth_ && !in_key_) ||
                                (form_ == Form::kArray && depth_ == 1);
    if (at_field_value && field_ == Field::kExtension) {
      if (!is_map) return WrongType(ExpectedType());
      depth_ = 2;
      fields_depth_ = 2;
      return true;
    }
    if (at_field_value && field_ == Field::kHeaders) {
      if (!is_map) return WrongType(ExpectedType());
      if (entries > limits_.max_headers) {
        return Fail(DecodeErrc::kTooManyHeaders, std::to_string(entries) + " headers, limit is " +
                                                     std::to_string(limits_.max_headers));
      }
      ++depth_;
      in_headers_ = true;
      return true;
    }
    if (in_headers_) return Fail(DecodeErrc::kWrongType, "header keys and values must be str");
    if (at_field_value && field_ != Field::kUnknown) return WrongType(ExpectedType());
    // A container as a map key, or as the value of an unknown key or position: skip it entirely.
    if (depth_ == fields_depth_ && in_key_) field_ = Field::kUnknown;
    ++depth_;
    ignore_depth_ = depth_;
    return true;
  }

  bool CloseContainer() {
    if (ignore_depth_ == depth_) {
      ignore_depth_ = 0;
    } else if (in_headers_ && depth_ == fields_depth_ + 1) {
      in_headers_ = false;
    } else if (form_ == Form::kArray && depth_ == 2) {
      fields_depth_ = 0;  // the extension map has ended; the array's elements follow
    }
    --depth_;
    return true;
  }

  std::string_view ExpectedType() const {
    switch (field_) {
      case Field::kId: return "bin (16 bytes)";
      case Field::kStream: return "str";
      case Field::kHeaders: return "a map of str to str";
      case Field::kExtension: return "a map";
      default: return "a non-negative integer";
    }
  }

  bool OnScalar(const Scalar& value) {
    if (ignore_depth_ != 0) return true;
    if (depth_ == 0) {
      return Fail(DecodeErrc::kHeaderNotArrayOrMap, "header frame is neither a msgpack array nor a map");
    }
    if (in_headers_) return OnHeaderEntry(value);
    if (in_key_) {
      if (value.kind != Kind::kStr) {
        field_ = Field::kUnknown;
      } else {
        field_ = form_ == Form::kMap ? FieldFromKey(value.bytes) : ExtensionFieldFromKey(value.bytes);
      }
      return true;
    }
    return AssignField(value);
  }

  bool OnHeaderEntry(const Scalar& value) {
    if (value.kind != Kind::kStr) return Fail(DecodeErrc::kWrongType, "header keys and values must be str");
    if (in_key_) {
      pending_header_key_.assign(value.bytes);
      return true;
    }
    auto [it, inserted] = out_.headers.try_emplace(pending_header_key_, value.bytes);
    if (!inserted) return Fail(DecodeErrc::kDuplicateField, "header \"" + it->first + "\" appears twice");
    return true;
  }

  bool RequireUint(const Scalar& value, std::uint64_t max, std::uint64_t& result) {
    if (value.kind == Kind::kNegativeInt) {
      return Fail(DecodeErrc::kValueOutOfRange,
                  "key \"" + std::string(FieldKey(field_)) + "\" is negative");
    }
    if (value.kind != Kind::kUint) return WrongType(ExpectedType());
    if (value.uint_value > max) {
      return Fail(DecodeErrc::kValueOutOfRange, "key \"" + std::string(FieldKey(field_)) + "\" is " +
                                                    std::to_string(value.uint_value) + ", at most " +
                                                    std::to_string(max) + " allowed");
    }
    result = value.uint_value;
    return true;
  }

  bool AssignField(const Scalar& value) {
    std::uint64_t number = 0;
    switch (field_) {
      case Field::kUnknown:
        return true;
      case Field::kVersion: {
        if (value.kind != Kind::kUint && value.kind != Kind::kNegativeInt) {
          return WrongType("a non-negative integer");
        }
        const std::uint64_t expected = form_ == Form::kArray ? wire::kVersion : wire::kVersionMap;
        if (value.kind == Kind::kNegativeInt || value.uint_value != expected) {
          return Fail(DecodeErrc::kUnsupportedVersion,
                      form_ == Form::kArray
                          ? "an array header must be version " + std::to_string(wire::kVersion)
                          : "a map header must be version " + std::to_string(wire::kVersionMap));
        }
        return true;
      }
      case Field::kId: {
        if (value.kind != Kind::kBin) return WrongType(ExpectedType());
        auto id = MessageId::FromBytes(value.bytes);
        if (!id) {
          return Fail(DecodeErrc::kValueOutOfRange,
                      "key \"id\" has " + std::to_string(value.bytes.size()) + " bytes, needs 16");
        }
        out_.id = *id;
        return true;
      }
      case Field::kCreated:
        if (!RequireUint(value, std::numeric_limits<std::int64_t>::max(), number)) return false;
        out_.created_us = static_cast<std::int64_t>(number);
        return true;
      case Field::kPriority:
        if (!RequireUint(value, kMaxPriority, number)) return false;
        out_.priority = static_cast<std::uint8_t>(number);
        return true;
      case Field::kAttempt:
        if (!RequireUint(value, std::numeric_limits<std::uint32_t>::max(), number)) return false;
        out_.attempt = static_cast<std::uint32_t>(number);
        return true;
      case Field::kSeq:
        return RequireUint(value, std::numeric_limits<std::uint64_t>::max(), out_.seq);
      case Field::kStream:
        if (value.kind != Kind::kStr) return WrongType(ExpectedType());
        if (value.bytes.empty() || value.bytes.size() > kMaxStreamIdBytes) {
          return Fail(DecodeErrc::kValueOutOfRange, "key \"src\" must be 1 to 255 bytes");
        }
        out_.stream.assign(value.bytes);
        return true;
      case Field::kHeaders:
      case Field::kExtension:
        return WrongType(ExpectedType());
    }
    return true;
  }

  const DecodeLimits& limits_;
  Envelope& out_;
  DecodeError& error_;
  bool failed_ = false;
  bool truncated_ = false;
  std::size_t error_offset_ = 0;
  Form form_ = Form::kNone;
  int depth_ = 0;
  int fields_depth_ = 0;
  int ignore_depth_ = 0;
  std::uint32_t position_ = 0;
  bool in_key_ = false;
  bool in_headers_ = false;
  Field field_ = Field::kUnknown;
  std::uint16_t seen_ = 0;
  std::string pending_header_key_;
};

// msgpack::packer's output: appends to a std::string the caller reuses between messages.
struct StringSink {
  std::string& out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};

void PackStr(msgpack::packer<StringSink>& packer, std::string_view text) {
  packer.pack_str(static_cast<std::uint32_t>(text.size()));
  packer.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

}  // namespace

std::string_view DecodeErrcName(DecodeErrc code) {
  switch (code) {
    case DecodeErrc::kMissingFrames: return "missing frames";
    case DecodeErrc::kExtraFrames: return "extra frames";
    case DecodeErrc::kFrameTooLarge: return "frame too large";
    case DecodeErrc::kMalformedHeader: return "malformed header";
    case DecodeErrc::kHeaderNotArrayOrMap: return "header not an array or map";
    case DecodeErrc::kWrongType: return "wrong type";
    case DecodeErrc::kMissingField: return "missing field";
    case DecodeErrc::kValueOutOfRange: return "value out of range";
    case DecodeErrc::kUnsupportedVersion: return "unsupported version";
    case DecodeErrc::kDuplicateField: return "duplicate field";
    case DecodeErrc::kTooManyHeaders: return "too many headers";
  }
  return "unknown";
}

std::string DecodeError::ToString() const {
  std::string text(DecodeErrcName(code));
  if (!detail.empty()) {
    text += ": ";
    text += detail;
  }
  return text;
}

void EncodeHeader(const Envelope& envelope, std::string& out) {
  StringSink sink{out};
  msgpack::packer<StringSink> packer(sink);
  const bool has_seq = envelope.seq != 0;
  const bool has_headers = !envelope.headers.empty();
  const std::uint32_t extension_entries = 2 * has_seq + has_headers;
  const std::uint32_t elements = extension_entries != 0 ? 6
                                 : envelope.attempt != 0 ? 5
                                 : envelope.priority != 0 ? 4
                                                          : 3;
  packer.pack_array(elements);
  packer.pack_uint64(wire::kVersion);
  packer.pack_bin(MessageId::kSize);
  packer.pack_bin_body(envelope.id.AsBytes().data(), MessageId::kSize);
  packer.pack_uint64(static_cast<std::uint64_t>(envelope.created_us < 0 ? 0 : envelope.created_us));
  if (elements >= 4) packer.pack_uint64(envelope.priority);
  if (elements >= 5) packer.pack_uint64(envelope.attempt);
  if (elements < 6) return;
  packer.pack_map(extension_entries);
  if (has_seq) {
    PackStr(packer, wire::kKeySeq);
    packer.pack_uint64(envelope.seq);
    PackStr(packer, wire::kKeyStream);
    PackStr(packer, envelope.stream);
  }
  if (has_headers) {
    PackStr(packer, wire::kKeyHeaders);
    packer.pack_map(static_cast<std::uint32_t>(envelope.headers.size()));
    for (const auto& [key, value] : envelope.headers) {
      PackStr(packer, key);
      PackStr(packer, value);
    }
  }
}

namespace {

// Reads the one msgpack value at the start of `bytes` as a header, into `out`, and sets `consumed`
// to its length; what follows it is the caller's business (nothing may in a header frame, the body
// does in a packed frame). `truncated`: the bytes ended inside the value.
bool DecodeHeaderAtStart(std::string_view bytes, const DecodeLimits& limits, Envelope& out,
                         DecodeError& error, std::size_t& consumed, bool& truncated) {
  HeaderVisitor visitor(limits, out, error);
  consumed = 0;
  truncated = false;
  bool parsed = false;
  try {
    parsed = msgpack::parse(bytes.data(), bytes.size(), consumed, visitor);
  } catch (const std::bad_alloc&) {
    error = {DecodeErrc::kMalformedHeader, "header frame needs more memory than is available"};
    return false;
  } catch (const std::exception& e) {
    // msgpack-c throws on a few size fields it cannot represent (ext_size_overflow).
    error = {DecodeErrc::kMalformedHeader, std::string("msgpack: ") + e.what()};
    return false;
  }
  if (visitor.failed()) return false;
  if (!parsed) {
    truncated = visitor.truncated();
    error = {DecodeErrc::kMalformedHeader,
             bytes.empty()         ? std::string("header frame is empty")
             : visitor.truncated() ? "header frame ends inside a value (" +
                                         std::to_string(bytes.size()) + " bytes)"
                                   : "invalid msgpack at byte " +
                                         std::to_string(visitor.error_offset())};
    return false;
  }
  for (Field required : {Field::kVersion, Field::kId, Field::kCreated}) {
    if (!(visitor.seen() & Bit(required))) {
      error = {DecodeErrc::kMissingField, "key \"" + std::string(FieldKey(required)) + "\""};
      return false;
    }
  }
  if (out.seq != 0 && out.stream.empty()) {
    error = {DecodeErrc::kMissingField, "key \"src\" is required when \"seq\" is set"};
    return false;
  }
  return true;
}

DecodeError BodyTooLarge(std::size_t size, const DecodeLimits& limits) {
  return {DecodeErrc::kFrameTooLarge, "body is " + std::to_string(size) + " bytes, limit is " +
                                          std::to_string(limits.max_body_bytes)};
}

}  // namespace

bool DecodeHeader(std::string_view frame, const DecodeLimits& limits, Envelope& out,
                  DecodeError& error) {
  if (frame.size() > limits.max_header_bytes) {
    error = {DecodeErrc::kFrameTooLarge, "header frame is " + std::to_string(frame.size()) +
                                             " bytes, limit is " +
                                             std::to_string(limits.max_header_bytes)};
    return false;
  }
  std::size_t consumed = 0;
  bool truncated = false;
  if (!DecodeHeaderAtStart(frame, limits, out, error, consumed, truncated)) return false;
  if (consumed != frame.size()) {
    error = {DecodeErrc::kMalformedHeader, std::to_string(frame.size() - consumed) +
                                               " bytes after the header"};
    return false;
  }
  return true;
}

zmq::message_t EncodePacked(const Envelope& envelope, std::string& scratch) {
  return EncodePacked(envelope, envelope.body_view(), scratch);
}

zmq::message_t EncodePacked(const Envelope& envelope, std::string_view body, std::string& scratch) {
  scratch.clear();
  EncodeHeader(envelope, scratch);
  zmq::message_t frame(scratch.size() + body.size());
  auto* bytes = frame.data<char>();
  std::memcpy(bytes, scratch.data(), scratch.size());
  if (!body.empty()) std::memcpy(bytes + scratch.size(), body.data(), body.size());
  return frame;
}

namespace {

// A packed [header and body], wherever it sits in a frame.
Result<Envelope, DecodeError> DecodePackedBytes(std::string_view bytes, const DecodeLimits& limits,
                                                std::size_t& header_size) {
  // The header's end is known only once it is parsed: parse within the limit, so a header over it
  // is found without reading past it.
  const std::string_view window = bytes.substr(0, limits.max_header_bytes);
  Envelope envelope;
  DecodeError error;
  std::size_t consumed = 0;
  bool truncated = false;
  if (!DecodeHeaderAtStart(window, limits, envelope, error, consumed, truncated)) {
    if (truncated && window.size() < bytes.size()) {
      error = {DecodeErrc::kFrameTooLarge,
               "no complete header within the limit of " +
                   std::to_string(limits.max_header_bytes) + " bytes (packed frame of " +
                   std::to_string(bytes.size()) + " bytes)"};
    }
    return error;
  }
  const std::size_t body_size = bytes.size() - consumed;
  if (body_size > limits.max_body_bytes) return BodyTooLarge(body_size, limits);
  envelope.body = zmq::message_t(bytes.data() + consumed, body_size);
  header_size = consumed;
  return envelope;
}

}  // namespace

Result<Envelope, DecodeError> DecodePacked(const zmq::message_t& frame, const DecodeLimits& limits) {
  std::size_t header_size = 0;
  return DecodePacked(frame, limits, header_size);
}

Result<Envelope, DecodeError> DecodePacked(const zmq::message_t& frame, const DecodeLimits& limits,
                                           std::size_t& header_size) {
  return DecodePackedBytes({frame.data<char>(), frame.size()}, limits, header_size);
}

zmq::message_t EncodeTopicPacked(std::string_view topic, const Envelope& envelope,
                                 std::string_view body, std::string& scratch) {
  if (topic.size() > kTopicPackedMaxTopic) {
    throw std::length_error("a topic of " + std::to_string(topic.size()) +
                            " bytes does not fit the topic-packed form's 16-bit length");
  }
  scratch.clear();
  EncodeHeader(envelope, scratch);
  const std::size_t topic_size = topic.size();
  zmq::message_t frame(topic_size + scratch.size() + body.size() + 2);
  auto* bytes = frame.data<char>();
  if (topic_size > 0) std::memcpy(bytes, topic.data(), topic_size);
  bytes += topic_size;
  std::memcpy(bytes, scratch.data(), scratch.size());
  bytes += scratch.size();
  if (!body.empty()) std::memcpy(bytes, body.data(), body.size());
  bytes += body.size();
  internal::EncodeBigEndian(bytes, topic_size, 2);
  return frame;
}

Result<Envelope, DecodeError> DecodeTopicPacked(const zmq::message_t& frame,
                                                const DecodeLimits& limits, std::string& topic) {
  const std::string_view bytes(frame.data<char>(), frame.size());
  if (bytes.size() < 2) {
    return DecodeError{DecodeErrc::kMalformedHeader,
                       "a one-frame message of " + std::to_string(bytes.size()) +
                           " bytes has no room for its topic's length"};
  }
  const auto* trailer = reinterpret_cast<const unsigned char*>(bytes.data() + bytes.size() - 2);
  const std::size_t topic_size = internal::DecodeBigEndian(trailer, 2);
  if (topic_size > limits.max_topic_bytes) {
    return DecodeError{DecodeErrc::kFrameTooLarge, "topic is " + std::to_string(topic_size) +
                                                       " bytes, limit is " +
                                                       std::to_string(limits.max_topic_bytes)};
  }
  if (topic_size > bytes.size() - 2) {
    return DecodeError{DecodeErrc::kMalformedHeader,
                       "topic length " + std::to_string(topic_size) + " in a one-frame message of " +
                           std::to_string(bytes.size()) + " bytes"};
  }
  std::size_t header_size = 0;
  auto envelope = DecodePackedBytes(bytes.substr(topic_size, bytes.size() - 2 - topic_size), limits,
                                    header_size);
  if (envelope.ok()) topic.assign(bytes.data(), topic_size);
  return envelope;
}

Result<Envelope, DecodeError> DecodeFrames(std::span<zmq::message_t> frames,
                                           const DecodeLimits& limits) {
  if (frames.size() < 2) {
    return DecodeError{DecodeErrc::kMissingFrames,
                       std::to_string(frames.size()) + " frame(s), expected [header][body]"};
  }
  if (frames.size() > 2) {
    return DecodeError{DecodeErrc::kExtraFrames,
                       std::to_string(frames.size()) + " frames, expected [header][body]"};
  }
  if (frames[1].size() > limits.max_body_bytes) return BodyTooLarge(frames[1].size(), limits);
  Envelope envelope;
  DecodeError error;
  if (!DecodeHeader({frames[0].data<char>(), frames[0].size()}, limits, envelope, error)) {
    return error;
  }
  envelope.body = std::move(frames[1]);
  return envelope;
}

}  // namespace zmqkit
