// Idempotent publishing's bookkeeping: what a producer's sequence numbers say was stored, in the
// orders a real producer sends them — in order, with refusals, lost and sent again out of order.
#include "broker/core/producer_table.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace zmqkit::internal {
namespace {

using Verdict = ProducerTable::Verdict;

TEST(ProducerTableTest, WhatWasStoredIsADuplicateAndWhatWasNotIsNew) {
  ProducerTable table;
  EXPECT_EQ(table.Check("p", 1), Verdict::kNew);
  for (std::uint64_t seq = 1; seq <= 5; ++seq) table.Stored("p", seq, 100);
  for (std::uint64_t seq = 1; seq <= 5; ++seq) EXPECT_EQ(table.Check("p", seq), Verdict::kDuplicate);
  EXPECT_EQ(table.Check("p", 6), Verdict::kNew);
  EXPECT_EQ(table.Check("other", 3), Verdict::kNew) << "producers are apart";
  EXPECT_EQ(table.gaps(), 0u) << "in order: no gap, a few bytes for any number of messages";
}

// 6 was refused and 7, 8 lost in transit; 9 arrived. Sent again, 6, 7 and 8 are new, once each.
TEST(ProducerTableTest, NumbersSkippedAreNewUntilStored) {
  ProducerTable table;
  for (std::uint64_t seq = 1; seq <= 5; ++seq) table.Stored("p", seq, 100);
  table.Stored("p", 9, 100);
  for (std::uint64_t seq : {6, 7, 8}) EXPECT_EQ(table.Check("p", seq), Verdict::kNew) << seq;
  table.Stored("p", 7, 101);
  EXPECT_EQ(table.Check("p", 7), Verdict::kDuplicate);
  EXPECT_EQ(table.Check("p", 6), Verdict::kNew);
  EXPECT_EQ(table.Check("p", 8), Verdict::kNew);
  EXPECT_EQ(table.gaps(), 2u);
  table.Stored("p", 6, 102);
  table.Stored("p", 8, 102);
  EXPECT_EQ(table.gaps(), 0u);
  for (std::uint64_t seq = 1; seq <= 9; ++seq) EXPECT_EQ(table.Check("p", seq), Verdict::kDuplicate);
}

// Against a set of every number stored, in a random order with repeats: the table never says a
// number never stored is a duplicate, nor one stored is new.
TEST(ProducerTableTest, AgreesWithAFullRecordUnderRandomOrders) {
  std::mt19937 random(7);
  ProducerTable table;
  std::set<std::uint64_t> stored;
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t seq = 1 + random() % 3000;
    const Verdict verdict = table.Check("p", seq);
    ASSERT_NE(verdict, Verdict::kTooOld);
    ASSERT_EQ(verdict == Verdict::kDuplicate, stored.contains(seq)) << "seq " << seq << " step " << i;
    if (verdict == Verdict::kNew && random() % 4 != 0) {  // a quarter refused: not stored
      table.Stored("p", seq, i);
      stored.insert(seq);
    }
  }
}

TEST(ProducerTableTest, TooManyGapsRaiseTheFloorAndBelowItNothingIsAnswered) {
  ProducerTable::Limits limits;
  limits.max_gaps = 3;
  ProducerTable table(limits);
  for (std::uint64_t seq = 2; seq <= 10; seq += 2) table.Stored("p", seq, 1);  // gaps 1,3,5,7,9
  EXPECT_EQ(table.gaps(), 3u);
  // Gaps 1 and 3 were forgotten: the floor is 3.
  EXPECT_EQ(table.Check("p", 1), Verdict::kTooOld);
  EXPECT_EQ(table.Check("p", 2), Verdict::kTooOld) << "stored or not, no longer known";
  EXPECT_EQ(table.Check("p", 3), Verdict::kTooOld);
  EXPECT_EQ(table.Check("p", 4), Verdict::kDuplicate);
  EXPECT_EQ(table.Check("p", 5), Verdict::kNew);
}

TEST(ProducerTableTest, IdleProducersAreForgottenAfterTheWindowAndTheIdlestBeyondTheLimit) {
  ProducerTable::Limits limits;
  limits.window_us = 1000;
  limits.max_producers = 2;
  ProducerTable table(limits);
  table.Stored("a", 1, 0);
  table.Stored("b", 1, 500);
  EXPECT_EQ(table.Expire(900), 0u);
  EXPECT_EQ(table.Check("a", 1), Verdict::kDuplicate);  // "a" is the one looked up last
  EXPECT_EQ(table.Expire(1001), 1u);
  EXPECT_EQ(table.Check("a", 1), Verdict::kNew) << "forgotten";
  EXPECT_EQ(table.Check("b", 1), Verdict::kDuplicate);
  table.Stored("c", 1, 1100);
  table.Stored("b", 2, 1200);  // b is busier than c now
  table.Stored("d", 1, 1300);
  EXPECT_EQ(table.Expire(1300), 1u);
  EXPECT_EQ(table.Check("c", 1), Verdict::kNew) << "the idlest of three, beyond two";
  EXPECT_EQ(table.size(), 2u);
}

TEST(ProducerTableTest, ASnapshotRestoresTheSameAnswers) {
  ProducerTable table;
  for (std::uint64_t seq : {1, 2, 5, 9}) table.Stored("p", seq, 10);
  table.Stored("q", 3, 20);
  ProducerTable restored;
  table.Visit([&](const ProducerTable::Entry& entry) { restored.Restore(entry); });
  for (std::uint64_t seq = 1; seq <= 12; ++seq) {
    EXPECT_EQ(restored.Check("p", seq), table.Check("p", seq)) << seq;
    EXPECT_EQ(restored.Check("q", seq), table.Check("q", seq)) << seq;
  }
  EXPECT_EQ(restored.gaps(), table.gaps());
}

}  // namespace
}  // namespace zmqkit::internal
