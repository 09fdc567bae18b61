#include "broker/core/broker_core.h"
#include "broker/core/core_driver.h"
#include "broker/core/journal_records.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>

namespace zmqkit::internal {
namespace {

using namespace std::chrono_literals;
class BrokerCoreTest : public ::testing::Test, public CoreDriver {};

TEST_F(BrokerCoreTest, PublishesAreConfirmedInOneBatchAtQueuedLevel) {
  Publish("producer", 1, "work", "a");
  Publish("producer", 2, "work", "b");
  Publish("producer", 3, "work", "c");
  auto out = Take();
  auto confirms = Of(out, "producer", p::kConfirm);
  ASSERT_EQ(confirms.size(), 1u);
  EXPECT_EQ(*confirms[0].args->Uint("upto"), 3u);
  EXPECT_EQ(*confirms[0].args->Str("level"), "queued");
  ASSERT_NE(core().FindQueue("work"), nullptr);
  EXPECT_EQ(core().FindQueue("work")->ready(), 3u);
}

// A client learns the broker's instance at once from its first message, and again with every
// heartbeat; another broker (a restart) has another instance. That is how a client notices it must
// consume again.
TEST_F(BrokerCoreTest, ANewSessionIsGreetedWithAHeartbeatNamingTheBrokerInstance) {
  Client("c", p::kHeartbeat, p::NoArgs());
  auto greeting = Of(Take(), "c", p::kHeartbeat);
  ASSERT_EQ(greeting.size(), 1u);
  const std::string instance = *greeting[0].args->Str("instance");
  EXPECT_FALSE(instance.empty());
  Client("c", p::kHeartbeat, p::NoArgs());
  EXPECT_TRUE(Of(Take(), "c", p::kHeartbeat).empty()) << "only a new session is greeted";
  Advance(1100ms);
  Client("c", p::kHeartbeat, p::NoArgs());
  Advance(300ms);
  auto periodic = Of(Take(), "c", p::kHeartbeat);
  ASSERT_FALSE(periodic.empty());
  EXPECT_EQ(*periodic.back().args->Str("instance"), instance);

  BrokerCore restarted(CoreOptions{});
  std::vector<zmq::message_t> frames = p::Frames(p::kHeartbeat, p::NoArgs());
  restarted.OnClientMessage("c", frames, TimePoint{});
  ASSERT_FALSE(restarted.outbox().empty());
  const zmq::message_t& args_frame = restarted.outbox().front().frames.at(2);
  auto args = p::Args::Parse(std::string_view(args_frame.data<char>(), args_frame.size()));
  ASSERT_TRUE(args.ok());
  EXPECT_NE(*args->Str("instance"), instance);
}

// Publishes written into a connection that died never reach the next session, and a client cannot
// tell on its own. Its heartbeat says how far its publishes go; a session that received none of
// them answers with a CONFIRM naming them lost ("from" past them) and confirming none.
// What the core would take from the machine can be given: a replica or a test fixes the instance
// it announces, the epoch its tags carry and the wall clock its journal records are written with.
TEST_F(BrokerCoreTest, TheInstanceTheTagEpochAndTheWallClockAreWhatTheCoreIsGiven) {
  environment_.instance = "replica-7";
  environment_.tag_epoch = 42;
  environment_.wall_clock = [] { return std::int64_t{1'800'000'000'000'000}; };
  RecordingJournal journal;
  core().set_journal(&journal);
  Client("c", p::kHeartbeat, p::NoArgs());
  EXPECT_EQ(*Of(Take(), "c", p::kHeartbeat).at(0).args->Str("instance"), "replica-7");
  Consume("c", "q", 1);
  Publish("p", 1, "q", "x");
  auto delivered = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(Tag(delivered[0]) >> 32, 42u);
  bool published = false;
  for (const std::string& bytes : journal.records) {
    auto record = records::Decode(bytes);
    if (record.ok() && record->op == records::Op::kPublish) {
      published = true;
      EXPECT_EQ(record->at_unix_us, 1'800'000'000'000'000);
    }
  }
  EXPECT_TRUE(published);
}

// The core's options repeat the public ones the loop hands over: the defaults must be the same,
// or a core in a test would run under other rules than a broker does.
TEST(CoreOptionsTest, TheDefaultsAreTheBrokersAndEveryRuleIsHandedOver) {
  EXPECT_TRUE(CoreOptionsFrom(BrokerOptions{}) == CoreOptions{});
  BrokerOptions changed;
  changed.max_frames = 9;
  changed.queue_defaults.max_attempts = 2;
  changed.admin_keys = {"key"};
  CoreOptions expected;
  expected.max_frames = 9;
  expected.queue_defaults.max_attempts = 2;
  expected.admin_keys = {"key"};
  EXPECT_TRUE(CoreOptionsFrom(changed) == expected);
}

TEST_F(BrokerCoreTest, AHeartbeatNamingPublishesThisSessionNeverSawGetsThemReportedLost) {
  Client("c", p::kHeartbeat, p::ArgsWriter(1).Uint("published", 7).Finish());
  auto confirms = Of(Take(), "c", p::kConfirm);
  ASSERT_EQ(confirms.size(), 1u);
  EXPECT_EQ(*confirms[0].args->Uint("from"), 8u);
  EXPECT_EQ(*confirms[0].args->Uint("upto"), 7u);
  // Later publishes are confirmed against the same "from".
  Publish("c", 8, "work", "a");
  confirms = Of(Take(), "c", p::kConfirm);
  ASSERT_EQ(confirms.size(), 1u);
  EXPECT_EQ(*confirms[0].args->Uint("from"), 8u);
  EXPECT_EQ(*confirms[0].args->Uint("upto"), 8u);

  // A session that has received publishes learns nothing from the count (FIFO: it has them all),
  // and a client that has published nothing says nothing.
  Publish("d", 1, "work", "b");
  (void)Take();
  Client("d", p::kHeartbeat, p::ArgsWriter(1).Uint("published", 1).Finish());
  Client("e", p::kHeartbeat, p::NoArgs());
  auto out = Take();
  EXPECT_TRUE(Of(out, "d", p::kConfirm).empty());
  EXPECT_TRUE(Of(out, "e", p::kConfirm).empty());
}

// With admin keys set, the client's key (the ZAP User-Id libzmq attaches to its frames) decides
// whether it may administer; publishing, consuming and settling stay open to every allowed key.
TEST_F(BrokerCoreTest, OnlyAdminKeysMayAdministerWhenAdminKeysAreSet) {
  options_.admin_keys = {"admin-key"};
  std::string sender = "user-key";
  core().set_peer_identity([&](const zmq::message_t&) { return sender; });
  Publish("user", 1, "work", "a");
  EXPECT_EQ(Of(Take(), "user", p::kConfirm).size(), 1u);
  Client("user", p::kPurge, p::ArgsWriter(2).Uint("rid", 7).Str("queue", "work").Finish());
  auto refused = Of(Take(), "user", p::kError);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(*refused[0].args->Str("code"), "forbidden");
  EXPECT_EQ(*refused[0].args->Uint("rid"), 7u) << "the waiting call gets the answer";
  EXPECT_EQ(core().FindQueue("work")->ready(), 1u);
  EXPECT_EQ(core().counters().forbidden, 1u);
  Consume("user", "work", 1);
  EXPECT_EQ(Of(Take(), "user", p::kDeliver).size(), 1u);

  sender = "admin-key";
  Client("admin", p::kStats, p::ArgsWriter(1).Uint("rid", 8).Finish());
  EXPECT_EQ(Of(Take(), "admin", p::kOk).size(), 1u);
  EXPECT_EQ(core().counters().forbidden, 1u);
}

TEST_F(BrokerCoreTest, MessagesWaitForAConsumerThatStartsLater) {
  for (int i = 0; i < 5; ++i) Publish("producer", i + 1, "orders", "order " + std::to_string(i));
  Client("producer", p::kBye, p::NoArgs());  // the producer is gone
  Take();
  Advance(1h);
  Consume("rider", "orders", 10);
  auto delivered = Of(Take(), "rider", p::kDeliver);
  ASSERT_EQ(delivered.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Body(delivered[i]), "order " + std::to_string(i));
  EXPECT_EQ(*delivered[0].args->Str("queue"), "orders");
  EXPECT_EQ(*delivered[0].args->Str("consumer"), "c");
}

TEST_F(BrokerCoreTest, NegativeConfirmsCarryAReason) {
  options_.max_message_bytes = 100;
  options_.queue_defaults.max_length = 1;
  Publish("p", 1, "q", "fits");
  Publish("p", 2, "q", "queue is full now");
  Publish("p", 3, "q", std::string(200, 'x'));
  Publish("p", 4, "nowhere", "x", "no-such-exchange");
  Publish("p", 5, "bad name!", "x");
  std::vector<zmq::message_t> bad_header;
  bad_header.emplace_back(std::string_view("\xc1"));
  bad_header.emplace_back(std::string_view("x"));
  Client("p", p::kPublish, p::ArgsWriter(2).Uint("seq", 6).Str("key", "q").Finish(),
         std::move(bad_header));
  auto out = Take();
  std::map<std::uint64_t, std::string> codes;
  for (const Out& rejected : Of(out, "p", p::kRejected)) {
    codes[*rejected.args->Uint("seq")] = *rejected.args->Str("code");
  }
  EXPECT_EQ(codes, (std::map<std::uint64_t, std::string>{{2, "queue-full"},
                                                          {3, "message-too-large"},
                                                          {4, "not-found"},
                                                          {5, "invalid-argument"},
                                                          {6, "malformed"}}));
  auto confirms = Of(out, "p", p::kConfirm);
  ASSERT_EQ(confirms.size(), 1u);
  EXPECT_EQ(*confirms[0].args->Uint("upto"), 1u);  // only seq 1 was accepted
  EXPECT_EQ(core().counters().refused, 5u);
}

// A packed PUBLISH ("count" n, n [header][body] pairs) is n publishes with consecutive seqs: each is
// admitted or refused on its own, and one CONFIRM covers the accepted ones.
TEST_F(BrokerCoreTest, APackedPublishIsThatManyPublishesEachAdmittedOnItsOwn) {
  options_.max_message_bytes = 100;
  std::vector<zmq::message_t> payload;
  auto add = [&](std::string_view header_body_of) {
    std::string header;
    EncodeHeader(Envelope::New(header_body_of), header);
    payload.emplace_back(header.data(), header.size());
    payload.emplace_back(header_body_of.data(), header_body_of.size());
  };
  add("first");
  add(std::string(200, 'x'));  // seq 11: over max_message_bytes
  payload.emplace_back(std::string_view("\xc1"));  // seq 12: not an envelope
  payload.emplace_back(std::string_view("body"));
  add("fourth");
  Client("p", p::kPublish,
         p::ArgsWriter(3).Uint("seq", 10).Uint("count", 4).Str("key", "q").Finish(),
         std::move(payload));
  auto out = Take();
  std::map<std::uint64_t, std::string> codes;
  for (const Out& rejected : Of(out, "p", p::kRejected)) {
    codes[*rejected.args->Uint("seq")] = *rejected.args->Str("code");
  }
  EXPECT_EQ(codes, (std::map<std::uint64_t, std::string>{{11, "message-too-large"}, {12, "malformed"}}));
  auto confirms = Of(out, "p", p::kConfirm);
  ASSERT_EQ(confirms.size(), 1u);
  EXPECT_EQ(*confirms[0].args->Uint("from"), 10u);
  EXPECT_EQ(*confirms[0].args->Uint("upto"), 13u);
  EXPECT_EQ(core().FindQueue("q")->ready(), 2u);

  Consume("c", "q", 10);
  auto delivered = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_EQ(Body(delivered[0]), "first");
  EXPECT_EQ(Body(delivered[1]), "fourth");
}

// A packed PUBLISH carries each message in one frame, [header+body], n frames for n messages. Each
// is admitted or refused as in the [header][body] form, and what is delivered is what was written.
TEST_F(BrokerCoreTest, APublishCarriesPackedMessagesOneFrameEach) {
  options_.max_message_bytes = 100;
  options_.max_header_bytes = 60;
  std::string scratch;
  Envelope first = Envelope::New("first");
  first.priority = 2;
  first.headers["region"] = "eu";
  Envelope huge = Envelope::New(std::string(200, 'x'));  // seq 11: over max_message_bytes
  Envelope long_header = Envelope::New("h");              // seq 12: header over max_header_bytes
  long_header.headers["k"] = std::string(50, 'v');
  std::vector<zmq::message_t> payload;
  payload.push_back(EncodePacked(first, scratch));
  payload.push_back(EncodePacked(huge, scratch));
  payload.push_back(EncodePacked(long_header, scratch));
  payload.emplace_back(std::string_view("\xc1" "body"));  // seq 13: no header at all
  payload.push_back(EncodePacked(Envelope::New(""), scratch));  // seq 14: an empty body
  Client("p", p::kPublish,
         p::ArgsWriter(3).Uint("seq", 10).Uint("count", 5).Str("key", "q").Finish(),
         std::move(payload));
  auto out = Take();
  std::map<std::uint64_t, std::string> codes;
  for (const Out& rejected : Of(out, "p", p::kRejected)) {
    codes[*rejected.args->Uint("seq")] =
        *rejected.args->Str("code") + "/" + *rejected.args->Str("limit", "");
  }
  EXPECT_EQ(codes, (std::map<std::uint64_t, std::string>{{11, "message-too-large/max-message-bytes"},
                                                        {12, "limit-reached/max-header-bytes"},
                                                        {13, "malformed/"}}));
  auto confirms = Of(out, "p", p::kConfirm);
  ASSERT_EQ(confirms.size(), 1u);
  EXPECT_EQ(*confirms[0].args->Uint("upto"), 14u);
  // A single message packed: count 1 (the default), one frame.
  std::vector<zmq::message_t> single;
  single.push_back(EncodePacked(Envelope::New("alone"), scratch));
  Client("p", p::kPublish, p::ArgsWriter(2).Uint("seq", 15).Str("key", "q").Finish(),
         std::move(single));
  EXPECT_EQ(*Of(Take(), "p", p::kConfirm).at(0).args->Uint("upto"), 15u);
  ASSERT_EQ(core().FindQueue("q")->ready(), 3u);

  Consume("c", "q", 10);
  auto delivered = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(delivered.size(), 3u);
  auto decoded = Decoded(delivered[0]);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->id, first.id);
  EXPECT_EQ(decoded->priority, 2);
  EXPECT_EQ(decoded->headers, first.headers);
  EXPECT_EQ(decoded->body_view(), "first");
  EXPECT_EQ(Body(delivered[1]), "");
  EXPECT_EQ(Body(delivered[2]), "alone");
}

// A count that does not match the frames is malformed: every seq it claims is refused (so the client
// waits for none of them), but never more than a message within max_frames could hold.
TEST_F(BrokerCoreTest, APackedPublishWhoseCountDoesNotMatchItsFramesIsRefusedWhole) {
  std::string header;
  EncodeHeader(Envelope::New("x"), header);
  std::vector<zmq::message_t> payload;
  payload.emplace_back(header.data(), header.size());
  payload.emplace_back(std::string_view("x"));
  Client("p", p::kPublish, p::ArgsWriter(3).Uint("seq", 1).Uint("count", 3).Str("key", "q").Finish(),
         std::move(payload));
  std::set<std::uint64_t> refused;
  for (const Out& rejected : Of(Take(), "p", p::kRejected)) {
    EXPECT_EQ(*rejected.args->Str("code"), "malformed");
    refused.insert(*rejected.args->Uint("seq"));
  }
  EXPECT_EQ(refused, (std::set<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(core().FindQueue("q"), nullptr) << "nothing of it was queued";

  // Three frames for two messages: neither two packed nor two [header][body].
  std::string scratch;
  std::vector<zmq::message_t> mixed;
  mixed.push_back(EncodePacked(Envelope::New("packed"), scratch));
  mixed.emplace_back(header.data(), header.size());
  mixed.emplace_back(std::string_view("x"));
  Client("p", p::kPublish, p::ArgsWriter(3).Uint("seq", 4).Uint("count", 2).Str("key", "q").Finish(),
         std::move(mixed));
  refused.clear();
  for (const Out& rejected : Of(Take(), "p", p::kRejected)) refused.insert(*rejected.args->Uint("seq"));
  EXPECT_EQ(refused, (std::set<std::uint64_t>{4, 5}));
  EXPECT_EQ(core().FindQueue("q"), nullptr) << "a PUBLISH does not mix the forms";

  std::vector<zmq::message_t> one;
  one.emplace_back(header.data(), header.size());
  one.emplace_back(std::string_view("x"));
  Client("p", p::kPublish,
         p::ArgsWriter(3).Uint("seq", 6).Uint("count", std::uint64_t{1} << 60).Str("key", "q").Finish(),
         std::move(one));
  EXPECT_EQ(Of(Take(), "p", p::kRejected).size(), options_.max_frames)
      << "a count no message could carry is not believed";
}

// The greeting says how many messages one PUBLISH may carry under this broker's max_frames.
TEST_F(BrokerCoreTest, TheGreetingSaysHowManyMessagesAPublishMayCarry) {
  options_.max_frames = 25;
  Client("c", p::kHeartbeat, p::NoArgs());
  auto greeting = Of(Take(), "c", p::kHeartbeat);
  ASSERT_EQ(greeting.size(), 1u);
  EXPECT_EQ(*greeting[0].args->Uint("max_publish_batch"), 11u) << "3 + 2 * 11 frames <= 25";
  EXPECT_TRUE(*greeting[0].args->Bool("packed_publish", false))
      << "and that it reads [header+body] publishes";
  EXPECT_TRUE(*greeting[0].args->Bool("idempotent", false));
  EXPECT_EQ(*greeting[0].args->Uint("heartbeat_ms", 0), 1000u) << "how often a client must speak";
  EXPECT_EQ(*greeting[0].args->Uint("liveness", 0), 3u);
}

TEST_F(BrokerCoreTest, PrefetchBoundsWhatAConsumerHolds) {
  for (int i = 0; i < 5; ++i) Publish("p", i + 1, "q", std::to_string(i));
  Consume("c", "q", 2);
  auto first = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(first.size(), 2u);
  Ack("c", Tag(first[0]));
  auto second = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(Body(second[0]), "2");
}

// A consumer that asks for batches gets what one batch of input made ready in few DELIVERs: at most
// `batch` envelopes each, never past its credit, tags in the order of the envelopes.
TEST_F(BrokerCoreTest, AConsumerThatAsksForBatchesGetsThemWithinItsCredit) {
  auto body = [](int i) {  // append: g++ 12 warns wrongly (-Wrestrict) on "m" + to_string
    std::string text = "m";
    text += std::to_string(i);
    return text;
  };
  Client("c", p::kConsume,
         p::ArgsWriter(5).Uint("rid", 1).Str("queue", "q").Str("consumer", "c")
             .Uint("prefetch", 12).Uint("batch", 10).Finish());
  for (int i = 0; i < 25; ++i) Publish("p", i + 1, "q", body(i));
  auto first = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(first.size(), 2u) << "12 of credit: a batch of 10, then one of 2";
  std::vector<std::uint64_t> held;
  int next_body = 0;
  for (const Out& deliver : first) {
    EXPECT_FALSE(deliver.args->Has("tag"));
    auto tags = deliver.args->UintList("tags");
    ASSERT_TRUE(tags.ok());
    ASSERT_EQ(deliver.frames.size(), 2 * tags->size());
    for (std::size_t i = 0; i < tags->size(); ++i) {
      EXPECT_EQ(deliver.frames[2 * i + 1], body(next_body++));
      held.push_back((*tags)[i]);
    }
  }
  EXPECT_EQ(held.size(), 12u);
  EXPECT_EQ(std::set<std::uint64_t>(held.begin(), held.end()).size(), 12u) << "tags are unique";
  EXPECT_EQ(*first[0].args->Str("consumer"), "c");
  EXPECT_EQ(*first[0].args->Str("queue"), "q");

  // Settling frees 12 of credit again: 10 + 2 more, from where the first ones stopped; the last
  // of the 25 waits for credit.
  Client("c", p::kAck, p::ArgsWriter(1).UintList("tags", held).Finish());
  auto second = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].frames.size(), 20u);
  EXPECT_EQ(second[1].frames.size(), 4u);
  EXPECT_EQ(second[0].frames[1], "m12");
  EXPECT_EQ(second[1].frames[3], "m23");
  EXPECT_EQ(core().FindQueue("q")->ready(), 1u);
}

// One message is sent in the single form ("tag"), which every client reads, even to a consumer
// that asked for batches; one that did not ask gets one message per DELIVER however many wait.
TEST_F(BrokerCoreTest, BatchesAreOnlyForConsumersThatAskAndOneMessageTravelsAlone) {
  Client("b", p::kConsume,
         p::ArgsWriter(5).Uint("rid", 1).Str("queue", "one").Str("consumer", "b")
             .Uint("prefetch", 100).Uint("batch", 50).Finish());
  Publish("p", 1, "one", "alone");
  auto single = Of(Take(), "b", p::kDeliver);
  ASSERT_EQ(single.size(), 1u);
  EXPECT_TRUE(single[0].args->Has("tag"));
  EXPECT_FALSE(single[0].args->Has("tags"));
  EXPECT_EQ(Body(single[0]), "alone");

  Consume("c", "many", 100);
  for (int i = 0; i < 5; ++i) Publish("p", i + 2, "many", std::to_string(i));
  auto plain = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(plain.size(), 5u);
  for (const Out& deliver : plain) EXPECT_EQ(deliver.frames.size(), 2u);

  Client("z", p::kConsume,
         p::ArgsWriter(5).Uint("rid", 2).Str("queue", "q").Str("consumer", "z")
             .Uint("prefetch", 10).Uint("batch", 0).Finish());
  auto refused = Of(Take(), "z", p::kError);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(*refused[0].args->Str("code"), p::kErrInvalidArgument);
}

// Big messages are not piled into one DELIVER: packing stops once the bodies reach 1 MiB.
TEST_F(BrokerCoreTest, APackedDeliverStopsGrowingAtOneMebibyteOfBodies) {
  Client("c", p::kConsume,
         p::ArgsWriter(5).Uint("rid", 1).Str("queue", "big").Str("consumer", "c")
             .Uint("prefetch", 10).Uint("batch", 10).Finish());
  const std::string body(600 * 1024, 'b');
  for (int i = 0; i < 3; ++i) Publish("p", i + 1, "big", body);
  auto delivered = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_EQ(delivered[0].frames.size(), 4u) << "600 KiB, then 1.2 MiB: full";
  EXPECT_EQ(delivered[1].frames.size(), 2u);
}

// Deliveries go to the consumer that has waited longest for work, not blindly in turn.
TEST_F(BrokerCoreTest, DispatchIsLeastRecentlyUsedNotRoundRobin) {
  Consume("a", "q", 1);
  Consume("b", "q", 1);
  Publish("p", 1, "q", "m1");
  Publish("p", 2, "q", "m2");
  auto out = Take();
  auto to_a = Of(out, "a", p::kDeliver);
  auto to_b = Of(out, "b", p::kDeliver);
  ASSERT_EQ(to_a.size(), 1u);
  ASSERT_EQ(to_b.size(), 1u);
  Ack("b", Tag(to_b[0]));  // b is free first...
  Advance(10ms);
  Ack("a", Tag(to_a[0]));  // ...then a
  Take();
  Publish("p", 3, "q", "m3");
  auto next = Take();
  ASSERT_EQ(Of(next, "b", p::kDeliver).size(), 1u);  // round robin would pick a here
  EXPECT_EQ(Of(next, "a", p::kDeliver).size(), 0u);
}

TEST_F(BrokerCoreTest, AStalledDeliveryIsRedeliveredAfterTheAckTimeoutAndTheLateAckRefused) {
  options_.liveness = 1000;  // about ack timeouts, not silence
  Consume("stalled", "q", 1);
  Publish("p", 1, "q", "job");
  auto first = Of(Take(), "stalled", p::kDeliver);
  ASSERT_EQ(first.size(), 1u);
  Consume("healthy", "q", 1);
  Take();
  Advance(10s);
  auto out = Take();
  ASSERT_EQ(Of(out, "healthy", p::kDeliver).size(), 1u);
  EXPECT_EQ(Header(Of(out, "healthy", p::kDeliver)[0], "x") , "");
  Ack("stalled", Tag(first[0]));
  auto errors = Of(Take(), "stalled", p::kError);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(*errors[0].args->Str("code"), "unknown-delivery-tag");
  EXPECT_EQ(core().counters().deliveries_taken_back, 1u);
}

TEST_F(BrokerCoreTest, PerConsumerAckTimeoutAndExtend) {
  options_.liveness = 1000;
  Client("c", p::kConsume,
         p::ArgsWriter(4).Str("queue", "q").Str("consumer", "c").Uint("prefetch", 1)
             .Uint("ack_timeout_ms", 2000).Finish());
  Publish("p", 1, "q", "job");
  auto delivered = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(delivered.size(), 1u);
  Advance(1500ms);
  Client("c", p::kExtend, p::ArgsWriter(2).UintList("tags", {Tag(delivered[0])}).Uint("ms", 2000).Finish());
  Advance(1500ms);  // 3 s after delivery: past the 2 s timeout, not past the extension
  EXPECT_EQ(core().counters().deliveries_taken_back, 0u);
  Advance(500ms);   // 2 s after the extension
  EXPECT_EQ(core().counters().deliveries_taken_back, 1u);
}

// An EXTEND naming another broker instance carries tags of a run before a restart: ignored,
// without an error and without extending anything; one naming this instance counts.
TEST_F(BrokerCoreTest, AnExtendNamingAnotherInstanceIsIgnored) {
  options_.liveness = 1000;
  Client("c", p::kConsume,
         p::ArgsWriter(4).Str("queue", "q").Str("consumer", "c").Uint("prefetch", 1)
             .Uint("ack_timeout_ms", 2000).Finish());
  Publish("p", 1, "q", "job");
  auto out = Take();
  auto delivered = Of(out, "c", p::kDeliver);
  ASSERT_EQ(delivered.size(), 1u);
  const std::string instance = *Of(out, "c", p::kHeartbeat).at(0).args->Str("instance");
  const std::uint64_t tag = Tag(delivered[0]);
  Client("c", p::kExtend,
         p::ArgsWriter(3).UintList("tags", {tag}).Uint("ms", 60000).Str("instance", "not-this-one").Finish());
  EXPECT_TRUE(Of(Take(), "c", p::kError).empty());
  EXPECT_EQ(core().counters().unknown_tags, 0u);
  Advance(2000ms);
  EXPECT_EQ(core().counters().deliveries_taken_back, 1u) << "the void EXTEND extended nothing";
  auto again = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(again.size(), 1u);
  Client("c", p::kExtend,
         p::ArgsWriter(3).UintList("tags", {Tag(again[0])}).Uint("ms", 60000).Str("instance", instance).Finish());
  Advance(2000ms);
  EXPECT_EQ(core().counters().deliveries_taken_back, 1u) << "this instance's EXTEND counts";
}

// A delivery the consumer's connection would not take never left: it goes, unchanged, to a consumer
// that can take it, and the full one is passed over for a moment, then tried again.
TEST_F(BrokerCoreTest, ADeliveryAConnectionRefusedGoesElsewhereAsIfNeverGiven) {
  options_.liveness = 1000;
  Consume("full", "q", 10);
  Consume("free", "q", 10);
  Take();
  Publish("p", 1, "q", "job");
  auto out = Take();
  ASSERT_EQ(Of(out, "full", p::kDeliver).size(), 1u) << "the longest-waiting consumer first";
  const std::uint64_t tag = Tag(Of(out, "full", p::kDeliver)[0]);
  core().OnDeliveryRefused(Side::kClients, "full", std::vector<std::uint64_t>{tag}, clock_.Now());
  out = Take();
  auto elsewhere = Of(out, "free", p::kDeliver);
  ASSERT_EQ(elsewhere.size(), 1u);
  EXPECT_EQ(Body(elsewhere[0]), "job");
  EXPECT_EQ(Decoded(elsewhere[0])->attempt, 1u) << "a delivery that never left is no attempt";
  EXPECT_EQ(core().counters().deliveries_withheld, 1u);
  Ack("full", tag);
  EXPECT_EQ(Of(Take(), "full", p::kError).size(), 1u) << "the refused tag is no longer held";
  Publish("p", 2, "q", "second");
  EXPECT_TRUE(Of(Take(), "full", p::kDeliver).empty()) << "paused";
  Advance(20ms);
  Publish("p", 3, "q", "third");
  Publish("p", 4, "q", "fourth");
  // Back in line (behind "free", which waited longer): one of the two.
  EXPECT_EQ(Of(Take(), "full", p::kDeliver).size(), 1u) << "tried again after the pause";
}

// Among thousands of idle queues, time still comes due exactly where it should: a delay, a TTL, a
// lease and an extension that shortens one, each on its own queue.
TEST_F(BrokerCoreTest, DeadlinesComeDueOnTheirOwnQueueAmongThousandsOfIdleOnes) {
  options_.liveness = 1000;
  for (int i = 0; i < 2000; ++i) {
    Client("admin", p::kDeclareQueue, p::ArgsWriter(1).Str("name", "idle-" + std::to_string(i)).Finish());
  }
  Take();
  // A delayed message on one queue.
  std::string header;
  EncodeHeader(Envelope::New("later"), header);
  std::vector<zmq::message_t> payload;
  payload.emplace_back(header.data(), header.size());
  payload.emplace_back(std::string_view("later"));
  Client("p", p::kPublish,
         p::ArgsWriter(3).Uint("seq", 1).Str("key", "idle-1234").Uint("delay_ms", 5000).Finish(),
         std::move(payload));
  Take();
  // A lease on another, with a 2 s timeout, extended to 500 ms: the earlier time counts.
  Client("c", p::kConsume, p::ArgsWriter(4).Str("queue", "idle-77").Str("consumer", "c")
                               .Uint("prefetch", 1).Uint("ack_timeout_ms", 2000).Finish());
  Publish("p", 2, "idle-77", "job");
  auto delivered = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(delivered.size(), 1u);
  Client("c", p::kExtend, p::ArgsWriter(2).UintList("tags", {Tag(delivered[0])}).Uint("ms", 500).Finish());
  Advance(499ms);
  EXPECT_EQ(core().counters().deliveries_taken_back, 0u);
  Advance(1ms);
  EXPECT_EQ(core().counters().deliveries_taken_back, 1u) << "the shortened lease ran out on time";
  Take();
  Consume("d", "idle-1234", 1);
  Take();
  Advance(4499ms);
  EXPECT_TRUE(Of(Take(), "d", p::kDeliver).empty());
  Advance(1ms);
  EXPECT_EQ(Of(Take(), "d", p::kDeliver).size(), 1u) << "the delay ended on time";
}

TEST_F(BrokerCoreTest, ASilentConsumerLosesEverythingItHeldAtOnce) {
  Consume("doomed", "q", 5);
  for (int i = 0; i < 3; ++i) Publish("p", i + 1, "q", std::to_string(i));
  ASSERT_EQ(Of(Take(), "doomed", p::kDeliver).size(), 3u);
  Consume("survivor", "q", 5);
  // The survivor keeps talking; the doomed one says nothing for 3 heartbeat intervals.
  for (int i = 0; i < 12; ++i) {
    Advance(250ms);
    Client("survivor", p::kHeartbeat, p::NoArgs());
  }
  auto out = Take();
  auto redelivered = Of(out, "survivor", p::kDeliver);
  ASSERT_EQ(redelivered.size(), 3u);
  EXPECT_EQ(Body(redelivered[0]), "0");  // in their original order
  EXPECT_EQ(Body(redelivered[2]), "2");
  EXPECT_EQ(core().counters().peers_expired, 2u);  // the doomed consumer and the silent producer
  EXPECT_EQ(core().sessions(), 1u);
}

// What a consumer holds is tracked without a node per delivery: settled tags are dropped in bulk
// later. Whatever that bookkeeping does, a lost consumer gives back exactly what it still held.
TEST_F(BrokerCoreTest, ALostConsumerGivesBackWhatItHeldAndNothingItSettled) {
  Consume("c", "q", 3);
  Publish("p", 1, "q", "kept");
  auto first = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(first.size(), 1u);
  constexpr int kSettled = 300;  // several compactions of the consumer's list
  for (int i = 0; i < kSettled; ++i) {
    Publish("p", i + 2, "q", "settled");
    auto out = Of(Take(), "c", p::kDeliver);
    ASSERT_EQ(out.size(), 1u);
    if (i % 2 == 0) {
      Ack("c", Tag(out[0]));
    } else {
      Nack("c", Tag(out[0]), /*requeue=*/false);  // settled too: to the dead-letter queue
    }
  }
  Client("c", p::kBye, p::NoArgs());
  Consume("d", "q", 10);
  auto redelivered = Of(Take(), "d", p::kDeliver);
  ASSERT_EQ(redelivered.size(), 1u);
  EXPECT_EQ(Body(redelivered[0]), "kept");
  EXPECT_EQ(core().counters().deliveries_taken_back, 1u);
  ASSERT_NE(core().FindQueue("q"), nullptr);
  EXPECT_EQ(core().FindQueue("q")->size(), 1u);
}

TEST_F(BrokerCoreTest, HeartbeatsGoToEveryPeerEachInterval) {
  Client("c", p::kHeartbeat, p::NoArgs());
  Worker("w", {"\x01"});
  Take();
  Advance(1s);
  auto out = Take();
  EXPECT_EQ(Of(out, "c", p::kHeartbeat).size(), 1u);
  bool worker_heartbeat = false;
  for (const Out& o : out) worker_heartbeat |= o.side == Side::kWorkers && o.frames == std::vector<std::string>{"\x02"};
  EXPECT_TRUE(worker_heartbeat);
}

TEST_F(BrokerCoreTest, APoisonMessageEndsInTheDeadLetterQueueAndCanBeRedriven) {
  options_.queue_defaults.max_attempts = 3;
  Consume("c", "payments", 1);
  Publish("p", 1, "payments", "card declined");
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto delivered = Of(Take(), "c", p::kDeliver);
    ASSERT_EQ(delivered.size(), 1u) << "attempt " << attempt;
    Nack("c", Tag(delivered[0]), /*requeue=*/true);
  }
  Take();
  const MessageQueue* dlq = core().FindQueue("payments.dlq");
  ASSERT_NE(dlq, nullptr);
  EXPECT_EQ(dlq->ready(), 1u);
  EXPECT_EQ(core().FindQueue("payments")->size(), 0u);

  Consume("inspector", "payments.dlq", 1, "dlq-reader");
  auto dead = Of(Take(), "inspector", p::kDeliver);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(Header(dead[0], "x-death-reason"), "max-attempts");
  EXPECT_EQ(Header(dead[0], "x-origin-queue"), "payments");
  EXPECT_EQ(Header(dead[0], "x-attempt-history"), "rejected,rejected,rejected");
  // protocol.md section 5: x-attempts counts its deliveries; the DLQ's count on from there.
  EXPECT_EQ(Header(dead[0], "x-attempts"), "3");
  EXPECT_EQ(Decoded(dead[0])->attempt, 4u);
  Nack("inspector", Tag(dead[0]), true);  // put it back in the DLQ
  Client("inspector", p::kCancel, p::ArgsWriter(1).Str("consumer", "dlq-reader").Finish());
  Take();

  Client("admin", p::kRedrive, p::ArgsWriter(2).Uint("rid", 7).Str("queue", "payments").Finish());
  auto out = Take();
  auto ok = Of(out, "admin", p::kOk);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(*ok[0].args->Uint("moved"), 1u);
  auto again = Of(out, "c", p::kDeliver);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(Body(again[0]), "card declined");
  EXPECT_EQ(Header(again[0], "x-redriven"), "max-attempts");
  EXPECT_EQ(Decoded(again[0])->attempt, 1u) << "a redriven message starts over";
}

// A redrive takes a message out of the dead-letter queue only if its queue will hold it as it
// goes back (with its redrive header). A message someone published into the DLQ itself has no
// death headers, so it grows by "x-redriven" on the way: with the queue that close to full it must
// stay in the DLQ, not vanish between the two.
TEST_F(BrokerCoreTest, ARedriveThatDoesNotFitLeavesTheMessageInTheDeadLetterQueue) {
  Client("admin", p::kDeclareQueue, p::ArgsWriter(2).Str("name", "w").Uint("max_bytes", 12).Finish());
  Publish("p", 1, "w.dlq", "twelve bytes");
  Take();
  ASSERT_EQ(core().FindQueue("w.dlq")->size(), 1u);
  Client("admin", p::kRedrive, p::ArgsWriter(2).Uint("rid", 3).Str("queue", "w").Finish());
  auto ok = Of(Take(), "admin", p::kOk);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(*ok[0].args->Uint("moved"), 0u);
  ASSERT_EQ(core().FindQueue("w.dlq")->size(), 1u) << "the message stays where it was";
  EXPECT_EQ(core().FindQueue("w.dlq")->Contents()[0].body, "twelve bytes");
  EXPECT_EQ(core().FindQueue("w")->size(), 0u);
  // With room for it, it goes.
  Client("admin", p::kDeclareQueue, p::ArgsWriter(2).Str("name", "w").Uint("max_bytes", 100).Finish());
  Client("admin", p::kRedrive, p::ArgsWriter(2).Uint("rid", 4).Str("queue", "w").Finish());
  ok = Of(Take(), "admin", p::kOk);
  ASSERT_EQ(ok.size(), 2u);
  EXPECT_EQ(*ok[1].args->Uint("moved"), 1u);
  EXPECT_EQ(core().FindQueue("w")->size(), 1u);
  EXPECT_EQ(core().FindQueue("w.dlq")->size(), 0u);
}

TEST_F(BrokerCoreTest, RejectWithoutRequeueDeadLettersAtOnce) {
  Consume("c", "q", 1);
  Publish("p", 1, "q", "bad");
  Nack("c", Tag(Of(Take(), "c", p::kDeliver)[0]), /*requeue=*/false);
  Take();
  EXPECT_EQ(core().FindQueue("q.dlq")->ready(), 1u);
}

TEST_F(BrokerCoreTest, FanoutExchangeCopiesToFourQueues) {
  Client("admin", p::kDeclareExchange, p::ArgsWriter(2).Str("name", "orders").Str("type", "fanout").Finish());
  for (const char* queue : {"payment", "email", "inventory", "shipping"}) {
    Client("admin", p::kBind, p::ArgsWriter(2).Str("exchange", "orders").Str("queue", queue).Finish());
  }
  EXPECT_EQ(Of(Take(), "admin", p::kOk).size(), 5u);
  Publish("p", 1, "", "ORDER_CREATED", "orders");
  auto out = Take();
  EXPECT_EQ(*Of(out, "p", p::kConfirm)[0].args->Uint("upto"), 1u);
  for (const char* queue : {"payment", "email", "inventory", "shipping"}) {
    EXPECT_EQ(core().FindQueue(queue)->ready(), 1u) << queue;
  }
}

TEST_F(BrokerCoreTest, FanoutIsRefusedWholeIfOneQueueIsFull) {
  Client("admin", p::kDeclareExchange, p::ArgsWriter(2).Str("name", "x").Str("type", "fanout").Finish());
  Client("admin", p::kBind, p::ArgsWriter(2).Str("exchange", "x").Str("queue", "roomy").Finish());
  Client("admin", p::kBind, p::ArgsWriter(2).Str("exchange", "x").Str("queue", "tight").Finish());
  Client("admin", p::kDeclareQueue, p::ArgsWriter(2).Str("name", "tight").Uint("max_length", 0).Finish());
  Take();
  Publish("p", 1, "", "m", "x");
  EXPECT_EQ(Of(Take(), "p", p::kRejected).size(), 1u);
  EXPECT_EQ(core().FindQueue("roomy")->size(), 0u);
}

TEST_F(BrokerCoreTest, TopicBindingsRouteByPattern) {
  Client("admin", p::kDeclareExchange, p::ArgsWriter(2).Str("name", "events").Str("type", "topic").Finish());
  Client("admin", p::kBind, p::ArgsWriter(3).Str("exchange", "events").Str("queue", "eu").Str("pattern", "*.*.eu").Finish());
  Client("admin", p::kBind, p::ArgsWriter(3).Str("exchange", "events").Str("queue", "orders").Str("pattern", "orders.#").Finish());
  Take();
  Publish("p", 1, "orders.paid.eu", "1", "events");
  Publish("p", 2, "users.new.eu", "2", "events");
  Publish("p", 3, "orders.refunded", "3", "events");
  Publish("p", 4, "users.new.us", "4", "events");  // unroutable: confirmed, counted
  auto out = Take();
  EXPECT_EQ(*Of(out, "p", p::kConfirm)[0].args->Uint("upto"), 4u);
  EXPECT_EQ(core().FindQueue("eu")->ready(), 2u);
  EXPECT_EQ(core().FindQueue("orders")->ready(), 2u);
  EXPECT_EQ(core().counters().unroutable, 1u);
}

TEST_F(BrokerCoreTest, HigherPriorityOvertakesWaitingMessages) {
  Publish("p", 1, "kitchen", "pizza 1", "", 1);
  Publish("p", 2, "kitchen", "pizza 2", "", 1);
  Publish("p", 3, "kitchen", "drink", "", 9);
  Consume("chef", "kitchen", 3);
  auto delivered = Of(Take(), "chef", p::kDeliver);
  ASSERT_EQ(delivered.size(), 3u);
  EXPECT_EQ(Body(delivered[0]), "drink");
  EXPECT_EQ(Body(delivered[1]), "pizza 1");
}

TEST_F(BrokerCoreTest, DelayedDeliveryArrivesOnTime) {
  options_.liveness = 1000;
  Consume("chef", "kitchen", 5);
  Envelope envelope = Envelope::New("check the oven");
  std::string header;
  EncodeHeader(envelope, header);
  std::vector<zmq::message_t> payload;
  payload.emplace_back(header.data(), header.size());
  payload.emplace_back(std::string_view("check the oven"));
  Client("p", p::kPublish, p::ArgsWriter(3).Uint("seq", 1).Str("key", "kitchen").Uint("delay_ms", 5000).Finish(),
         std::move(payload));
  EXPECT_TRUE(Of(Take(), "chef", p::kDeliver).empty());
  EXPECT_EQ(core().NextDeadline(), clock_.Now() + 250ms);  // housekeeping comes first
  Advance(4999ms);
  Client("chef", p::kHeartbeat, p::NoArgs());
  EXPECT_TRUE(Of(Take(), "chef", p::kDeliver).empty());
  Advance(1ms);
  EXPECT_EQ(Of(Take(), "chef", p::kDeliver).size(), 1u);
}

TEST_F(BrokerCoreTest, StatsReportEveryCounter) {
  options_.queue_defaults.max_attempts = 1;
  Publish("p", 1, "q", "a");
  Publish("p", 2, "q", "b");
  Publish("p", 3, "q", "c");
  Consume("c", "q", 2);
  auto delivered = Of(Take(), "c", p::kDeliver);
  Ack("c", Tag(delivered[0]));
  Nack("c", Tag(delivered[1]), true);  // out of attempts: dead-lettered
  Take();
  Client("admin", p::kStats, p::ArgsWriter(2).Uint("rid", 42).Str("queue", "q").Finish());
  auto ok = Of(Take(), "admin", p::kOk);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(*ok[0].args->Uint("rid"), 42u);
  auto handle = msgpack::unpack(ok[0].raw_args.data(), ok[0].raw_args.size());
  auto reply = handle.get().as<std::map<std::string, msgpack::object>>();
  auto queues = reply.at("queues").as<std::vector<std::map<std::string, msgpack::object>>>();
  ASSERT_EQ(queues.size(), 1u);
  auto& q = queues[0];
  EXPECT_EQ(q.at("name").as<std::string>(), "q");
  std::map<std::string, std::uint64_t> numbers;
  for (const char* field : {"ready", "in_flight", "delayed", "consumers", "published", "delivered",
                            "acked", "requeued", "dead_lettered", "dlq_depth"}) {
    numbers[field] = q.at(field).as<std::uint64_t>();
  }
  EXPECT_EQ(numbers, (std::map<std::string, std::uint64_t>{
                         {"ready", 0}, {"in_flight", 1}, {"delayed", 0}, {"consumers", 1},
                         {"published", 3}, {"delivered", 3}, {"acked", 1}, {"requeued", 0},
                         {"dead_lettered", 1}, {"dlq_depth", 1}}));
  Client("admin", p::kStats, p::ArgsWriter(1).Str("queue", "missing").Finish());
  EXPECT_EQ(*Of(Take(), "admin", p::kError)[0].args->Str("code"), "not-found");
}

TEST_F(BrokerCoreTest, PurgeEmptiesTheQueue) {
  for (int i = 0; i < 4; ++i) Publish("p", i + 1, "q", "x");
  Client("admin", p::kPurge, p::ArgsWriter(1).Str("queue", "q").Finish());
  EXPECT_EQ(*Of(Take(), "admin", p::kOk)[0].args->Uint("purged"), 4u);
  EXPECT_EQ(core().FindQueue("q")->size(), 0u);
}

TEST_F(BrokerCoreTest, ParanoidPirateWorkerAndLazyPirateClient) {
  Worker("w1", {"\x01"});  // READY
  std::vector<zmq::message_t> request;
  request.emplace_back();  // REQ's empty delimiter
  request.emplace_back(std::string_view("what is 6x7?"));
  core().OnClientMessage("req-client", request, clock_.Now());
  auto out = Take();
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].side, Side::kWorkers);
  EXPECT_EQ(out[0].peer, "w1");
  ASSERT_EQ(out[0].frames.size(), 3u);  // [address][""][body]
  EXPECT_EQ(out[0].frames[1], "");
  EXPECT_EQ(out[0].frames[2], "what is 6x7?");
  Worker("w1", {out[0].frames[0], "", "42"});
  auto reply = Take();
  ASSERT_EQ(reply.size(), 1u);
  EXPECT_EQ(reply[0].side, Side::kClients);
  EXPECT_EQ(reply[0].peer, "req-client");
  EXPECT_EQ(reply[0].frames, (std::vector<std::string>{"", "42"}));
}

TEST_F(BrokerCoreTest, ARequestHeldByAWorkerThatDiesGoesToAnotherWorker) {
  Worker("dies", {"\x01"});
  std::vector<zmq::message_t> request;
  request.emplace_back();
  request.emplace_back(std::string_view("job"));
  core().OnClientMessage("client", request, clock_.Now());
  auto first = Take();
  ASSERT_EQ(first.at(0).peer, "dies");
  const std::string first_address = first.at(0).frames.at(0);
  Worker("lives", {"\x01"});
  Take();
  for (int i = 0; i < 12; ++i) {
    Advance(250ms);
    Worker("lives", {"\x02"});
  }
  std::string address;
  for (const Out& o : Take()) {
    if (o.side == Side::kWorkers && o.peer == "lives" && o.frames.size() == 3) address = o.frames[0];
  }
  ASSERT_FALSE(address.empty()) << "the request never reached the live worker";
  // The dropped worker answers at last: a late reply, counted, not malformed, and not sent on.
  const std::uint64_t malformed = core().counters().malformed;
  Worker("dies", {first_address, "", "too late"});
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(core().counters().late_replies, 1u);
  EXPECT_EQ(core().counters().malformed, malformed);
  Worker("lives", {address, "", "done"});
  auto reply = Take();
  ASSERT_EQ(reply.size(), 1u);
  EXPECT_EQ(reply[0].peer, "client");
  EXPECT_EQ(reply[0].frames[1], "done");
}

TEST_F(BrokerCoreTest, APppWorkerHoldsOneJobAtATime) {
  Worker("w", {"\x01"});
  for (int i = 0; i < 3; ++i) {
    std::vector<zmq::message_t> request;
    request.emplace_back();
    request.emplace_back(std::string_view("job"));
    core().OnClientMessage("client-" + std::to_string(i), request, clock_.Now());
  }
  EXPECT_EQ(Take().size(), 1u);
  EXPECT_EQ(core().FindQueue("requests")->ready(), 2u);
}

TEST_F(BrokerCoreTest, BadInputIsAnsweredAndCountedAndOthersAreStillServed) {
  std::vector<zmq::message_t> garbage;
  garbage.emplace_back(std::string_view("HELLO"));
  core().OnClientMessage("bad", garbage, clock_.Now());
  std::vector<zmq::message_t> old_version;
  old_version.emplace_back(std::string_view("ZKB0"));
  core().OnClientMessage("bad", old_version, clock_.Now());
  Client("bad", "FROBNICATE", p::NoArgs());
  std::vector<zmq::message_t> bad_args;
  bad_args.emplace_back(p::kSignature.data(), p::kSignature.size());
  bad_args.emplace_back(std::string_view("ACK"));
  bad_args.emplace_back(std::string_view("\x93\x01\x02\x03"));  // an array, not a map
  core().OnClientMessage("bad", bad_args, clock_.Now());
  Client("bad", p::kAck, p::ArgsWriter(1).UintList("tags", {12345}).Finish());
  Worker("bad-worker", {"garbage", "more"});

  // A real producer and consumer, meanwhile.
  Consume("good", "q", 1);
  Publish("producer", 1, "q", "still served");
  auto out = Take();
  std::vector<std::string> codes;
  for (const Out& error : Of(out, "bad", p::kError)) codes.push_back(*error.args->Str("code"));
  EXPECT_EQ(codes, (std::vector<std::string>{"malformed", "unsupported-version", "unknown-command",
                                             "malformed", "unknown-delivery-tag"}));
  EXPECT_EQ(Of(out, "good", p::kDeliver).size(), 1u);
  EXPECT_EQ(core().counters().malformed, 3u);
  EXPECT_EQ(core().counters().unknown_commands, 1u);
  EXPECT_EQ(core().counters().unsupported_version, 1u);
  EXPECT_EQ(core().counters().unknown_tags, 1u);
}

TEST_F(BrokerCoreTest, AnotherClientsDeliveryTagIsNotYours) {
  Consume("owner", "q", 1);
  Publish("p", 1, "q", "mine");
  auto delivered = Of(Take(), "owner", p::kDeliver);
  Ack("thief", Tag(delivered[0]));
  EXPECT_EQ(*Of(Take(), "thief", p::kError)[0].args->Str("code"), "unknown-delivery-tag");
  EXPECT_EQ(core().FindQueue("q")->in_flight(), 1u);
}

TEST_F(BrokerCoreTest, StateOfVanishedClientsDoesNotAccumulate) {
  for (int i = 0; i < 100; ++i) Publish("gone-" + std::to_string(i), 1, "q", "x");
  EXPECT_EQ(core().sessions(), 100u);
  Advance(3s);
  EXPECT_EQ(core().sessions(), 0u);
  EXPECT_EQ(core().counters().peers_expired, 100u);
  EXPECT_FALSE(core().NextDeadline().has_value());  // nothing left to wake up for
}

TEST_F(BrokerCoreTest, QueuesExchangesAndBindingsAreBounded) {
  options_.max_queues = 2;
  Publish("p", 1, "q1", "x");
  Publish("p", 2, "q2", "x");
  Publish("p", 3, "q3", "x");
  for (const char* name : {"x1", "x2", "x3"}) {
    Client("admin", p::kDeclareExchange, p::ArgsWriter(2).Str("name", name).Str("type", "fanout").Finish());
  }
  for (const char* queue : {"q1", "q2"}) {
    Client("admin", p::kBind, p::ArgsWriter(3).Str("exchange", "x1").Str("queue", queue).Str("pattern", "a").Finish());
  }
  Client("admin", p::kBind, p::ArgsWriter(3).Str("exchange", "x1").Str("queue", "q1").Str("pattern", "b").Finish());
  auto out = Take();
  auto rejected = Of(out, "p", p::kRejected);
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(*rejected[0].args->Uint("seq"), 3u);
  std::vector<std::string> codes;
  for (const Out& error : Of(out, "admin", p::kError)) codes.push_back(*error.args->Str("code"));
  EXPECT_EQ(codes, (std::vector<std::string>{"limit-reached", "limit-reached"}));
}

TEST_F(BrokerCoreTest, ConsumerLimitsAreEnforced) {
  options_.max_consumers_per_client = 1;
  options_.max_prefetch = 10;
  Consume("c", "q", 1, "first");
  Consume("c", "q", 1, "second");
  Consume("d", "q", 11, "greedy");
  Consume("d", "q", 1, "twin");
  Consume("d", "q2", 1, "twin");
  auto out = Take();
  EXPECT_EQ(*Of(out, "c", p::kError)[0].args->Str("code"), "limit-reached");
  EXPECT_EQ(*Of(out, "c", p::kError)[0].args->Str("limit"), "max-consumers-per-client");
  auto d_errors = Of(out, "d", p::kError);
  ASSERT_EQ(d_errors.size(), 2u);
  EXPECT_EQ(*d_errors[0].args->Str("code"), "limit-reached");
  EXPECT_EQ(*d_errors[0].args->Str("limit"), "max-prefetch");
  EXPECT_EQ(*d_errors[1].args->Str("limit"), "max-consumers-per-client");
}

// A peer sending only garbage gets at most 100 ERRORs a second; the rest are counted, not queued
// for a peer that may never read them. Other peers are answered as usual.
TEST_F(BrokerCoreTest, ErrorRepliesToOnePeerAreBudgetedPerSecond) {
  auto garbage = [&](const std::string& peer) {
    Client(peer, "EXPLODE", p::NoArgs());
  };
  for (int i = 0; i < 150; ++i) garbage("flooder");
  garbage("bystander");
  auto out = Take();
  EXPECT_EQ(Of(out, "flooder", p::kError).size(), 100u);
  EXPECT_EQ(Of(out, "bystander", p::kError).size(), 1u);
  EXPECT_EQ(core().counters().errors_unsent, 50u);
  EXPECT_EQ(core().counters().unknown_commands, 151u) << "every one is still counted";
  Advance(1001ms);
  garbage("flooder");
  EXPECT_EQ(Of(Take(), "flooder", p::kError).size(), 1u) << "a new second, a new budget";
}

// STATS with queues=false answers with the broker's counters alone: a client asking for those
// does not make a broker with thousands of queues describe each one.
TEST_F(BrokerCoreTest, StatsWithoutQueuesCarriesOnlyTheBrokersCounters) {
  Publish("p", 1, "q", "a");
  Take();
  Client("admin", p::kStats, p::ArgsWriter(2).Uint("rid", 5).Bool("queues", false).Finish());
  auto ok = Of(Take(), "admin", p::kOk);
  ASSERT_EQ(ok.size(), 1u);
  auto handle = msgpack::unpack(ok[0].raw_args.data(), ok[0].raw_args.size());
  auto reply = handle.get().as<std::map<std::string, msgpack::object>>();
  EXPECT_TRUE(reply.at("queues").as<std::vector<msgpack::object>>().empty());
  auto broker = reply.at("broker").as<std::map<std::string, std::uint64_t>>();
  EXPECT_EQ(broker.at("published"), 1u);
  EXPECT_EQ(broker.at("queues"), 1u);
}

// Every limit is its own refusal: the code says what kind of answer it is, "limit" says which
// configured limit was hit, so a client (or an operator reading its log) knows what to change.
TEST_F(BrokerCoreTest, EachLimitIsADistinctRefusalNamingTheLimit) {
  options_.max_message_bytes = 1000;
  options_.max_header_bytes = 200;
  options_.max_headers = 2;
  options_.max_name_bytes = 8;
  options_.max_queues = 2;
  options_.max_clients = 3;
  auto publish = [&](std::uint64_t seq, const std::string& queue, std::string_view body,
                     Headers headers = {}) {
    Envelope envelope = Envelope::New(body);
    envelope.headers = std::move(headers);
    std::string header;
    EncodeHeader(envelope, header);
    std::vector<zmq::message_t> payload;
    payload.emplace_back(header.data(), header.size());
    payload.emplace_back(body.data(), body.size());
    Client("p", p::kPublish, p::ArgsWriter(2).Uint("seq", seq).Str("key", queue).Finish(),
           std::move(payload));
  };
  publish(1, "q1", std::string(1001, 'x'));
  publish(2, "q1", "ok", {{"a", "1"}, {"b", "2"}, {"c", "3"}});
  publish(3, "q1", "ok", {{"a", std::string(300, 'y')}});
  publish(4, "much-too-long", "ok");
  publish(5, "q1", "ok");
  publish(6, "q2", "ok");
  publish(7, "q3", "ok");
  std::map<std::uint64_t, std::string> limit_of;
  for (const Out& rejected : Of(Take(), "p", p::kRejected)) {
    limit_of[*rejected.args->Uint("seq")] = *rejected.args->Str("limit", "");
  }
  EXPECT_EQ(limit_of, (std::map<std::uint64_t, std::string>{{1, "max-message-bytes"},
                                                            {2, "max-headers"},
                                                            {3, "max-header-bytes"},
                                                            {4, "max-name-bytes"},
                                                            {7, "max-queues"}}));
  EXPECT_EQ(core().counters().oversized_messages, 3u);

  Client("admin", p::kDeclareExchange, p::ArgsWriter(3).Uint("rid", 1).Str("name", "e1").Str("type", "fanout").Finish());
  Client("admin", p::kDeclareExchange, p::ArgsWriter(3).Uint("rid", 2).Str("name", "e2").Str("type", "fanout").Finish());
  Client("admin", p::kDeclareExchange, p::ArgsWriter(3).Uint("rid", 3).Str("name", "e3").Str("type", "fanout").Finish());
  auto errors = Of(Take(), "admin", p::kError);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(*errors[0].args->Str("limit"), "max-exchanges");

  // Too many frames: the loop keeps max_frames of them. Not a PUBLISH: one ERROR.
  auto kept = p::Frames(p::kStats, p::NoArgs());
  core().OnOversizedMessage(Side::kClients, "p", kept, 100, clock_.Now());
  auto frames = Of(Take(), "p", p::kError);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(*frames[0].args->Str("limit"), "max-frames");
  EXPECT_EQ(core().counters().oversized_messages, 4u);
  // A PUBLISH: a REJECTED for each seq its count claims, within the frames it had.
  kept = p::Frames(p::kPublish, p::ArgsWriter(3).Uint("seq", 20).Str("key", "q1").Uint("count", 100).Finish());
  core().OnOversizedMessage(Side::kClients, "p", kept, 2 * 100, clock_.Now());
  std::vector<std::uint64_t> rejected;
  for (const Out& out : Of(Take(), "p", p::kRejected)) {
    EXPECT_EQ(*out.args->Str("limit"), "max-frames");
    rejected.push_back(*out.args->Uint("seq"));
  }
  ASSERT_EQ(rejected.size(), 100u);
  EXPECT_EQ(rejected.front(), 20u);
  EXPECT_EQ(rejected.back(), 119u);

  Client("fourth", p::kHeartbeat, p::NoArgs());  // p, admin and... one more fits
  Client("fifth", p::kHeartbeat, p::NoArgs());
  auto full = Of(Take(), "fifth", p::kError);
  ASSERT_EQ(full.size(), 1u);
  EXPECT_EQ(*full[0].args->Str("limit"), "max-clients");
  EXPECT_EQ(core().sessions(), 3u) << "the refused client holds no session";
  // A refused client's publish is rejected by seq, so it is not left for a later confirm to cover.
  Publish("fifth", 9, "q1", "body");
  auto refused = Of(Take(), "fifth", p::kRejected);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(*refused[0].args->Uint("seq"), 9u);
  EXPECT_EQ(*refused[0].args->Str("limit"), "max-clients");
}

}  // namespace
}  // namespace zmqkit::internal

