#include "broker/core/message_queue.h"

#include <gtest/gtest.h>

namespace zmqkit::internal {
namespace {

using namespace std::chrono_literals;

EnqueueOptions Delayed(Duration delay) {
  EnqueueOptions options;
  options.delay = delay;
  return options;
}

// "m<number>"; appended, as g++ 12 warns wrongly (-Wrestrict) on "m" + std::to_string.
std::string Named(std::uint64_t number) {
  std::string name = "m";
  name.append(std::to_string(number));
  return name;
}

EnqueueOptions WithTtl(Duration ttl) {
  EnqueueOptions options;
  options.ttl = ttl;
  return options;
}

class MessageQueueTest : public ::testing::Test {
 protected:
  MessageQueueTest() {
    options_.ack_timeout = 30s;
    options_.max_attempts = 5;
    options_.retry_delay = 200ms;
    options_.max_retry_delay = 1s;
  }

  MessageQueue& queue() {
    if (!queue_) queue_.emplace("work", options_);
    return *queue_;
  }
  void Publish(std::string_view body, std::uint8_t priority = 0, EnqueueOptions publish = {}) {
    Envelope envelope = Envelope::New(body);
    envelope.priority = priority;
    ASSERT_TRUE(queue().Publish(std::move(envelope), std::move(publish), clock_.Now()).ok());
  }
  // Leases the next message under a fresh tag and returns its body ("" if none is ready).
  std::string Next(std::uint64_t* tag_out = nullptr) {
    auto lease = queue().LeaseNext(next_tag_, clock_.Now(), options_.ack_timeout);
    if (!lease) return "";
    if (tag_out) *tag_out = next_tag_;
    ++next_tag_;
    last_attempt_ = lease->envelope.attempt;
    return std::string(lease->envelope.body_view());
  }

