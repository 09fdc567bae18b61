// Replay uses the same state changes as live operation: a core driven through every kind of change
// while recording its journal, and a fresh core that replays that journal, hold the same messages
// in the same order with the same attempts, histories and headers.
#include <gtest/gtest.h>

#include <map>
#include <msgpack.hpp>

#include "broker/core/broker_core.h"
#include "broker/core/core_driver.h"
#include "broker/core/journal_records.h"

namespace zmqkit::internal {
namespace {

using namespace std::chrono_literals;

class JournalReplayTest : public ::testing::Test, public CoreDriver {
 protected:
  JournalReplayTest() {
    options_.liveness = 1000;  // sessions end by BYE here, not by silence
    options_.queue_defaults.retry_delay = 0ms;
    environment_ = Wall();
  }
  // The wall clock moves with the manual clock, so times survive the round trip exactly.
  std::int64_t WallNow() const {
    return kWallEpoch + std::chrono::duration_cast<std::chrono::microseconds>(
                            clock_.Now().time_since_epoch()).count();
  }
  CoreEnvironment Wall() const {
    CoreEnvironment environment;
    environment.wall_clock = [this] { return WallNow(); };
    return environment;
  }
  void StartRecording() {
    core().set_journal(&journal_);
  }
  void PublishWith(const std::string& key, std::string_view body, std::uint8_t priority,
                   std::uint64_t delay_ms, std::uint64_t ttl_ms, const std::string& exchange = "") {
    Envelope envelope = Envelope::New(body);
    envelope.priority = priority;
    envelope.headers["n"] = std::string(body);
    std::string header;
    std::vector<zmq::message_t> payload;
    // Every other one packed, [header+body]: the journal keeps the header's bytes either way.
    if (seq_ % 2 == 1) {
      payload.push_back(EncodePacked(envelope, header));
    } else {
      EncodeHeader(envelope, header);
      payload.emplace_back(header.data(), header.size());
      payload.emplace_back(body.data(), body.size());
    }
    Client("producer", p::kPublish,
           p::ArgsWriter(5).Uint("seq", ++seq_).Str("exchange", exchange).Str("key", key)
               .Uint("delay_ms", delay_ms).Uint("ttl_ms", ttl_ms).Finish(),
           std::move(payload));
  }
  std::vector<std::uint64_t> Delivered(const std::string& peer) {
    std::vector<std::uint64_t> tags;
    for (const Out& out : Of(Take(), peer, p::kDeliver)) tags.push_back(Tag(out));
    return tags;
  }

