// Deduplication by message id: an id is remembered for its window and no longer, at most max_ids
// of them, oldest forgotten first, each scoped by exchange and routing key.
#include "broker/core/dedup_window.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

namespace zmqkit::internal {
namespace {

constexpr std::int64_t kSecond = 1'000'000;

DedupWindow Window(std::int64_t window_s, std::size_t max_ids) {
  return DedupWindow(DedupWindow::Limits{window_s * kSecond, max_ids});
}

TEST(DedupWindowTest, AnIdIsSeenWithinItsWindowAndForgottenAfter) {
  DedupWindow window = Window(120, 1000);
  EXPECT_FALSE(window.Seen("", "orders", "order-17", 0));
  window.Stored("", "orders", "order-17", 0);
  EXPECT_TRUE(window.Seen("", "orders", "order-17", 119 * kSecond));
  EXPECT_FALSE(window.Seen("", "orders", "order-17", 120 * kSecond)) << "the window has passed";
  EXPECT_EQ(window.size(), 0u);
}

TEST(DedupWindowTest, TheSameIdUnderAnotherExchangeOrKeyIsAnotherMessage) {
  DedupWindow window = Window(120, 1000);
  window.Stored("", "orders", "7", 0);
  EXPECT_FALSE(window.Seen("", "invoices", "7", 1));
  EXPECT_FALSE(window.Seen("events", "orders", "7", 1));
  // Length prefixes: no split of the same bytes between exchange, key and id meets another.
  window.Stored("a", "bc", "d", 0);
  EXPECT_FALSE(window.Seen("ab", "c", "d", 1));
  EXPECT_FALSE(window.Seen("a", "b", "cd", 1));
  EXPECT_TRUE(window.Seen("a", "bc", "d", 1));
}

TEST(DedupWindowTest, PastMaxIdsTheOldestIsForgottenAndCounted) {
  DedupWindow window = Window(120, 3);
  for (int i = 1; i <= 5; ++i) window.Stored("", "q", std::to_string(i), i * kSecond);
  EXPECT_EQ(window.size(), 3u);
  EXPECT_FALSE(window.Seen("", "q", "1", 6 * kSecond));
  EXPECT_FALSE(window.Seen("", "q", "2", 6 * kSecond));
  for (const char* id : {"3", "4", "5"}) EXPECT_TRUE(window.Seen("", "q", id, 6 * kSecond)) << id;
  EXPECT_EQ(window.evicted_early(), 2u) << "both were forgotten inside their window";
}

TEST(DedupWindowTest, AnIdOutOfItsWindowIsNotCountedAsEvictedEarly) {
  DedupWindow window = Window(10, 1);
  window.Stored("", "q", "old", 0);
  window.Stored("", "q", "new", 11 * kSecond);
  EXPECT_EQ(window.evicted_early(), 0u);
}

TEST(DedupWindowTest, VisitGivesBackWhatStoredRebuildsTheSameWindow) {
  DedupWindow window = Window(120, 1000);
  window.Stored("ex:1", "key:2", "id:3", 5);
  window.Stored("", "", "only-an-id", 6);
  window.Stored("10:", "", "x", 7);
  std::vector<std::tuple<std::string, std::string, std::string, std::int64_t>> seen;
  DedupWindow copy = Window(120, 1000);
  window.Visit([&](const DedupWindow::Entry& entry) {
    seen.emplace_back(entry.exchange, entry.key, entry.id, entry.at_us);
    copy.Stored(entry.exchange, entry.key, entry.id, entry.at_us);
  });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], std::make_tuple("ex:1", "key:2", "id:3", 5));
  EXPECT_EQ(seen[1], std::make_tuple("", "", "only-an-id", 6));
  EXPECT_EQ(seen[2], std::make_tuple("10:", "", "x", 7));
  EXPECT_TRUE(copy.Seen("ex:1", "key:2", "id:3", 10));
  EXPECT_TRUE(copy.Seen("10:", "", "x", 10));
}

// A journal written under a longer window may hold the same id twice; the later one counts, and
// forgetting the earlier one does not forget it.
TEST(DedupWindowTest, AnIdStoredTwiceByReplayKeepsItsLaterTime) {
  DedupWindow window = Window(100, 1000);
  window.Stored("", "q", "twice", 0);
  window.Stored("", "q", "twice", 90 * kSecond);
  EXPECT_EQ(window.size(), 1u);
  EXPECT_TRUE(window.Seen("", "q", "twice", 150 * kSecond)) << "the first copy's window ended";
  int visited = 0;
  window.Visit([&](const DedupWindow::Entry& entry) {
    ++visited;
    EXPECT_EQ(entry.at_us, 90 * kSecond);
  });
  EXPECT_EQ(visited, 1);
  EXPECT_FALSE(window.Seen("", "q", "twice", 190 * kSecond));
}

TEST(DedupWindowTest, AZeroWindowOrCountIsOff) {
  EXPECT_FALSE(Window(0, 10).enabled());
  EXPECT_FALSE(Window(10, 0).enabled());
  EXPECT_TRUE(Window(10, 10).enabled());
}

}  // namespace
}  // namespace zmqkit::internal