  QueueOptions options_;
  std::optional<MessageQueue> queue_;
  ManualClock clock_;
  std::uint64_t next_tag_ = 1;
  std::uint32_t last_attempt_ = 0;
};

TEST_F(MessageQueueTest, FifoWithinAPriorityAndHigherPrioritiesFirst) {
  Publish("pizza 1", 1);
  Publish("pizza 2", 1);
  Publish("drink 1", 8);
  Publish("soup", 0);
  Publish("drink 2", 8);
  EXPECT_EQ(Next(), "drink 1");
  EXPECT_EQ(Next(), "drink 2");
  EXPECT_EQ(Next(), "pizza 1");
  EXPECT_EQ(Next(), "pizza 2");
  EXPECT_EQ(Next(), "soup");
  EXPECT_EQ(Next(), "");
  EXPECT_EQ(queue().in_flight(), 5u);
}

TEST_F(MessageQueueTest, AckSettlesOnceAndUnknownTagsAreRefused) {
  Publish("a");
  std::uint64_t tag = 0;
  ASSERT_EQ(Next(&tag), "a");
  EXPECT_EQ(last_attempt_, 1u);
  EXPECT_TRUE(queue().Ack(tag));
  EXPECT_FALSE(queue().Ack(tag));
  EXPECT_FALSE(queue().Ack(999));
  EXPECT_EQ(queue().size(), 0u);
  EXPECT_EQ(queue().bytes(), 0u);
  EXPECT_EQ(queue().counters().acked, 1u);
}

TEST_F(MessageQueueTest, AnUnackedDeliveryIsTakenBackAfterItsTimeoutAndRedelivered) {
  Publish("a");
  std::uint64_t tag = 0;
  ASSERT_EQ(Next(&tag), "a");
  EXPECT_EQ(queue().NextDeadline(), clock_.Now() + 30s);
  clock_.Advance(30s - 1ms);
  EXPECT_TRUE(queue().Tick(clock_.Now()).timed_out.empty());
  clock_.Advance(1ms);
  auto tick = queue().Tick(clock_.Now());
  ASSERT_EQ(tick.timed_out.size(), 1u);
  EXPECT_EQ(tick.timed_out[0].tag, tag);
  EXPECT_EQ(tick.timed_out[0].attempt, 1u);
  EXPECT_FALSE(queue().Ack(tag));  // the late ack of the stalled consumer no longer counts
  // At once: the timeout was the wait. (retry_delay is 200 ms here; it is for NACKs.)
  EXPECT_EQ(Next(), "a");
  EXPECT_EQ(last_attempt_, 2u);
}

TEST_F(MessageQueueTest, TakenBackMessagesGoAheadOfNewerOnesInTheirOriginalOrder) {
  Publish("1");
  Publish("2");
  Publish("3");
  std::uint64_t t1, t2;
  ASSERT_EQ(Next(&t1), "1");
  ASSERT_EQ(Next(&t2), "2");
  Publish("4");
  // The consumer holding 1 and 2 died: both come back at once, without back-off.
  EXPECT_FALSE(queue().Fail(t2, FailureReason::kConsumerLost, true, clock_.Now()).dead);
  EXPECT_FALSE(queue().Fail(t1, FailureReason::kConsumerLost, true, clock_.Now()).dead);
  EXPECT_EQ(Next(), "1");
  EXPECT_EQ(Next(), "2");
  EXPECT_EQ(Next(), "3");
  EXPECT_EQ(Next(), "4");
}

// A delivery that never left the broker is taken back as if never given: in its place, the same
// attempt, no failure in its history, not counted as delivered.
TEST_F(MessageQueueTest, AnUnleasedMessageIsReadyInItsPlaceWithItsAttemptUntouched) {
  Publish("1");
  Publish("2", 0, WithTtl(10s));
  std::uint64_t t1, t2;
  ASSERT_EQ(Next(&t1), "1");
  ASSERT_EQ(Next(&t2), "2");
  Publish("3");
  EXPECT_TRUE(queue().Unlease(t2));
  EXPECT_TRUE(queue().Unlease(t1));
  EXPECT_FALSE(queue().Unlease(t1)) << "no longer in flight";
  EXPECT_FALSE(queue().Ack(t1));
  EXPECT_EQ(queue().in_flight(), 0u);
  EXPECT_EQ(queue().counters().delivered, 0u);
  EXPECT_EQ(queue().NextDeadline(), clock_.Now() + 10s) << "the TTL runs again, the lease does not";
  EXPECT_EQ(Next(), "1");
  EXPECT_EQ(last_attempt_, 1u);
  EXPECT_EQ(Next(), "2");
  EXPECT_EQ(last_attempt_, 1u);
  EXPECT_EQ(Next(), "3");
  for (const auto& message : queue().Contents()) EXPECT_EQ(message.attempt, 1u);
  auto history = queue().Contents();
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history[0].headers.count(std::string(kHeaderAttemptHistory)), 0u);
}

TEST_F(MessageQueueTest, RequeueAfterANackBacksOffExponentiallyUpToTheCap) {
  options_.max_attempts = 0;
  Publish("poison");
  std::vector<Duration> waits;
  for (int failure = 0; failure < 5; ++failure) {
    std::uint64_t tag = 0;
    ASSERT_EQ(Next(&tag), "poison");
    queue().Fail(tag, FailureReason::kRejected, /*requeue=*/true, clock_.Now());
    auto due = queue().NextDeadline();
    ASSERT_TRUE(due.has_value());
    waits.push_back(*due - clock_.Now());
    clock_.Advance(*due - clock_.Now());
    queue().Tick(clock_.Now());
  }
  EXPECT_EQ(waits, (std::vector<Duration>{200ms, 400ms, 800ms, 1s, 1s}));
}

TEST_F(MessageQueueTest, MaxAttemptsSendsTheMessageToTheDeadLetterQueueWithItsHistory) {
  options_.max_attempts = 3;
  options_.retry_delay = 0ms;
  Publish("poison");
  std::uint64_t tag = 0;
  ASSERT_EQ(Next(&tag), "poison");
  EXPECT_FALSE(queue().Fail(tag, FailureReason::kRejected, true, clock_.Now()).dead);
  ASSERT_EQ(Next(&tag), "poison");
  EXPECT_FALSE(queue().Fail(tag, FailureReason::kConsumerLost, true, clock_.Now()).dead);
  ASSERT_EQ(Next(&tag), "poison");
  clock_.Advance(30s);
  auto tick = queue().Tick(clock_.Now());
  ASSERT_EQ(tick.dead.size(), 1u);
  const DeadLetter& dead = tick.dead[0];
  EXPECT_EQ(dead.reason, DeadLetterReason::kMaxAttempts);
  EXPECT_EQ(dead.envelope.body_view(), "poison");
  EXPECT_EQ(dead.envelope.headers.at("x-origin-queue"), "work");
  EXPECT_EQ(dead.envelope.headers.at("x-death-reason"), "max-attempts");
  EXPECT_EQ(dead.envelope.headers.at("x-attempts"), "3");
  EXPECT_EQ(dead.envelope.headers.at("x-attempt-history"), "rejected,consumer-lost,timeout");
  EXPECT_EQ(queue().size(), 0u);
  EXPECT_EQ(queue().counters().dead_lettered, 1u);
}

TEST_F(MessageQueueTest, NackWithoutRequeueDeadLettersAsRejected) {
  Publish("bad");
  std::uint64_t tag = 0;
  ASSERT_EQ(Next(&tag), "bad");
  auto failed = queue().Fail(tag, FailureReason::kRejected, /*requeue=*/false, clock_.Now());
  ASSERT_TRUE(failed.found);
  ASSERT_TRUE(failed.dead.has_value());
  EXPECT_EQ(failed.dead->reason, DeadLetterReason::kRejected);
  EXPECT_EQ(failed.dead->envelope.headers.at("x-death-reason"), "rejected");
  EXPECT_FALSE(queue().Fail(tag, FailureReason::kRejected, false, clock_.Now()).found);
}

TEST_F(MessageQueueTest, DelayedMessagesBecomeReadyOnTimeAtTheBackOfTheLine) {
  Publish("check the oven", 0, Delayed(10min));
  Publish("pizza 1");
  EXPECT_EQ(queue().delayed(), 1u);
  EXPECT_EQ(queue().NextDeadline(), clock_.Now() + 10min);
  std::uint64_t tag = 0;
  EXPECT_EQ(Next(&tag), "pizza 1");
  EXPECT_TRUE(queue().Ack(tag).has_value());
  Publish("pizza 2");
  clock_.Advance(10min - 1ms);
  queue().Tick(clock_.Now());
  EXPECT_EQ(Next(), "pizza 2");
  EXPECT_EQ(Next(), "");
  clock_.Advance(1ms);
  queue().Tick(clock_.Now());
  Publish("pizza 3");
  EXPECT_EQ(Next(), "check the oven");
  EXPECT_EQ(Next(), "pizza 3");
}

// Where a message whose delay ended joined the line depends on when Tick ran, so Tick says (the
// broker journals it), and a queue rebuilt by number puts it back in the same place.
TEST_F(MessageQueueTest, ADelayThatEndsSaysWhereTheMessageJoinedAndARestoreKeepsThatPlace) {
  Publish("m1", 0, Delayed(1s));
  Publish("m2");
  clock_.Advance(1s);
  auto tick = queue().Tick(clock_.Now());
  ASSERT_EQ(tick.readied.size(), 1u);
  EXPECT_EQ(tick.readied[0].number, 1u);
  EXPECT_EQ(tick.readied[0].order, 3u);  // behind m2, ahead of anything published later
  Publish("m3 (number 4)");
  EXPECT_EQ(queue().next_number(), 5u);

  // Rebuilt from the journal: the delayed publish is delayed still, whatever the time is now.
  MessageQueue rebuilt("work", options_);
  EnqueueOptions one, two, four;
  one.number = 1;
  one.delay = 1us;
  two.number = 2;
  four.number = 4;
  ASSERT_TRUE(rebuilt.Publish(Envelope::New("m1"), one, clock_.Now()).ok());
  ASSERT_TRUE(rebuilt.Publish(Envelope::New("m2"), two, clock_.Now()).ok());
  ASSERT_TRUE(rebuilt.RestoreReady(1, 3));
  ASSERT_TRUE(rebuilt.Publish(Envelope::New("m3 (number 4)"), four, clock_.Now()).ok());
  EXPECT_EQ(rebuilt.Contents(), queue().Contents());
  EXPECT_EQ(rebuilt.next_number(), 5u);

  // Rebuilt from a snapshot: published ready, packed or not, then put in its place.
  MessageQueue snapshot("work", options_);
  EnqueueOptions ttl_one = WithTtl(1h);
  ttl_one.number = 1;
  ASSERT_TRUE(snapshot.Publish(Envelope::New("m1"), ttl_one, clock_.Now()).ok());  // fresh
  ASSERT_TRUE(snapshot.RestoreReady(1, 3));
  ASSERT_TRUE(snapshot.Publish(Envelope::New("m2"), two, clock_.Now()).ok());      // packed
  ASSERT_TRUE(snapshot.Publish(Envelope::New("m3 (number 4)"), four, clock_.Now()).ok());
  std::vector<std::string> bodies;
  for (const auto& view : snapshot.Contents()) bodies.push_back(view.body);
  EXPECT_EQ(bodies, (std::vector<std::string>{"m2", "m1", "m3 (number 4)"}));

  // A READY for a message that is not delayed or just published, or not there, does not fit.
  EXPECT_FALSE(snapshot.RestoreReady(9, 10));
  std::uint64_t tag = 0;
  EXPECT_EQ(Next(&tag), "m2");
  EXPECT_FALSE(queue().RestoreReady(2, 6)) << "in flight";
  Publish("m5", 0, WithTtl(1h));
  Publish("m6", 0, WithTtl(1h));
  EXPECT_FALSE(queue().RestoreReady(5, 9)) << "ready, but not where a snapshot leaves it";
}

TEST_F(MessageQueueTest, TheLeaseOfADelayedMessageStartsAtDeliveryNotAtPublish) {
  Publish("later", 0, Delayed(1min));
  clock_.Advance(1min);
  queue().Tick(clock_.Now());
  std::uint64_t tag = 0;
  ASSERT_EQ(Next(&tag), "later");
  clock_.Advance(29s);
  EXPECT_TRUE(queue().Tick(clock_.Now()).timed_out.empty());
}

TEST_F(MessageQueueTest, ExpiredMessagesAreDeadLetteredNotDelivered) {
  Publish("fresh");
  Publish("stale", 0, WithTtl(5s));
  clock_.Advance(5s);
  auto tick = queue().Tick(clock_.Now());
  ASSERT_EQ(tick.dead.size(), 1u);
  EXPECT_EQ(tick.dead[0].reason, DeadLetterReason::kExpired);
  EXPECT_EQ(tick.dead[0].envelope.body_view(), "stale");
  EXPECT_EQ(Next(), "fresh");
  EXPECT_EQ(Next(), "");
  EXPECT_EQ(queue().counters().expired, 1u);
}

TEST_F(MessageQueueTest, QueueTtlAppliesToMessagesWithoutTheirOwn) {
  options_.message_ttl = 2s;
  Publish("default ttl");
  Publish("own ttl", 0, WithTtl(10s));
  clock_.Advance(2s);
  EXPECT_EQ(queue().Tick(clock_.Now()).dead.size(), 1u);
  EXPECT_EQ(Next(), "own ttl");
}

TEST_F(MessageQueueTest, InFlightMessagesDoNotExpireButAreDeadLetteredIfReturnedAfterTheirTtl) {
  Publish("slow", 0, WithTtl(5s));
  std::uint64_t tag = 0;
  ASSERT_EQ(Next(&tag), "slow");
  clock_.Advance(10s);
  EXPECT_TRUE(queue().Tick(clock_.Now()).dead.empty());  // the consumer may still ack it
  auto failed = queue().Fail(tag, FailureReason::kRejected, true, clock_.Now());
  ASSERT_TRUE(failed.dead.has_value());
  EXPECT_EQ(failed.dead->reason, DeadLetterReason::kExpired);
}

TEST_F(MessageQueueTest, AFullQueueRefusesPublishesAndKeepsWhatItHas) {
  options_.max_length = 2;
  Publish("1");
  Publish("2");
  auto refused = queue().Publish(Envelope::New("3"), {}, clock_.Now());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.error().message().find("full"), std::string::npos);
  EXPECT_EQ(queue().size(), 2u);
  EXPECT_EQ(queue().counters().refused_full, 1u);
  std::uint64_t tag = 0;
  ASSERT_EQ(Next(&tag), "1");
  EXPECT_FALSE(queue().Publish(Envelope::New("3"), {}, clock_.Now()).ok());  // in flight counts
  queue().Ack(tag);
  EXPECT_TRUE(queue().Publish(Envelope::New("3"), {}, clock_.Now()).ok());
}