  static constexpr std::int64_t kWallEpoch = 1'700'000'000'000'000;
  RecordingJournal journal_;
  std::uint64_t seq_ = 0;
};

TEST_F(JournalReplayTest, ReplayingTheJournalRebuildsTheLiveState) {
  StartRecording();
  QueueOptions orders;
  orders.max_attempts = 3;
  orders.retry_delay = 0ms;
  orders.ack_timeout = 10s;
  Client("admin", p::kDeclareQueue,
         p::ArgsWriter(4).Str("name", "orders").Uint("max_attempts", 3).Uint("retry_delay_ms", 0)
             .Uint("ack_timeout_ms", 10000).Finish());
  Client("admin", p::kDeclareExchange, p::ArgsWriter(2).Str("name", "events").Str("type", "topic").Finish());
  Client("admin", p::kBind, p::ArgsWriter(3).Str("exchange", "events").Str("queue", "orders").Str("pattern", "order.*").Finish());
  Client("admin", p::kDeclareExchange, p::ArgsWriter(2).Str("name", "fan").Str("type", "fanout").Finish());
  for (const char* queue : {"a", "b"}) {
    Client("admin", p::kBind, p::ArgsWriter(2).Str("exchange", "fan").Str("queue", queue).Finish());
  }
  for (int i = 0; i < 10; ++i) {
    PublishWith("order.created", "order " + std::to_string(i), static_cast<std::uint8_t>(i % 3), 0, 0, "events");
  }
  for (int i = 0; i < 3; ++i) PublishWith("", "fan " + std::to_string(i), 0, 0, 0, "fan");
  for (int i = 0; i < 5; ++i) PublishWith("plain", "plain " + std::to_string(i), 0, 0, 0);
  PublishWith("plain", "later", 0, 3600 * 1000, 0);   // still delayed at the end
  PublishWith("plain", "short-lived", 0, 0, 1000);    // expires: to plain.dlq
  Take();

  // Acks, a requeue, a rejection, one left in flight.
  Consume("c1", "orders", 5);
  auto held = Delivered("c1");
  ASSERT_EQ(held.size(), 5u);
  Ack("c1", held[0]);
  Ack("c1", held[1]);
  Nack("c1", held[2], /*requeue=*/true);
  Nack("c1", held[3], /*requeue=*/false);
  Take();
  // A stalled consumer: its delivery times out and comes back to it.
  Consume("c2", "a", 1);
  Take();
  Advance(10s);
  Take();
  // A poison message: out of attempts after three NACKs (queue default 5? "plain" uses defaults).
  Client("admin", p::kDeclareQueue, p::ArgsWriter(2).Str("name", "plain").Uint("max_attempts", 2).Finish());
  Consume("c3", "plain", 1);
  for (int i = 0; i < 2; ++i) {
    auto tags = Delivered("c3");
    ASSERT_EQ(tags.size(), 1u);
    Nack("c3", tags[0], true);
  }
  Client("c3", p::kCancel, p::ArgsWriter(1).Str("consumer", "c").Finish());
  Take();
  // Purge, redrive, expiry.
  Client("admin", p::kPurge, p::ArgsWriter(1).Str("queue", "b").Finish());
  Client("admin", p::kRedrive, p::ArgsWriter(1).Str("queue", "orders").Finish());
  Take();
  Advance(1s);  // the short-lived message expires
  // Everyone leaves: what they held is taken back (and recorded).
  for (const char* peer : {"c1", "c2", "c3", "admin", "producer"}) Client(peer, p::kBye, p::NoArgs());
  Take();
  ASSERT_GT(journal_.records.size(), 30u);

  // A fresh core, at the same moment, replays the journal.
  BrokerCore replayed(options_, Wall());
  for (const std::string& record : journal_.records) {
    Status status = replayed.Replay(record, clock_.Now());
    ASSERT_TRUE(status.ok()) << status.ToString();
  }
  ASSERT_EQ(replayed.QueueNames(), core().QueueNames());
  for (const std::string& name : core().QueueNames()) {
    SCOPED_TRACE(name);
    auto live = core().FindQueue(name)->Contents();
    auto rebuilt = replayed.FindQueue(name)->Contents();
    ASSERT_EQ(rebuilt.size(), live.size());
    for (std::size_t i = 0; i < live.size(); ++i) {
      EXPECT_EQ(rebuilt[i], live[i]) << "message " << i << ": live #" << live[i].number << " "
                                     << live[i].body << " attempt " << live[i].attempt
                                     << ", rebuilt #" << rebuilt[i].number << " "
                                     << rebuilt[i].body << " attempt " << rebuilt[i].attempt;
    }
  }
  // The things the scenario was meant to exercise did happen.
  EXPECT_EQ(core().FindQueue("b")->size(), 0u);
  EXPECT_GT(core().FindQueue("plain.dlq")->size(), 0u);
  // "order 1" was rejected and redriven; "order 8" was nacked, then timed out (the 10 s advance
  // passed the queue's ack timeout), then taken back when its consumer left: out of attempts.
  auto orders_dlq = core().FindQueue("orders.dlq")->Contents();
  ASSERT_EQ(orders_dlq.size(), 1u);
  EXPECT_EQ(orders_dlq[0].body, "order 8");
  EXPECT_EQ(orders_dlq[0].headers.at("x-death-reason"), "max-attempts");
  EXPECT_EQ(orders_dlq[0].headers.at("x-attempt-history"), "rejected,timeout,consumer-lost");
  bool redriven = false;
  for (const auto& m : core().FindQueue("orders")->Contents()) {
    redriven |= m.body == "order 1" && m.headers.contains("x-redriven");
  }
  EXPECT_TRUE(redriven);
  EXPECT_EQ(core().FindQueue("plain")->delayed(), 1u);
  EXPECT_GT(core().counters().deliveries_taken_back, 0u);
  // Every message number was given by a record: an intact journal has no gaps.
  EXPECT_EQ(replayed.replay_audit().messages_missing, 0u);

  // Without the PUBLISH records of two messages — one acked later, one never — replay counts both
  // as missing, the acked one as done with.
  std::vector<std::string> damaged;
  int dropped = 0;
  for (const std::string& bytes : journal_.records) {
    auto record = records::Decode(bytes);
    ASSERT_TRUE(record.ok());
    const bool drop = record->op == records::Op::kPublish && record->targets.size() == 1 &&
                      record->targets[0].first == "orders" &&
                      (record->targets[0].second == 1 || record->targets[0].second == 3);
    if (drop) {
      ++dropped;
      continue;
    }
    damaged.push_back(bytes);
  }
  ASSERT_EQ(dropped, 2);
  BrokerCore salvaged(options_, Wall());
  for (const std::string& record : damaged) (void)salvaged.Replay(record, clock_.Now());
  EXPECT_EQ(salvaged.replay_audit().messages_missing, 2u);
  // Priority first: "order 2" (#3) was the first delivered, and acked; "order 0" (#1) never was.
  EXPECT_EQ(salvaged.replay_audit().missing_acked, 1u) << "orders #3 was acked";
}

// A delayed message joins the back of the line when its delay ends, behind what was published
// before and ahead of what comes after. Replay puts it in the same place (the READY record says
// where), finds no gap in the numbering, and a delay whose end the broker did not live to see
// ends at the first Tick after recovery, as it would have.
TEST_F(JournalReplayTest, AMessageWhoseDelayEndedKeepsItsPlaceAcrossReplayAndSnapshots) {
  StartRecording();
  PublishWith("q", "delayed", 0, 1000, 0);
  PublishWith("q", "before", 0, 0, 0);
  PublishWith("q", "not yet", 0, 9000, 0);
  Advance(1s);
  PublishWith("q", "after", 0, 0, 0);
  Take();
  auto bodies = [](const BrokerCore& core) {
    std::vector<std::string> out;
    for (const auto& view : core.FindQueue("q")->Contents()) out.push_back(view.body + " " + std::string(view.place));
    return out;
  };
  const std::vector<std::string> live{"before ready", "delayed ready", "after ready", "not yet delayed"};
  ASSERT_EQ(bodies(core()), live);
  bool journaled = false;
  for (const std::string& bytes : journal_.records) {
    auto record = records::Decode(bytes);
    journaled |= record.ok() && record->op == records::Op::kReady && record->number == 1 && record->order == 4;
  }
  EXPECT_TRUE(journaled) << "READY q #1 at 4";

  BrokerCore replayed(options_, Wall());
  for (const std::string& record : journal_.records) ASSERT_TRUE(replayed.Replay(record, clock_.Now()).ok());
  EXPECT_EQ(bodies(replayed), live);
  EXPECT_EQ(replayed.replay_audit().messages_missing, 0u) << "the READY's order was a number, not a lost message";

  BrokerCore from_snapshot(options_, Wall());
  for (const std::string& record : core().SnapshotRecords(clock_.Now())) {
    ASSERT_TRUE(from_snapshot.Replay(record, clock_.Now()).ok());
  }
  EXPECT_EQ(bodies(from_snapshot), live);

  // The broker stopped before "not yet" was due and starts after: still delayed at replay, ready at
  // the first Tick, behind "after", and that is journaled as live.
  clock_.Advance(20s);
  BrokerCore late(options_, Wall());
  for (const std::string& record : journal_.records) ASSERT_TRUE(late.Replay(record, clock_.Now()).ok());
  EXPECT_EQ(late.FindQueue("q")->delayed(), 1u);
  RecordingJournal after_restart;
  late.set_journal(&after_restart);
  ASSERT_TRUE(late.NextDeadline().has_value());
  EXPECT_LE(*late.NextDeadline(), clock_.Now() + 1ms);
  late.Tick(*late.NextDeadline());
  EXPECT_EQ(bodies(late), (std::vector<std::string>{"before ready", "delayed ready", "after ready", "not yet ready"}));
  ASSERT_EQ(after_restart.records.size(), 1u);
  auto ready = records::Decode(after_restart.records[0]);
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->op, records::Op::kReady);
  EXPECT_EQ(ready->order, 6u);
}

// Compaction writes the whole state as a snapshot; replaying the snapshot alone must rebuild it.
TEST_F(JournalReplayTest, ASnapshotRebuildsTheSameState) {
  StartRecording();
  Client("admin", p::kDeclareExchange, p::ArgsWriter(2).Str("name", "fan").Str("type", "fanout").Finish());
  Client("admin", p::kBind, p::ArgsWriter(2).Str("exchange", "fan").Str("queue", "a").Finish());
  for (int i = 0; i < 6; ++i) PublishWith("", "fan " + std::to_string(i), static_cast<std::uint8_t>(i % 2), 0, 0, "fan");
  PublishWith("a", "later", 0, 60000, 0);
  PublishWith("a", "expiring", 0, 0, 30000);
  Consume("c", "a", 2);
  auto held = Delivered("c");
  ASSERT_EQ(held.size(), 2u);
  Nack("c", held[0], true);  // a failure in the history
  Ack("c", held[1]);
  Take();
  Client("c", p::kBye, p::NoArgs());
  Take();
  Advance(5s);  // delay and TTL partly used up: the snapshot writes what is left

  BrokerCore rebuilt(options_, Wall());
  for (const std::string& record : core().SnapshotRecords(clock_.Now())) {
    Status status = rebuilt.Replay(record, clock_.Now());
    ASSERT_TRUE(status.ok()) << status.ToString();
  }
  ASSERT_EQ(rebuilt.QueueNames(), core().QueueNames());
  for (const std::string& name : core().QueueNames()) {
    EXPECT_EQ(rebuilt.FindQueue(name)->Contents(), core().FindQueue(name)->Contents()) << name;
  }
  // Time goes on the same way in both: the delay ends and the TTL expires at the same moments.
  EXPECT_EQ(rebuilt.NextDeadline().has_value(), true);
  EXPECT_EQ(rebuilt.FindQueue("a")->NextDeadline(), core().FindQueue("a")->NextDeadline());
}

// No delivery tag is given twice by a durable broker, in one run or across runs: each start takes
// the epoch after the last journaled one, running out of tags moves to the next, a snapshot keeps
// the epoch, and the epochs wrap below 2^21 (tags below 2^53).
TEST_F(JournalReplayTest, DeliveryTagEpochsAreJournaledAndNeverRepeat) {
  auto epoch_of = [](std::uint64_t tag) { return tag >> 32; };
  auto epochs_in = [](const std::vector<std::string>& journal) {
    std::vector<std::uint64_t> epochs;
    for (const std::string& bytes : journal) {
      auto record = records::Decode(bytes);
      if (record.ok() && record->op == records::Op::kEpoch) epochs.push_back(record->epoch);
    }
    return epochs;
  };
  StartRecording();
  ASSERT_TRUE(core().Replay(records::EncodeEpoch(41), clock_.Now()).ok());
  core().BeginJournaledEpoch();
  EXPECT_EQ(epochs_in(journal_.records), (std::vector<std::uint64_t>{42}));
  for (const char* body : {"m0", "m1", "m2"}) PublishWith("q", body, 0, 0, 0);
  Consume("c", "q", 1);
  auto first = Delivered("c");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(epoch_of(first[0]), 42u);
  EXPECT_EQ(first[0] & 0xffffffff, 1u);
  // The epoch's last counter value, then the next epoch, journaled before its first tag leaves.
  core().SetNextTagCounterForTesting(0xffffffff);
  Ack("c", first[0]);
  auto last = Delivered("c");
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0], (std::uint64_t{42} << 32) | 0xffffffff);
  Ack("c", last[0]);
  auto next = Delivered("c");
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(epoch_of(next[0]), 43u);
  EXPECT_EQ(epochs_in(journal_.records), (std::vector<std::uint64_t>{42, 43}));
  // A compacted journal still names the epoch in use.
  EXPECT_EQ(epochs_in(core().SnapshotRecords(clock_.Now())), (std::vector<std::uint64_t>{43}));
  // Wrapping: after the largest epoch comes 1.
  BrokerCore wrapped(options_);
  RecordingJournal wrapped_journal;
  wrapped.set_journal(&wrapped_journal);
  ASSERT_TRUE(wrapped.Replay(records::EncodeEpoch((1u << 21) - 1), clock_.Now()).ok());
  wrapped.BeginJournaledEpoch();
  EXPECT_EQ(wrapped.tag_epoch(), 1u);
  // A memory-only core picks an epoch of its own, in range.
  BrokerCore memory(options_);
  EXPECT_GE(memory.tag_epoch(), 1u);
  EXPECT_LT(memory.tag_epoch(), 1u << 21);
}

