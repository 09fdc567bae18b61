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

TEST(Crc32cTest, MaskIsReversibleAndChangesTheValue) {
  std::uint32_t crc = Value("foo", 3);
  EXPECT_NE(Mask(crc), crc);
  EXPECT_NE(Mask(Mask(crc)), crc);
  EXPECT_EQ(Unmask(Mask(crc)), crc);
  EXPECT_EQ(Unmask(Unmask(Mask(Mask(crc)))), crc);
}

}  // namespace
}  // namespace zmqkit::internal::crc32c
