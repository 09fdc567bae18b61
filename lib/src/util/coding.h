// Fixed-width unsigned integers in bytes, in either order: big-endian where the bytes must sort
// as the numbers do or a spec says network order (message ids, delivery tags, the packed topic's
// length), little-endian where the journal's format says so (record headers, as leveldb's).
// `width` is 1 to 8 bytes; the value's bits above it are dropped when encoding.
#ifndef ZMQKIT_SRC_UTIL_CODING_H_
#define ZMQKIT_SRC_UTIL_CODING_H_

#include <cstddef>
#include <cstdint>

namespace zmqkit::internal {

template <typename Byte>
constexpr void EncodeBigEndian(Byte* out, std::uint64_t value, std::size_t width) {
  for (std::size_t i = 0; i < width; ++i) {
    out[i] = static_cast<Byte>(static_cast<std::uint8_t>(value >> (8 * (width - 1 - i))));
  }
}

template <typename Byte>
constexpr std::uint64_t DecodeBigEndian(const Byte* in, std::size_t width) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < width; ++i) value = value << 8 | static_cast<std::uint8_t>(in[i]);
  return value;
}

template <typename Byte>
constexpr void EncodeLittleEndian(Byte* out, std::uint64_t value, std::size_t width) {
  for (std::size_t i = 0; i < width; ++i) out[i] = static_cast<Byte>(static_cast<std::uint8_t>(value >> (8 * i)));
}

template <typename Byte>
constexpr std::uint64_t DecodeLittleEndian(const Byte* in, std::size_t width) {
  std::uint64_t value = 0;
  for (std::size_t i = width; i > 0; --i) value = value << 8 | static_cast<std::uint8_t>(in[i - 1]);
  return value;
}

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_UTIL_CODING_H_