// Idempotent publishing survives a restart: what a producer's publishes were is rebuilt from the
// journal, and from a snapshot (where the messages themselves may be long gone), so a copy sent
// again after the restart is confirmed and not stored.
TEST_F(JournalReplayTest, AProducersPublishesAreKnownAfterReplayAndAfterASnapshot) {
  StartRecording();
  auto publish = [&](BrokerCore& core, std::uint64_t seq, std::uint64_t pseq, std::string_view body) {
    std::string header;
    EncodeHeader(Envelope::New(body), header);
    std::vector<zmq::message_t> payload;
    payload.emplace_back(header.data(), header.size());
    payload.emplace_back(body.data(), body.size());
    auto frames = p::Frames(p::kPublish,
                            p::ArgsWriter(4).Uint("seq", seq).Str("key", "q").Str("producer", "P")
                                .Uint("pseq", pseq).Finish(),
                            std::move(payload));
    core.OnClientMessage("producer", frames, clock_.Now());
    core.Flush();
    std::vector<std::string> commands;
    for (Outgoing& out : core.outbox()) {
      if (out.frames.size() > 1) commands.push_back(out.frames[1].to_string());
    }
    core.outbox().clear();
    return commands;
  };
  for (std::uint64_t i = 1; i <= 4; ++i) publish(core(), i, i, "m");
  // Consumed and acked: gone from the queue, still known as published.
  Consume("c", "q", 10);
  for (std::uint64_t tag : Delivered("c")) Ack("c", tag);
  Take();
  EXPECT_EQ(core().FindQueue("q")->size(), 0u);
  auto check = [&](BrokerCore& rebuilt, const char* how) {
    SCOPED_TRACE(how);
    const std::uint64_t before = rebuilt.FindQueue("q")->size();
    auto answers = publish(rebuilt, 1, 3, "again");  // a new connection's seq 1, pseq 3
    EXPECT_NE(std::find(answers.begin(), answers.end(), "CONFIRM"), answers.end());
    EXPECT_EQ(rebuilt.FindQueue("q")->size(), before) << "stored a second copy";
    EXPECT_EQ(rebuilt.counters().duplicates, 1u);
    publish(rebuilt, 2, 5, "new");
    EXPECT_EQ(rebuilt.FindQueue("q")->size(), before + 1);
  };
  BrokerCore replayed(options_);
  for (const std::string& record : journal_.records) ASSERT_TRUE(replayed.Replay(record, clock_.Now()).ok());
  check(replayed, "journal");
  BrokerCore from_snapshot(options_);
  for (const std::string& record : core().SnapshotRecords(clock_.Now())) {
    ASSERT_TRUE(from_snapshot.Replay(record, clock_.Now()).ok());
  }
  check(from_snapshot, "snapshot");
}