TEST_F(MessageQueueTest, MaxBytesBoundsTheQueue) {
  options_.max_bytes = 10;
  Publish("12345");
  Publish("67890");
  EXPECT_FALSE(queue().Publish(Envelope::New("x"), {}, clock_.Now()).ok());
}

TEST_F(MessageQueueTest, ExtendMovesTheDeadline) {
  Publish("long job");
  std::uint64_t tag = 0;
  ASSERT_EQ(Next(&tag), "long job");
  clock_.Advance(25s);
  EXPECT_TRUE(queue().Extend(tag, clock_.Now() + 30s));
  clock_.Advance(10s);
  EXPECT_TRUE(queue().Tick(clock_.Now()).timed_out.empty());
  EXPECT_FALSE(queue().Extend(12345, clock_.Now()));
}

TEST_F(MessageQueueTest, PurgeRemovesReadyAndDelayedButNotInFlight) {
  Publish("a");
  Publish("b");
  Publish("later", 0, Delayed(1min));
  std::uint64_t tag = 0;
  ASSERT_EQ(Next(&tag), "a");
  EXPECT_EQ(queue().Purge().size(), 2u);
  EXPECT_EQ(queue().size(), 1u);
  EXPECT_TRUE(queue().Ack(tag));
  EXPECT_FALSE(queue().NextDeadline().has_value());
}

