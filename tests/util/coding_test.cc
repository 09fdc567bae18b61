// util/coding.h: byte order and width, checked against bytes written out by hand.
#include "util/coding.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <limits>

namespace zmqkit::internal {
namespace {

TEST(CodingTest, BigEndianPutsTheMostSignificantByteFirst) {
  std::array<unsigned char, 8> bytes{};
  EncodeBigEndian(bytes.data(), 0x0102030405060708u, 8);
  EXPECT_EQ(bytes, (std::array<unsigned char, 8>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(DecodeBigEndian(bytes.data(), 8), 0x0102030405060708u);
}

TEST(CodingTest, LittleEndianPutsTheLeastSignificantByteFirst) {
  std::array<char, 4> bytes{};
  EncodeLittleEndian(bytes.data(), 0xA1B2C3D4u, 4);
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]), 0xD4);
  EXPECT_EQ(static_cast<unsigned char>(bytes[3]), 0xA1);
  EXPECT_EQ(DecodeLittleEndian(bytes.data(), 4), 0xA1B2C3D4u) << "bytes above 0x7f read unsigned";
}

TEST(CodingTest, ANarrowWidthKeepsTheLowBytesOnly) {
  std::array<std::uint8_t, 6> bytes{};
  EncodeBigEndian(bytes.data(), 0xFFFF'0000'0000'0001u, 6);
  EXPECT_EQ(bytes, (std::array<std::uint8_t, 6>{0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(DecodeBigEndian(bytes.data(), 6), 1u);
  std::array<char, 2> two{};
  EncodeLittleEndian(two.data(), 0x1234, 2);
  EXPECT_EQ(DecodeLittleEndian(two.data(), 2), 0x1234u);
}

TEST(CodingTest, EveryWidthRoundTripsItsLargestValue) {
  for (std::size_t width = 1; width <= 8; ++width) {
    const std::uint64_t largest =
        width == 8 ? std::numeric_limits<std::uint64_t>::max() : (std::uint64_t{1} << (8 * width)) - 1;
    // Room for more than 8: g++ 12 cannot tell that width stays within them and warns.
    std::array<unsigned char, 16> bytes{};
    EncodeBigEndian(bytes.data(), largest, width);
    EXPECT_EQ(DecodeBigEndian(bytes.data(), width), largest) << width;
    EncodeLittleEndian(bytes.data(), largest, width);
    EXPECT_EQ(DecodeLittleEndian(bytes.data(), width), largest) << width;
  }
}

}  // namespace
}  // namespace zmqkit::internal
