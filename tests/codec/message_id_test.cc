#include "zmqkit/message_id.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <thread>
#include <unordered_set>
#include <vector>

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

std::array<std::uint8_t, 6> ThreadBits(const MessageId& id) {
  std::array<std::uint8_t, 6> bits;
  std::memcpy(bits.data(), id.bytes().data() + 6, bits.size());
  return bits;
}

std::uint32_t Counter(const MessageId& id) {
  std::uint32_t counter = 0;
  for (int i = 12; i < 16; ++i) counter = counter << 8 | id.bytes()[i];
  return counter;
}

// The broker's packed backlog stores an id that is its predecessor's successor in no bytes, and
// users expect one producer's ids to sort in the order it made them.
TEST(MessageIdTest, OneThreadsIdsSortInTheOrderTheyWereMadeAndEachFollowsTheLast) {
  std::vector<MessageId> ids;
  for (int i = 0; i < 10'000; ++i) ids.push_back(MessageId::Generate(42));
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  for (std::size_t i = 1; i < ids.size(); ++i) {
    ASSERT_EQ(ThreadBits(ids[i]), ThreadBits(ids[0])) << i;
    ASSERT_EQ(Counter(ids[i]), Counter(ids[i - 1]) + 1) << i;
  }
  // Room for 2^31 ids before the counter wraps and the thread draws new bits.
  EXPECT_LT(Counter(ids[0]), 1u << 31);
}

TEST(MessageIdTest, ThreadsAndForkedChildrenDrawTheirOwnBits) {
  const MessageId before_fork = MessageId::Generate(42);
  MessageId other_thread;
  std::thread([&] { other_thread = MessageId::Generate(42); }).join();
  EXPECT_NE(ThreadBits(other_thread), ThreadBits(before_fork));

  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Without new bits the child would make exactly the ids its parent goes on to make.
    const MessageId in_child = MessageId::Generate(42);
    const ssize_t written = write(pipe_fds[1], in_child.bytes().data(), MessageId::kSize);
    _exit(written == static_cast<ssize_t>(MessageId::kSize) ? 0 : 1);
  }
  close(pipe_fds[1]);
  std::string child_bytes(MessageId::kSize, '\0');
  ASSERT_EQ(read(pipe_fds[0], child_bytes.data(), child_bytes.size()),
            static_cast<ssize_t>(MessageId::kSize));
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const MessageId in_child = *MessageId::FromBytes(child_bytes);
  const MessageId in_parent = MessageId::Generate(42);
  EXPECT_NE(in_child, in_parent);
  EXPECT_NE(ThreadBits(in_child), ThreadBits(in_parent));
  EXPECT_EQ(in_child.bytes()[6] >> 4, 7);
  EXPECT_EQ(ThreadBits(in_parent), ThreadBits(before_fork)) << "the parent goes on counting";
  EXPECT_EQ(Counter(in_parent), Counter(before_fork) + 1);
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