TEST_F(MessageQueueTest, TakeReadyTakesHighestPriorityFirstUpToALimit) {
  Publish("low", 1);
  Publish("high", 9);
  Publish("low 2", 1);
  auto taken = queue().TakeReady(2);
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0].second.body_view(), "high");
  EXPECT_EQ(taken[0].first, 2u);  // its number: published second
  EXPECT_EQ(taken[1].second.body_view(), "low");
  EXPECT_EQ(queue().ready(), 1u);
}

TEST_F(MessageQueueTest, NextDeadlineIsTheEarliestOfLeasesDelaysAndExpiries) {
  EXPECT_FALSE(queue().NextDeadline().has_value());
  Publish("expires", 0, WithTtl(50s));
  Publish("delayed", 0, Delayed(40s));
  EXPECT_EQ(queue().NextDeadline(), clock_.Now() + 40s);
  ASSERT_EQ(Next(), "expires");  // leased: its TTL no longer counts, its 30 s lease does
  EXPECT_EQ(queue().NextDeadline(), clock_.Now() + 30s);
}

TEST_F(MessageQueueTest, EveryFieldOfAStoredMessageComesBackAndABigBodyIsShared) {
  Envelope small = Envelope::New("small body");
  small.priority = 3;
  small.created_us = 1234567;
  small.seq = 42;
  small.stream = "orders-eu";
  small.headers = {{"trace", "abc"}, {"kind", "order"}};
  const MessageId small_id = small.id;
  EnqueueOptions reply;
  reply.reply_to = "peer-7";
  ASSERT_TRUE(queue().Publish(std::move(small), reply, clock_.Now()).ok());
  Envelope big = Envelope::New(std::string(100 * 1024, 'x'));
  const void* big_bytes = big.body.data();
  ASSERT_TRUE(queue().Publish(std::move(big), {}, clock_.Now()).ok());
  EXPECT_EQ(queue().bytes(), 10u + 9 + 6 + 5 + 3 + 4 + 5 + 100 * 1024);

  auto first = queue().LeaseNext(1, clock_.Now(), 30s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->envelope.id, small_id);
  EXPECT_EQ(first->envelope.body_view(), "small body");
  EXPECT_EQ(first->envelope.priority, 3);
  EXPECT_EQ(first->envelope.created_us, 1234567);
  EXPECT_EQ(first->envelope.seq, 42u);
  EXPECT_EQ(first->envelope.stream, "orders-eu");
  EXPECT_EQ(first->envelope.headers, (Headers{{"kind", "order"}, {"trace", "abc"}}));
  EXPECT_EQ(first->envelope.attempt, 1u);
  EXPECT_EQ(first->reply_to, "peer-7");
  auto second = queue().LeaseNext(2, clock_.Now(), 30s);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->envelope.body.size(), 100u * 1024);
  EXPECT_EQ(second->envelope.body.data(), big_bytes);  // the received bytes, not a copy
}

