// CRC32C (Castagnoli), as the journal format specifies: the CPU's CRC32 instruction where there is
// one, else Boost.CRC (header-only, installed with libboost-dev, which msgpack-cxx depends on).
#ifndef ZMQKIT_SRC_STORAGE_CRC32C_H_
#define ZMQKIT_SRC_STORAGE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace zmqkit::internal::crc32c {

// The CRC32C of data[0, n) continuing from `crc`, the CRC32C of some earlier bytes A, so that
// Extend(Value(A), B) == Value(A + B).
// Uses the CPU's CRC32 instruction where there is one (x86-64 with SSE 4.2).
std::uint32_t Extend(std::uint32_t crc, const char* data, std::size_t n);
// The same with Boost's table, on any CPU; tests check that both agree.
std::uint32_t ExtendPortable(std::uint32_t crc, const char* data, std::size_t n);
bool HardwareAccelerated();
inline std::uint32_t Value(const char* data, std::size_t n) { return Extend(0, data, n); }

// Stored CRCs are masked: a CRC computed over data that contains CRCs is weak (see LevelDB's
// util/crc32c.h), and the mask makes a stored value unlike the CRC of the bytes around it.
inline constexpr std::uint32_t kMaskDelta = 0xa282ead8u;
inline std::uint32_t Mask(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }
inline std::uint32_t Unmask(std::uint32_t masked) {
  std::uint32_t rotated = masked - kMaskDelta;
  return (rotated >> 17) | (rotated << 15);
}

}  // namespace zmqkit::internal::crc32c

#endif  // ZMQKIT_SRC_STORAGE_CRC32C_H_
