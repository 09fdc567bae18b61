#include "zmqkit/sequence_tracker.h"

#include <gtest/gtest.h>

namespace zmqkit {
namespace {

using Verdict = SequenceTracker::Verdict;

TEST(SequenceTrackerTest, InOrderStreamHasNoLosses) {
  SequenceTracker tracker;
  EXPECT_EQ(tracker.Observe("a", 1), Verdict::kFirst);
  for (uint64_t seq = 2; seq <= 100; ++seq) EXPECT_EQ(tracker.Observe("a", seq), Verdict::kInOrder);
  EXPECT_EQ(tracker.totals().received, 100u);
  EXPECT_EQ(tracker.totals().missing, 0u);
  EXPECT_EQ(tracker.totals().missed_before_join, 0u);
  EXPECT_EQ(tracker.totals().duplicates, 0u);
}

TEST(SequenceTrackerTest, LateJoinerCountsWhatItMissedBeforeJoining) {
  SequenceTracker tracker;
  EXPECT_EQ(tracker.Observe("a", 41), Verdict::kFirst);
  EXPECT_EQ(tracker.totals().missed_before_join, 40u);
  EXPECT_EQ(tracker.totals().missing, 0u);
}

TEST(SequenceTrackerTest, GapsDuplicatesAndLateArrivals) {
  SequenceTracker tracker;
  tracker.Observe("a", 1);
  EXPECT_EQ(tracker.Observe("a", 5), Verdict::kGap);  // 2, 3, 4 missing
  EXPECT_EQ(tracker.totals().gaps, 1u);
  EXPECT_EQ(tracker.totals().missing, 3u);
  EXPECT_EQ(tracker.Observe("a", 3), Verdict::kLate);  // splits the hole into 2 and 4
  EXPECT_EQ(tracker.totals().missing, 2u);
  EXPECT_EQ(tracker.Observe("a", 3), Verdict::kDuplicate);
  EXPECT_EQ(tracker.Observe("a", 5), Verdict::kDuplicate);
  EXPECT_EQ(tracker.Observe("a", 1), Verdict::kDuplicate);
  EXPECT_EQ(tracker.Observe("a", 2), Verdict::kLate);
  EXPECT_EQ(tracker.Observe("a", 4), Verdict::kLate);
  EXPECT_EQ(tracker.totals().missing, 0u);
  EXPECT_EQ(tracker.totals().late, 3u);
  EXPECT_EQ(tracker.totals().duplicates, 3u);
  EXPECT_EQ(tracker.Observe("a", 6), Verdict::kInOrder);
}

TEST(SequenceTrackerTest, StreamsAreCountedSeparately) {
  SequenceTracker tracker;
  tracker.Observe("a", 1);
  EXPECT_EQ(tracker.Observe("b", 1), Verdict::kFirst);  // a restarted publisher is a new stream
  EXPECT_EQ(tracker.Observe("a", 2), Verdict::kInOrder);
  EXPECT_EQ(tracker.Observe("b", 2), Verdict::kInOrder);
  EXPECT_EQ(tracker.streams(), 2u);
  EXPECT_EQ(tracker.totals().duplicates, 0u);
}

TEST(SequenceTrackerTest, ForgetsOldestHolesBeyondItsBound) {
  SequenceTracker tracker(/*max_missing_ranges=*/2);
  tracker.Observe("a", 1);
  tracker.Observe("a", 3);  // hole {2}
  tracker.Observe("a", 5);  // hole {4}
  tracker.Observe("a", 7);  // hole {6}; {2} is forgotten
  EXPECT_EQ(tracker.totals().missing, 3u);
  EXPECT_EQ(tracker.Observe("a", 2), Verdict::kDuplicate);  // can no longer be told from one
  EXPECT_EQ(tracker.Observe("a", 6), Verdict::kLate);
}

}  // namespace
}  // namespace zmqkit