TEST_F(MessageQueueTest, MessagesRemovedFromTheMiddleOfTheLineAreSkipped) {
  for (const char* body : {"1", "2", "3", "4", "5"}) Publish(body);
  EXPECT_TRUE(queue().Remove(2));
  EXPECT_TRUE(queue().Settle(4));
  EXPECT_FALSE(queue().Remove(4));
  EXPECT_EQ(queue().ready(), 3u);
  std::vector<std::string> listed;
  for (const auto& view : queue().Contents()) listed.push_back(view.body);
  EXPECT_EQ(listed, (std::vector<std::string>{"1", "3", "5"}));
  EXPECT_EQ(queue().Contents(2).size(), 2u);
  EXPECT_EQ(Next(), "1");
  EXPECT_EQ(Next(), "3");
  EXPECT_EQ(Next(), "5");
  EXPECT_EQ(Next(), "");
  EXPECT_EQ(queue().ready(), 0u);
}

TEST_F(MessageQueueTest, ARestoredOlderNumberGoesAheadAndANumberInUseIsRefused) {
  for (std::uint64_t number : {10, 11, 12, 5}) {
    EnqueueOptions restore;
    restore.number = number;
    ASSERT_TRUE(queue().Publish(Envelope::New(Named(number)), restore, clock_.Now()).ok());
  }
  EnqueueOptions again;
  again.number = 11;
  EXPECT_FALSE(queue().Publish(Envelope::New("impostor"), again, clock_.Now()).ok());
  EXPECT_EQ(queue().size(), 4u);
  auto taken = queue().Take(5);
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->body_view(), "m5");
  again.number = 5;
  ASSERT_TRUE(queue().Publish(Envelope::New("m5"), again, clock_.Now()).ok());
  EXPECT_EQ(Next(), "m5");
  EXPECT_EQ(Next(), "m10");
  EXPECT_EQ(Next(), "m11");
  EXPECT_EQ(Next(), "m12");
  EXPECT_EQ(queue().next_number(), 13u);
}

