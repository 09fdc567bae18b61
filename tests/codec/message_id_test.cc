#include "zmqkit/message_id.h"

#include <gtest/gtest.h>

#include <unordered_set>

namespace zmqkit {
namespace {

TEST(MessageIdTest, GeneratesUuidV7WithTheGivenTime) {
  MessageId id = MessageId::Generate(0x0123456789AB);
  EXPECT_EQ(id.unix_ms(), 0x0123456789ABu);
  EXPECT_EQ(id.bytes()[6] >> 4, 7);           // version
  EXPECT_EQ(id.bytes()[8] >> 6, 0b10);        // variant
  EXPECT_EQ(id.ToString().substr(0, 13), "01234567-89ab");
}

TEST(MessageIdTest, IdsAreUnique) {
  std::unordered_set<MessageId, MessageIdHash> seen;
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(seen.insert(MessageId::Generate(42)).second);
}

TEST(MessageIdTest, TextRoundTrip) {
  MessageId id = MessageId::Generate();
  auto parsed = MessageId::FromString(id.ToString());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, id);
  EXPECT_FALSE(MessageId::FromString("not-a-uuid").has_value());
  EXPECT_FALSE(MessageId::FromString("0123456789ab-cdef-0123-4567-89abcdef0123").has_value());
  EXPECT_FALSE(MessageId::FromString("01234567-89ab-cdef-0123-456789abcdeg").has_value());
}

TEST(MessageIdTest, BytesRoundTripAndLengthCheck) {
  MessageId id = MessageId::Generate();
  EXPECT_EQ(MessageId::FromBytes(id.AsBytes()), id);
  EXPECT_FALSE(MessageId::FromBytes("short").has_value());
  EXPECT_TRUE(MessageId().is_nil());
  EXPECT_FALSE(id.is_nil());
}

}  // namespace
}  // namespace zmqkit
