#include "storage/crc32c.h"

#include <boost/crc.hpp>
#include <cstring>

namespace zmqkit::internal::crc32c {
namespace {

std::uint32_t ReverseBits(std::uint32_t x) {
  std::uint32_t reversed = 0;
  for (int i = 0; i < 32; ++i, x >>= 1) reversed = (reversed << 1) | (x & 1);
  return reversed;
}

}  // namespace

#if defined(__x86_64__)
// SSE 4.2's CRC32 instruction computes exactly this CRC (it was made for iSCSI's CRC32C), 8 bytes
// per instruction instead of Boost's byte-at-a-time table: the journal checksums every record it
// writes and reads, which made the table 8% of a recovery's CPU time.
__attribute__((target("sse4.2"))) std::uint32_t ExtendSse42(std::uint32_t crc, const char* data,
                                                              std::size_t n) {
  std::uint64_t state = crc ^ 0xFFFFFFFFu;
  for (; n >= 8; n -= 8, data += 8) {
    std::uint64_t word;
    std::memcpy(&word, data, sizeof word);
    state = __builtin_ia32_crc32di(state, word);
  }
  auto state32 = static_cast<std::uint32_t>(state);
  for (; n > 0; --n, ++data) {
    state32 = __builtin_ia32_crc32qi(state32, static_cast<unsigned char>(*data));
  }
  return state32 ^ 0xFFFFFFFFu;
}
#endif

std::uint32_t ExtendPortable(std::uint32_t crc, const char* data, std::size_t n) {
  // Reflected Castagnoli polynomial, initial value and final XOR 0xFFFFFFFF. To continue from an
  // earlier CRC the register starts at that CRC with the final XOR undone; Boost's constructor
  // reflects the value it is given for a reflected algorithm, so it is given the value reversed.
  using Crc32c = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;
  Crc32c crc32c(ReverseBits(crc ^ 0xFFFFFFFFu));
  crc32c.process_bytes(data, n);
  return crc32c.checksum();
}

bool HardwareAccelerated() {
#if defined(__x86_64__)
  static const bool supported = __builtin_cpu_supports("sse4.2");
  return supported;
#else
  return false;
#endif
}

std::uint32_t Extend(std::uint32_t crc, const char* data, std::size_t n) {
#if defined(__x86_64__)
  if (HardwareAccelerated()) return ExtendSse42(crc, data, n);
#endif
  return ExtendPortable(crc, data, n);
}

}  // namespace zmqkit::internal::crc32c