// A restore after a long gap (one old message kept, the next one millions of numbers later) must
// not turn the gap into storage.
TEST_F(MessageQueueTest, ARestoreFarPastTheRestCostsNoStorageForTheGap) {
  for (std::uint64_t number : {7, 9'000'000, 9'000'001}) {
    EnqueueOptions restore;
    restore.number = number;
    ASSERT_TRUE(queue().Publish(Envelope::New(Named(number)), restore, clock_.Now()).ok());
  }
  EXPECT_LT(queue().storage().index_slots, 10u);
  EXPECT_EQ(Next(), "m7");
  EXPECT_EQ(Next(), "m9000000");
  EXPECT_EQ(Next(), "m9000001");
  EXPECT_TRUE(queue().Take(7));
  EXPECT_EQ(queue().size(), 2u);
}

// A message that stays (a stuck lease, a long delay) must not make every message that passes it
// cost memory: the storage stays proportional to what the queue holds.
TEST_F(MessageQueueTest, AMessageThatStaysDoesNotMakeThePassingOnesCostStorage) {
  Publish("stuck");
  std::uint64_t stuck_tag = 0;
  ASSERT_EQ(Next(&stuck_tag), "stuck");
  Publish("later", 0, Delayed(1h));
  constexpr int kPassing = 50'000;
  for (int i = 0; i < kPassing; ++i) {
    Publish("passing");
    std::uint64_t tag = 0;
    ASSERT_EQ(Next(&tag), "passing");
    ASSERT_TRUE(queue().Ack(tag));
  }
  const auto storage = queue().storage();
  EXPECT_LT(storage.index_slots, 5'000u);
  EXPECT_EQ(storage.outliers, 2u);
  EXPECT_LE(storage.records, 16u);
  EXPECT_EQ(queue().size(), 2u);
  // Both are still found by number and tag.
  auto contents = queue().Contents();
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(contents[0].body, "later");
  EXPECT_EQ(contents[1].body, "stuck");
  EXPECT_TRUE(queue().Ack(stuck_tag));
  clock_.Advance(1h);
  queue().Tick(clock_.Now());
  EXPECT_EQ(Next(), "later");
}

TEST_F(MessageQueueTest, AnEmptiedDeepQueueGivesItsStorageBack) {
  constexpr int kDeep = 20'000;
  for (int i = 0; i < kDeep; ++i) Publish("m");
  // Untouched messages are packed: no record each, and about their size in chunks.
  EXPECT_EQ(queue().storage().records, 0u);
  EXPECT_GE(queue().storage().packed_bytes, static_cast<std::size_t>(kDeep) * 2);
  // Leased, each has a record until it is acked.
  std::vector<std::uint64_t> tags(kDeep);
  for (auto& tag : tags) ASSERT_EQ(Next(&tag), "m");
  EXPECT_EQ(queue().storage().packed_bytes, 0u);
  EXPECT_GE(queue().storage().records, static_cast<std::size_t>(kDeep));
  for (std::uint64_t tag : tags) ASSERT_TRUE(queue().Ack(tag));
  EXPECT_EQ(queue().size(), 0u);
  EXPECT_EQ(queue().storage().records, 0u);
  EXPECT_EQ(queue().storage().index_slots, 0u);
  Publish("again");
  EXPECT_EQ(Next(), "again");
}

// A compaction writes every message by number, whether packed (untouched) or with a record
// (leased, delayed), in every priority, and packed ones keep their fields.
TEST_F(MessageQueueTest, TheSnapshotVisitsPackedAndOtherMessagesByNumber) {
  Publish("p1");
  Publish("p2", 5);
  Publish("leased");
  Publish("delayed", 0, Delayed(1min));
  Publish("p5", 5);
  EnqueueOptions with_reply;
  with_reply.reply_to = "client-7";
  Publish("p6", 0, with_reply);
  ASSERT_EQ(Next(), "p2");  // priority 5 first: number 2 now has a record
  std::vector<std::uint64_t> numbers;
  std::vector<std::string> bodies;
  std::string reply_of_6;
  queue().VisitSnapshot([&](const MessageQueue::SnapshotEntry& entry) {
    numbers.push_back(entry.number);
    bodies.emplace_back(entry.envelope.body_view());
    if (entry.number == 6) reply_of_6 = entry.reply_to;
    if (entry.number == 5) {
      EXPECT_EQ(entry.envelope.priority, 5);
    }
    if (entry.number == 4) {
      EXPECT_TRUE(entry.due);
    }
  });
  EXPECT_EQ(numbers, (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(bodies, (std::vector<std::string>{"p1", "p2", "leased", "delayed", "p5", "p6"}));
  EXPECT_EQ(reply_of_6, "client-7");
}

// A message taken out of a packed log by number (an operator's remove, journal replay naming it)
// keeps its place in the ready order, and the rest of the log is untouched.
TEST_F(MessageQueueTest, MessagesNamedByNumberKeepTheirPlaceInTheReadyOrder) {
  for (int i = 1; i <= 6; ++i) Publish(Named(i));
  ASSERT_TRUE(queue().RestoreFailure(3, 1, FailureReason::kTimedOut));  // unpacked, still third
  ASSERT_TRUE(queue().Remove(2));
  ASSERT_TRUE(queue().Settle(5));
  EXPECT_FALSE(queue().Remove(5));
  EXPECT_EQ(queue().size(), 4u);
  EXPECT_EQ(queue().bytes(), 8u);
  std::vector<std::uint64_t> numbers;
  for (const auto& view : queue().Contents()) numbers.push_back(view.number);
  EXPECT_EQ(numbers, (std::vector<std::uint64_t>{1, 3, 4, 6}));
  EXPECT_EQ(Next(), "m1");
  EXPECT_EQ(Next(), "m3");
  EXPECT_EQ(last_attempt_, 2u);
  EXPECT_EQ(Next(), "m4");
  EXPECT_EQ(Next(), "m6");
}

}  // namespace
}  // namespace zmqkit::internal
