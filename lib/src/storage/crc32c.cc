#include "storage/crc32c.h"

#include <boost/crc.hpp>

namespace zmqkit::internal::crc32c {
namespace {

std::uint32_t ReverseBits(std::uint32_t x) {
  std::uint32_t reversed = 0;
  for (int i = 0; i < 32; ++i, x >>= 1) reversed = (reversed << 1) | (x & 1);
  return reversed;
}

}  // namespace

std::uint32_t Extend(std::uint32_t crc, const char* data, std::size_t n) {
  // Reflected Castagnoli polynomial, initial value and final XOR 0xFFFFFFFF. To continue from an
  // earlier CRC the register starts at that CRC with the final XOR undone; Boost's constructor
  // reflects the value it is given for a reflected algorithm, so it is given the value reversed.
  using Crc32c = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;
  Crc32c crc32c(ReverseBits(crc ^ 0xFFFFFFFFu));
  crc32c.process_bytes(data, n);
  return crc32c.checksum();
}

}  // namespace zmqkit::internal::crc32c
