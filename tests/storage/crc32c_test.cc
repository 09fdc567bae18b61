#include "storage/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace zmqkit::internal::crc32c {
namespace {

// RFC 3720, section B.4.
TEST(Crc32cTest, StandardVectors) {
  char buffer[32];
  std::fill(buffer, buffer + 32, 0);
  EXPECT_EQ(Value(buffer, 32), 0x8a9136aau);
  std::fill(buffer, buffer + 32, static_cast<char>(0xff));
  EXPECT_EQ(Value(buffer, 32), 0x62a8ab43u);
  for (int i = 0; i < 32; ++i) buffer[i] = static_cast<char>(i);
  EXPECT_EQ(Value(buffer, 32), 0x46dd794eu);
  for (int i = 0; i < 32; ++i) buffer[i] = static_cast<char>(31 - i);
  EXPECT_EQ(Value(buffer, 32), 0x113fdb5cu);
}

TEST(Crc32cTest, ExtendContinuesAValue) {
  std::string a = "hello ", b = "world";
  EXPECT_EQ(Extend(Value(a.data(), a.size()), b.data(), b.size()),
            Value((a + b).data(), a.size() + b.size()));
  EXPECT_NE(Value("a", 1), Value("foo", 3));
}

// The hardware path and the table agree at every length and alignment (the 8-byte steps and the
// byte tail), and when continuing from an earlier value.
TEST(Crc32cTest, TheHardwarePathAgreesWithTheTable) {
  std::string bytes(300, '\0');
  std::uint32_t seed = 12345;
  for (char& c : bytes) {
    seed = seed * 1103515245u + 12345u;
    c = static_cast<char>(seed >> 16);
  }
  for (std::size_t offset = 0; offset < 9; ++offset) {
    for (std::size_t length = 0; length + offset <= bytes.size(); length += 7) {
      const char* data = bytes.data() + offset;
      ASSERT_EQ(Extend(0, data, length), ExtendPortable(0, data, length))
          << "offset " << offset << ", length " << length;
      ASSERT_EQ(Extend(0xdeadbeefu, data, length), ExtendPortable(0xdeadbeefu, data, length));
    }
  }
  RecordProperty("hardware_accelerated", HardwareAccelerated() ? "yes" : "no");
}

TEST(Crc32cTest, MaskIsReversibleAndChangesTheValue) {
  std::uint32_t crc = Value("foo", 3);
  EXPECT_NE(Mask(crc), crc);
  EXPECT_NE(Mask(Mask(crc)), crc);
  EXPECT_EQ(Unmask(Mask(crc)), crc);
  EXPECT_EQ(Unmask(Unmask(Mask(Mask(crc)))), crc);
}

}  // namespace
}  // namespace zmqkit::internal::crc32c
