// PackedLog: every field comes back as it went in, whatever its value; lookups and erasures by
// number; chunks freed when nothing in them is live; and the size a steady stream of messages packs
// to, with ids that follow each other and ids that do not.
#include "broker/core/packed_log.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
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

// Ids that follow each other take no bytes; any other id is stored whole. Both must come back
// exactly, including where the log's successor rule wraps and across chunk starts.
TEST(PackedLogTest, IdsComeBackWhetherOrNotEachFollowsTheLast) {
  auto id_with_counter = [](std::string_view fixed, std::uint32_t counter) {
    std::string bytes = "\x01\x02\x03\x04\x05\x06" + std::string(fixed);
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>(counter >> (24 - 8 * i)));
    return *MessageId::FromBytes(bytes);
  };
  std::vector<Envelope> messages;
  auto add = [&](const MessageId& id) {
    Envelope envelope = Message(std::string(3000, 'p'));  // a chunk every few messages
    envelope.id = id;
    messages.push_back(std::move(envelope));
  };
  add(id_with_counter("AAAAAA", 0));  // a chunk's first id, its counter at 0
  add(id_with_counter("AAAAAA", 1));
  add(id_with_counter("BBBBBB", 2));  // the same counter step, other fixed bytes
  add(id_with_counter("BBBBBB", 0xFFFFFFFF));
  add(id_with_counter("BBBBBB", 0));  // wraps
  add(id_with_counter("BBBBBB", 0));  // the same id again: not a successor
  Envelope other_thread = Message("");
  for (int i = 0; i < 40; ++i) {  // two producers, interleaved
    add(MessageId::Generate(7));
    std::thread([&] { other_thread.id = MessageId::Generate(7); }).join();
    add(other_thread.id);
  }
  PackedLog log;
  for (std::size_t i = 0; i < messages.size(); ++i) log.Append(i + 1, messages[i], "");
  for (std::size_t i = 0; i < messages.size(); ++i) {
    auto found = log.Find(i + 1);
    ASSERT_TRUE(found) << i;
    EXPECT_EQ(found->id, messages[i].id) << i;
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    ASSERT_EQ(log.front().id, messages[i].id) << i;
    log.PopFront();
  }
}

// What the memory target rests on: a steady stream of 100-byte messages from one producer, each
// with a fresh id and its creation time, packs to about 4 bytes beside each body; ids that do not
// follow each other (two producers' interleaved, or another client's random UUIDs) cost 10 more.
TEST(PackedLogTest, ASteadyStreamPacksToAboutFourBytesBesideEachBody) {
  PackedLog log;
  constexpr std::uint64_t kCount = 100'000;
  const std::string body(100, 'x');
  for (std::uint64_t number = 1; number <= kCount; ++number) log.Append(number, Envelope::New(body), "");
  const double per_message = static_cast<double>(log.allocated_bytes()) / kCount;
  EXPECT_LE(per_message, 100 + 6) << per_message;

  std::vector<Envelope> others;
  std::thread([&] {
    for (std::uint64_t i = 0; i < kCount / 2; ++i) others.push_back(Envelope::New(body));
  }).join();
  PackedLog interleaved;
  for (std::uint64_t i = 0; i < kCount / 2; ++i) {
    interleaved.Append(2 * i + 1, Envelope::New(body), "");
    interleaved.Append(2 * i + 2, others[i], "");
  }
  const double interleaved_per_message = static_cast<double>(interleaved.allocated_bytes()) / kCount;
  EXPECT_GE(interleaved_per_message, per_message + 9) << "ids that do not follow are stored whole";
  // (and their creation times, apart by however long the other thread ran before, take more)
  EXPECT_LE(interleaved_per_message, 100 + 18) << interleaved_per_message;
}

}  // namespace
}  // namespace zmqkit::internal
