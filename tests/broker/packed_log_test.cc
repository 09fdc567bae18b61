// PackedLog: every field comes back as it went in, whatever its value; lookups and erasures by
// number; chunks freed when nothing in them is live; and the size a steady stream of messages packs
// to.
#include "broker/packed_log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace zmqkit::internal {
namespace {

Envelope Message(std::string_view body) {
  Envelope envelope = Envelope::New(body);
  return envelope;
}

void ExpectSame(const PackedMessage& packed, std::uint64_t number, const Envelope& envelope,
                std::string_view reply_to) {
  EXPECT_EQ(packed.number, number);
  EXPECT_EQ(packed.id, envelope.id);
  EXPECT_EQ(packed.created_us, envelope.created_us);
  EXPECT_EQ(packed.seq, envelope.seq);
  EXPECT_EQ(packed.attempt, envelope.attempt);
  EXPECT_EQ(packed.stream, envelope.stream);
  EXPECT_EQ(packed.reply_to, reply_to);
  EXPECT_EQ(packed.DecodeHeaders(), envelope.headers);
  EXPECT_EQ(packed.body, envelope.body_view());
}

std::vector<std::uint64_t> Numbers(const PackedLog& log) {
  std::vector<std::uint64_t> numbers;
  for (auto cursor = log.Begin(); !cursor.done(); cursor.Next()) numbers.push_back(cursor.message().number);
  return numbers;
}

TEST(PackedLogTest, EveryFieldComesBackAsItWentIn) {
  std::vector<Envelope> messages;
  messages.push_back(Message("plain"));
  messages.push_back(Message(""));  // no body
  Envelope full = Message(std::string(4096, 'b'));
  full.seq = 1ull << 40;
  full.attempt = 7;
  full.stream = "stream-1";
  full.headers = {{"content-type", "text/plain"}, {"", ""}, {"k", std::string(300, 'v')}};
  messages.push_back(std::move(full));
  // Extreme values: differences wrap in both directions.
  Envelope extreme = Message("x");
  extreme.id = *MessageId::FromBytes(std::string(16, '\xff'));
  extreme.created_us = INT64_MIN;
  messages.push_back(std::move(extreme));
  Envelope back = Message("y");
  back.id = MessageId();
  back.created_us = INT64_MAX;
  messages.push_back(std::move(back));
  const std::vector<std::uint64_t> numbers = {1, 2, 1000, 1001, 1ull << 62};
  const std::vector<std::string> replies = {"", "reply-a", "", "r", ""};

  PackedLog log;
  for (std::size_t i = 0; i < messages.size(); ++i) log.Append(numbers[i], messages[i], replies[i]);
  EXPECT_EQ(log.size(), messages.size());
  EXPECT_EQ(log.back_number(), 1ull << 62);
  for (std::size_t i = 0; i < messages.size(); ++i) {
    auto found = log.Find(numbers[i]);
    ASSERT_TRUE(found) << numbers[i];
    ExpectSame(*found, numbers[i], messages[i], replies[i]);
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    ASSERT_FALSE(log.empty());
    ExpectSame(log.front(), numbers[i], messages[i], replies[i]);
    log.PopFront();
  }
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(log.allocated_bytes(), 0u);
}

TEST(PackedLogTest, ErasedMessagesAreSkippedAndNotFound) {
  PackedLog log;
  for (std::uint64_t number = 1; number <= 10; ++number) log.Append(number, Message("m"), "");
  EXPECT_TRUE(log.Erase(1));   // the front
  EXPECT_TRUE(log.Erase(5));   // the middle
  EXPECT_TRUE(log.Erase(10));  // the back
  EXPECT_FALSE(log.Erase(5)) << "already erased";
  EXPECT_FALSE(log.Erase(11)) << "never held";
  EXPECT_FALSE(log.Find(5));
  EXPECT_TRUE(log.Find(6));
  EXPECT_EQ(log.size(), 7u);
  EXPECT_EQ(log.front().number, 2u);
  EXPECT_EQ(Numbers(log), (std::vector<std::uint64_t>{2, 3, 4, 6, 7, 8, 9}));
  log.PopFront();
  EXPECT_FALSE(log.Find(2)) << "taken from the front";
  EXPECT_EQ(log.front().number, 3u);
  // Numbers after an erased back entry still append in order.
  log.Append(12, Message("m"), "");
  EXPECT_EQ(Numbers(log), (std::vector<std::uint64_t>{3, 4, 6, 7, 8, 9, 12}));
}

TEST(PackedLogTest, FindsByNumberAcrossManyChunks) {
  PackedLog log;
  std::vector<Envelope> messages;
  constexpr std::uint64_t kCount = 5'000;
  for (std::uint64_t i = 0; i < kCount; ++i) {
    messages.push_back(Message("message " + std::to_string(i)));
    log.Append(3 * i + 1, messages.back(), "");  // gaps of two between numbers
  }
  for (std::uint64_t i = 0; i < kCount; i += 97) {
    auto found = log.Find(3 * i + 1);
    ASSERT_TRUE(found);
    ExpectSame(*found, 3 * i + 1, messages[i], "");
    EXPECT_FALSE(log.Find(3 * i + 2));
  }
  EXPECT_FALSE(log.Find(0));
  EXPECT_FALSE(log.Find(3 * kCount + 1));
}

TEST(PackedLogTest, AChunkWithNothingLiveIsFreedWhereverItIs) {
  PackedLog log;
  constexpr std::uint64_t kCount = 20'000;
  for (std::uint64_t number = 1; number <= kCount; ++number) log.Append(number, Message(std::string(100, 'x')), "");
  const std::size_t full = log.allocated_bytes();
  // Erase a run in the middle: the chunks wholly inside it go; at most the two at its ends, each
  // at most 64 KiB, stay partly erased.
  for (std::uint64_t number = 5'000; number < 15'000; ++number) ASSERT_TRUE(log.Erase(number));
  EXPECT_LE(log.allocated_bytes(), full / 2 + 2 * 64 * 1024);
  EXPECT_EQ(log.size(), kCount - 10'000);
  std::uint64_t expected = 1;
  for (auto cursor = log.Begin(); !cursor.done(); cursor.Next()) {
    if (expected == 5'000) expected = 15'000;
    ASSERT_EQ(cursor.message().number, expected++);
  }
  EXPECT_EQ(expected, kCount + 1);
  while (!log.empty()) log.PopFront();
  EXPECT_EQ(log.allocated_bytes(), 0u);
}

// What the memory target rests on: a steady stream of 100-byte messages, each with a fresh UUIDv7
// id and its creation time, packs to about 14 bytes beside each body.
TEST(PackedLogTest, ASteadyStreamPacksToAboutFourteenBytesBesideEachBody) {
  PackedLog log;
  constexpr std::uint64_t kCount = 100'000;
  const std::string body(100, 'x');
  for (std::uint64_t number = 1; number <= kCount; ++number) log.Append(number, Envelope::New(body), "");
  const double per_message = static_cast<double>(log.allocated_bytes()) / kCount;
  EXPECT_LE(per_message, 100 + 16) << per_message;
  EXPECT_GE(per_message, 100 + 11) << "an id's random 10 bytes cannot pack";
}

}  // namespace
}  // namespace zmqkit::internal
