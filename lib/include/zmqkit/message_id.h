// MessageId: the 16-byte unique id every envelope carries.
//
// Ids are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 bits that make the id unique.
// Each thread draws 42 random bits once (bytes 6 to 11, around the version and variant bits) and
// counts in the last 4 bytes from a random start, kept running across milliseconds (RFC 9562,
// section 6.2, allows a counter in place of random bits; it puts its counter right after the time
// field, this one comes last so that one thread's ids differ only there). So ids need no
// coordination between processes, sort by creation time, and within a millisecond sort in the
// order one thread made them (until the counter wraps, after 2^31 ids at the least, and the thread
// draws new bits); a forked child draws new bits. Each id is its predecessor's successor in the
// last four bytes, which lets the broker store a producer's ids in no bytes at all. They are
// unique, not secret: the random bits come from a per-thread generator seeded once, so Generate()
// costs a clock read and a counter step, not a system call.
#ifndef ZMQKIT_MESSAGE_ID_H_
#define ZMQKIT_MESSAGE_ID_H_

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zmqkit {

class MessageId {
 public:
  static constexpr std::size_t kSize = 16;

  // The nil id (all zero bytes). Never produced by Generate().
  MessageId() = default;

  // A new UUIDv7 whose time field is `unix_ms`.
  static MessageId Generate(std::uint64_t unix_ms);
  // A new UUIDv7 stamped with the current system time.
  static MessageId Generate();

  // REQUIRES nothing: returns nullopt unless `bytes` is exactly kSize bytes.
  static std::optional<MessageId> FromBytes(std::string_view bytes);
  // Parses the canonical text form (36 characters, hex digits in either case).
  static std::optional<MessageId> FromString(std::string_view text);

  const std::array<std::uint8_t, kSize>& bytes() const { return bytes_; }
  std::string_view AsBytes() const {
    return {reinterpret_cast<const char*>(bytes_.data()), kSize};
  }
  bool is_nil() const { return *this == MessageId(); }
  // The Unix milliseconds in a UUIDv7's time field.
  std::uint64_t unix_ms() const;
  // Canonical lower-case text form, e.g. "01936c8e-7b1a-7c3e-9f00-3a4b5c6d7e8f".
  std::string ToString() const;

  friend auto operator<=>(const MessageId&, const MessageId&) = default;

 private:
  std::array<std::uint8_t, kSize> bytes_{};
};

struct MessageIdHash {
  std::size_t operator()(const MessageId& id) const noexcept;
};

}  // namespace zmqkit

#endif  // ZMQKIT_MESSAGE_ID_H_