// Deduplication by message id: a message with a "dedup-id" is stored once per exchange, key and
// id within the window, live, after replay of the journal and after a snapshot (where the message
// itself was acked long ago), and stored again once the window has passed.
TEST_F(JournalReplayTest, MessageIdsAreRememberedForTheirWindowAcrossReplayAndSnapshots) {
  options_.dedup_window = std::chrono::seconds(60);
  StartRecording();
  std::uint64_t seq = 0;
  // What the broker answered to one publish of `body` with `dedup_id` to queue `key`.
  auto publish = [&](BrokerCore& core, const std::string& key, const std::string& dedup_id,
                     std::string_view body) {
    Envelope envelope = Envelope::New(body);
    envelope.headers[std::string(kDedupIdHeader)] = dedup_id;
    std::string header;
    std::vector<zmq::message_t> payload;
    payload.push_back(EncodePacked(envelope, header));
    auto frames = p::Frames(p::kPublish, p::ArgsWriter(2).Uint("seq", ++seq).Str("key", key).Finish(),
                            std::move(payload));
    core.OnClientMessage("stateless", frames, clock_.Now());
    core.Flush();
    std::string answer;
    for (Outgoing& out : core.outbox()) {
      if (out.frames.size() > 1 && out.frames[1].to_string() != p::kHeartbeat) {
        answer = out.frames[1].to_string();
      }
    }
    core.outbox().clear();
    return answer;
  };
  EXPECT_EQ(publish(core(), "orders", "order-1", "first"), p::kConfirm);
  EXPECT_EQ(publish(core(), "orders", "order-1", "again"), p::kConfirm) << "a copy is confirmed";
  EXPECT_EQ(core().FindQueue("orders")->size(), 1u) << "and not stored";
  EXPECT_EQ(core().counters().duplicates, 1u);
  EXPECT_EQ(publish(core(), "invoices", "order-1", "other key"), p::kConfirm);
  EXPECT_EQ(core().FindQueue("invoices")->size(), 1u) << "the same id to another queue is another message";
  EXPECT_EQ(publish(core(), "orders", std::string(256, 'x'), "too long"), p::kRejected);
  // Acked: gone from the queue, its id still remembered.
  Consume("c", "orders", 10);
  for (std::uint64_t tag : Delivered("c")) Ack("c", tag);
  Take();
  ASSERT_EQ(core().FindQueue("orders")->size(), 0u);
  clock_.Advance(30s);

  auto check = [&](BrokerCore& rebuilt, const char* how) {
    SCOPED_TRACE(how);
    EXPECT_EQ(publish(rebuilt, "orders", "order-1", "after the restart"), p::kConfirm);
    EXPECT_EQ(rebuilt.FindQueue("orders")->size(), 0u) << "stored a second copy";
    EXPECT_EQ(rebuilt.counters().duplicates, 1u);
    // Still 60 s from its first publish: the window ends 30 s later.
    clock_.Advance(30s);
    EXPECT_EQ(publish(rebuilt, "orders", "order-1", "after the window"), p::kConfirm);
    EXPECT_EQ(rebuilt.FindQueue("orders")->size(), 1u) << "the window has passed: a new message";
    clock_.Advance(-30s);
  };
  BrokerCore replayed(options_, Wall());
  for (const std::string& record : journal_.records) {
    ASSERT_TRUE(replayed.Replay(record, clock_.Now()).ok());
  }
  check(replayed, "journal");
  BrokerCore from_snapshot(options_, Wall());
  for (const std::string& record : core().SnapshotRecords(clock_.Now())) {
    ASSERT_TRUE(from_snapshot.Replay(record, clock_.Now()).ok());
  }
  check(from_snapshot, "snapshot");
}