namespace zmqkit::internal {
namespace {

// Every command, with every args key it reads given every wrong type: the core answers (or ignores)
// and never throws, and a well-behaved client is served afterwards.
TEST(BrokerCoreHostileArgsTest, EveryKeyOfEveryCommandWithEveryWrongTypeIsSurvived) {
  CoreOptions options;
  BrokerCore core(options);
  ManualClock clock;
  const std::vector<std::string_view> commands = {
      p::kPublish, p::kConsume, p::kCancel, p::kAck, p::kNack, p::kExtend, p::kDeclareQueue,
      p::kDeclareExchange, p::kBind, p::kUnbind, p::kStats, p::kPurge, p::kRedrive, p::kHeartbeat};
  const std::vector<std::string_view> keys = {
      "rid", "seq", "exchange", "key", "delay_ms", "ttl_ms", "queue", "consumer", "prefetch",
      "ack_timeout_ms", "tags", "tag", "requeue", "ms", "name", "type", "pattern", "limit",
      "max_attempts", "retry_delay_ms", "max_retry_delay_ms", "message_ttl_ms", "max_length",
      "max_bytes"};
  // Each writes one value of some type for a key.
  const std::vector<std::function<void(p::ArgsWriter&, std::string_view)>> values = {
      [](p::ArgsWriter& w, std::string_view k) { w.Str(k, "text"); },
      [](p::ArgsWriter& w, std::string_view k) { w.Uint(k, 0); },
      [](p::ArgsWriter& w, std::string_view k) { w.Uint(k, ~0ull); },
      [](p::ArgsWriter& w, std::string_view k) { w.Bool(k, true); },
      [](p::ArgsWriter& w, std::string_view k) { w.UintList(k, {1, 2}); },
      [](p::ArgsWriter& w, std::string_view k) { w.Key(k).packer().pack_nil(); },
      [](p::ArgsWriter& w, std::string_view k) { w.Key(k).packer().pack_int64(-3); },
      [](p::ArgsWriter& w, std::string_view k) { w.Key(k).packer().pack_map(0); },
  };
  for (std::string_view command : commands) {
    for (std::string_view key : keys) {
      for (const auto& value : values) {
        p::ArgsWriter args(1);
        value(args, key);
        std::vector<zmq::message_t> payload;
        payload.emplace_back(std::string_view("\x80"));
        payload.emplace_back(std::string_view("body"));
        auto frames = p::Frames(command, args.Finish(), std::move(payload));
        ASSERT_NO_THROW(core.OnClientMessage("hostile", frames, clock.Now()))
            << command << " " << key;
      }
    }
  }
  ASSERT_NO_THROW(core.Tick(clock.Now()));
  core.Flush();
  core.outbox().clear();
  // A normal client still gets its confirm.
  Envelope envelope = Envelope::New("fine");
  std::string header;
  EncodeHeader(envelope, header);
  std::vector<zmq::message_t> payload;
  payload.emplace_back(header.data(), header.size());
  payload.emplace_back(std::string_view("fine"));
  auto frames = p::Frames(p::kPublish, p::ArgsWriter(2).Uint("seq", 1).Str("key", "q").Finish(),
                          std::move(payload));
  core.OnClientMessage("good", frames, clock.Now());
  core.Flush();
  bool confirmed = false;
  for (const Outgoing& out : core.outbox()) {
    confirmed |= out.peer == "good" && out.frames.size() >= 2 && out.frames[1].to_string() == "CONFIRM";
  }
  EXPECT_TRUE(confirmed);
}

}  // namespace
}  // namespace zmqkit::internal