// Journals written before wire format version 2 hold version 1's map headers. They replay, and the
// message goes out in version 2's form with its id, priority and headers.
TEST_F(JournalReplayTest, AJournaledVersion1HeaderReplaysAndIsDeliveredAsVersion2) {
  const MessageId id = MessageId::Generate();
  msgpack::sbuffer v1;
  msgpack::packer<msgpack::sbuffer> packer(v1);
  packer.pack_map(5);
  packer.pack(std::string("v"));
  packer.pack(1);
  packer.pack(std::string("id"));
  packer.pack_bin(16);
  packer.pack_bin_body(reinterpret_cast<const char*>(id.AsBytes().data()), 16);
  packer.pack(std::string("ts"));
  packer.pack(std::uint64_t{1'700'000'000'000'000});
  packer.pack(std::string("pri"));
  packer.pack(4);
  packer.pack(std::string("h"));
  packer.pack(std::map<std::string, std::string>{{"tenant", "acme"}});
  const std::string record = records::EncodePublish({{"old", 1}}, std::string_view(v1.data(), v1.size()),
                                                    "from before", WallNow(), 0, -1, "");
  Status status = core().Replay(record, clock_.Now());
  ASSERT_TRUE(status.ok()) << status.ToString();

  Consume("c", "old", 1);
  auto delivered = Of(Take(), "c", p::kDeliver);
  ASSERT_EQ(delivered.size(), 1u);
  const std::string& header = delivered[0].frames.at(0);
  EXPECT_EQ(static_cast<std::uint8_t>(header[0]), 0x96) << "an array of 6: version 2";
  auto envelope = Decoded(delivered[0]);
  ASSERT_TRUE(envelope.ok()) << envelope.error().ToString();
  EXPECT_EQ(envelope->id, id);
  EXPECT_EQ(envelope->created_us, 1'700'000'000'000'000);
  EXPECT_EQ(envelope->priority, 4);
  EXPECT_EQ(envelope->attempt, 1u);
  EXPECT_EQ(envelope->headers.at("tenant"), "acme");
  EXPECT_EQ(Body(delivered[0]), "from before");
}

TEST_F(JournalReplayTest, RecordsThatDoNotFitAreCorruptionNotACrash) {
  BrokerCore fresh(options_);
  EXPECT_EQ(fresh.Replay("\xc1", clock_.Now()).code(), StatusCode::kCorruption);
  EXPECT_EQ(fresh.Replay(records::EncodeAck("nowhere", 7), clock_.Now()).code(),
            StatusCode::kCorruption);
  EXPECT_EQ(fresh.Replay(std::string("\x92\x63\x01", 3), clock_.Now()).code(),
            StatusCode::kCorruption);  // op 99
}

}  // namespace
}  // namespace zmqkit::internal
