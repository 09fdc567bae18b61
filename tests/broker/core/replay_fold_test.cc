// The journal is the definition of the broker's state: a long random run of a core — publishes
// through every exchange type, with producers' sequence numbers, dedup ids, delays and TTLs;
// consumers that ack, requeue, reject, stall past their lease and leave; purges, redrives,
// re-declared queues, binds and unbinds, time passing — is recorded, and a fresh core that
// replays the records (all of them, or a snapshot taken mid-run and the records after it) holds
// exactly what the live core holds: every queue's messages in order with their attempts,
// histories and headers, and the same snapshot, byte for byte (exchanges, bindings, producers,
// dedup ids, numbering). ZMQKIT_REPLAY_SEED replays a failing seed; ZMQKIT_REPLAY_STEPS runs longer.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "broker/core/broker_core.h"
#include "broker/core/core_driver.h"
#include "broker/core/journal_records.h"

namespace zmqkit::internal {
namespace {

using namespace std::chrono_literals;

std::uint64_t EnvOr(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  return value ? std::strtoull(value, nullptr, 10) : fallback;
}

class ReplayFoldTest : public ::testing::Test, public CoreDriver {
 protected:
  ReplayFoldTest() : seed_(EnvOr("ZMQKIT_REPLAY_SEED", std::random_device{}())), random_(seed_) {
    options_.liveness = 1000;  // sessions end by BYE here, not by silence
    options_.queue_defaults.ack_timeout = 4s;
    options_.queue_defaults.retry_delay = 0ms;
    environment_.wall_clock = [this] { return WallNow(); };  // before core() makes the core
    core().set_journal(&journal_);
  }

  std::int64_t WallNow() const {
    return kWallEpoch +
           std::chrono::duration_cast<std::chrono::microseconds>(clock_.Now().time_since_epoch()).count();
  }
  std::uint64_t Below(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(random_); }
  bool OneIn(std::uint64_t n) { return Below(n) == 0; }
  template <typename T>
  const T& Pick(const std::vector<T>& from) { return from[Below(from.size())]; }

  void Publish() {
    const std::string& producer = Pick(producers_);
    Envelope envelope = Envelope::New(std::string("m").append(std::to_string(++published_)));
    envelope.priority = static_cast<std::uint8_t>(Below(3));
    if (OneIn(4)) envelope.headers[std::string(kDedupIdHeader)] = std::string("d").append(std::to_string(Below(40)));
    std::string header;
    EncodeHeader(envelope, header);
    std::vector<zmq::message_t> payload;
    payload.emplace_back(header.data(), header.size());
    payload.emplace_back().copy(envelope.body);
    std::string exchange;
    std::string key;
    switch (Below(4)) {
      case 0: exchange = "fan"; break;
      case 1: exchange = "events"; key = Pick(std::vector<std::string>{"a.x", "a.y", "b.x"}); break;
      default: key = Pick(queues_); break;
    }
    std::uint64_t& seq = seqs_[producer];
    // Now and then a publish is sent again under its old pseq, as a client does after a restart.
    const std::uint64_t pseq = seq > 1 && OneIn(10) ? seq - Below(std::min<std::uint64_t>(seq, 5)) : seq + 1;
    ++seq;
    p::ArgsWriter args(7);
    args.Uint("seq", seq).Str("exchange", exchange).Str("key", key).Str("producer", producer)
        .Uint("pseq", pseq).Uint("delay_ms", OneIn(8) ? Below(5000) : 0).Uint("ttl_ms", OneIn(8) ? 1 + Below(8000) : 0);
    Client(producer, p::kPublish, args.Finish(), std::move(payload));
  }

  void Collect() {
    for (const Out& out : Take()) {
      if (out.command == p::kDeliver && out.args) held_[out.peer].push_back(Tag(out));
    }
  }

  void Settle() {
    std::vector<std::string> holding;
    for (const auto& [peer, tags] : held_) {
      if (!tags.empty()) holding.push_back(peer);
    }
    if (holding.empty()) return;
    const std::string& peer = Pick(holding);
    auto& tags = held_[peer];
    const std::size_t at = Below(tags.size());
    const std::uint64_t tag = tags[at];
    tags.erase(tags.begin() + static_cast<std::ptrdiff_t>(at));
    switch (Below(6)) {
      case 0: Nack(peer, tag, /*requeue=*/true); break;
      case 1: Nack(peer, tag, /*requeue=*/false); break;
      default: Ack(peer, tag); break;
    }
  }

  void Step() {
    const std::uint64_t roll = Below(100);
    if (roll < 40) {
      Publish();
    } else if (roll < 70) {
      Settle();
    } else if (roll < 78) {
      const std::string& consumer = Pick(consumers_);
      Consume(consumer, Pick(queues_), static_cast<std::uint32_t>(1 + Below(5)),
              std::string("c").append(std::to_string(Below(2))));
    } else if (roll < 82) {
      // A consumer leaves: what it held is taken back. Its tags are void from now on.
      const std::string& consumer = Pick(consumers_);
      Client(consumer, p::kBye, p::NoArgs());
      held_[consumer].clear();
    } else if (roll < 90) {
      Advance(std::chrono::milliseconds(Below(3000)));  // leases end, delays end, TTLs expire
    } else if (roll < 92) {
      Client("admin", p::kRedrive, p::ArgsWriter(1).Str("queue", Pick(queues_)).Finish());
    } else if (roll < 93) {
      Client("admin", p::kPurge, p::ArgsWriter(1).Str("queue", Pick(queues_)).Finish());
    } else if (roll < 96) {
      Client("admin", p::kDeclareQueue,
             p::ArgsWriter(4).Str("name", Pick(queues_)).Uint("max_attempts", 1 + Below(4))
                 .Uint("message_ttl_ms", OneIn(3) ? 1000 + Below(9000) : 0).Uint("ack_timeout_ms", 1000 + Below(5000))
                 .Finish());
    } else {
      const bool bind = !OneIn(3);
      Client("admin", bind ? p::kBind : p::kUnbind,
             p::ArgsWriter(3).Str("exchange", "events").Str("queue", Pick(queues_))
                 .Str("pattern", Pick(std::vector<std::string>{"a.*", "*.x", "#"})).Finish());
    }
    Collect();
  }

  // Everyone leaves, so no lease is left (a restart has none), and the snapshot is taken.
  void EndRun() {
    for (const std::string& peer : consumers_) Client(peer, p::kBye, p::NoArgs());
    for (const std::string& peer : producers_) Client(peer, p::kBye, p::NoArgs());
    Client("admin", p::kBye, p::NoArgs());
    Take();
  }

  std::unique_ptr<BrokerCore> Replayed(const std::vector<std::string>& records) {
    auto core = std::make_unique<BrokerCore>(options_, environment_);
    for (std::size_t i = 0; i < records.size(); ++i) {
      Status status = core->Replay(records[i], clock_.Now());
      EXPECT_TRUE(status.ok()) << "record " << i << ": " << status.ToString();
      if (!status.ok()) return nullptr;
    }
    return core;
  }

  void ExpectSameState(BrokerCore& replayed, const std::string& what) {
    SCOPED_TRACE(what);
    ASSERT_EQ(replayed.QueueNames(), core().QueueNames());
    for (const std::string& name : core().QueueNames()) {
      auto live = core().FindQueue(name)->Contents();
      auto rebuilt = replayed.FindQueue(name)->Contents();
      if (rebuilt != live && std::getenv("ZMQKIT_REPLAY_DUMP")) {
        for (const auto& m : live) std::cout << "live " << name << " #" << m.number << " " << m.body << " " << m.place << " p" << int(m.priority) << " a" << m.attempt << " " << m.history << "\n";
        for (const auto& m : rebuilt) std::cout << "rebuilt " << name << " #" << m.number << " " << m.body << " " << m.place << " p" << int(m.priority) << " a" << m.attempt << " " << m.history << "\n";
      }
      ASSERT_EQ(rebuilt.size(), live.size()) << name;
      for (std::size_t i = 0; i < live.size(); ++i) {
        ASSERT_EQ(rebuilt[i], live[i]) << name << " message " << i << ": live #" << live[i].number << " "
                                       << live[i].body << " " << live[i].place << " attempt "
                                       << live[i].attempt << ", rebuilt #" << rebuilt[i].number << " "
                                       << rebuilt[i].body << " " << rebuilt[i].place << " attempt "
                                       << rebuilt[i].attempt;
      }
    }
    // Exchanges, bindings, producers, numbering: all in the snapshot, byte for byte.
    const Snapshot live = Split(core().SnapshotRecords(clock_.Now()));
    const Snapshot rebuilt = Split(replayed.SnapshotRecords(clock_.Now()));
    EXPECT_EQ(rebuilt.state.size(), live.state.size());
    for (std::size_t i = 0; i < std::min(rebuilt.state.size(), live.state.size()); ++i) {
      if (rebuilt.state[i] == live.state[i]) continue;
      auto a = records::Decode(live.state[i]);
      auto b = records::Decode(rebuilt.state[i]);
      ADD_FAILURE() << "snapshot record " << i << " differs: live op " << int(a->op) << " queue " << a->queue
                    << " number " << a->number << " attempt " << a->attempt << " history " << a->history
                    << " next " << a->next_number << "; rebuilt op " << int(b->op) << " queue " << b->queue
                    << " number " << b->number << " attempt " << b->attempt << " history " << b->history
                    << " next " << b->next_number << "; publish: live " << a->targets.at(0).first << "#"
                    << a->targets.at(0).second << " at " << a->at_unix_us << " delay " << a->delay_us << " ttl "
                    << a->ttl_us << " body " << a->body << ", rebuilt " << b->targets.at(0).first << "#"
                    << b->targets.at(0).second << " at " << b->at_unix_us << " delay " << b->delay_us << " ttl "
                    << b->ttl_us << " body " << b->body << " now " << WallNow();
      break;
    }
    // Dedup ids: the same ones within the window. Housekeeping forgets older ones every so often,
    // which a replayed core has not run yet; either way an id older than the window stops nothing.
    EXPECT_EQ(rebuilt.dedup_ids, live.dedup_ids);
    EXPECT_GT(live.dedup_ids.size(), 0u);
  }

  struct Snapshot {
    std::vector<std::string> state;     // every record but the epoch's and the dedup ids'
    std::set<std::string> dedup_ids;    // "exchange/key/id@time", within the window
  };
  // The epoch is left out: a run's delivery tags carry its own (the journal only keeps later runs
  // from repeating it), which a core that has not started serving has not taken.
  Snapshot Split(const std::vector<std::string>& records) {
    Snapshot snapshot;
    const std::int64_t oldest = WallNow() - std::chrono::duration_cast<std::chrono::microseconds>(
                                                options_.dedup_window).count();
    for (const std::string& bytes : records) {
      auto record = records::Decode(bytes);
      EXPECT_TRUE(record.ok());
      if (!record.ok() || record->op == records::Op::kEpoch) continue;
      if (record->op != records::Op::kDedup) {
        snapshot.state.push_back(bytes);
      } else if (record->at_unix_us > oldest) {
        snapshot.dedup_ids.insert(record->exchange + "/" + record->routing_key + "/" + record->dedup_id + "@" +
                                  std::to_string(record->at_unix_us));
      }
    }
    return snapshot;
  }

  static constexpr std::int64_t kWallEpoch = 1'700'000'000'000'000;
  const std::uint64_t seed_;
  std::mt19937_64 random_;
  RecordingJournal journal_;
  const std::vector<std::string> queues_{"q0", "q1", "q2", "q3"};
  const std::vector<std::string> producers_{"p0", "p1", "p2"};
  const std::vector<std::string> consumers_{"c0", "c1", "c2", "c3"};
  std::map<std::string, std::uint64_t> seqs_;
  std::map<std::string, std::vector<std::uint64_t>> held_;
  std::uint64_t published_ = 0;
};

TEST_F(ReplayFoldTest, ARandomRunReplaysToTheLiveStateFromTheJournalAndFromASnapshot) {
  RecordProperty("seed", std::to_string(seed_));
  std::cout << "seed " << seed_ << " (ZMQKIT_REPLAY_SEED=" << seed_ << " replays it)\n";
  Client("admin", p::kDeclareExchange, p::ArgsWriter(2).Str("name", "fan").Str("type", "fanout").Finish());
  Client("admin", p::kDeclareExchange, p::ArgsWriter(2).Str("name", "events").Str("type", "topic").Finish());
  for (const char* queue : {"q1", "q2"}) {
    Client("admin", p::kBind, p::ArgsWriter(2).Str("exchange", "fan").Str("queue", queue).Finish());
  }
  Client("admin", p::kBind, p::ArgsWriter(3).Str("exchange", "events").Str("queue", "q0").Str("pattern", "a.*").Finish());
  Collect();
  const std::uint64_t steps = EnvOr("ZMQKIT_REPLAY_STEPS", 20000);
  std::vector<std::string> snapshot;
  std::size_t records_at_snapshot = 0;
  for (std::uint64_t step = 0; step < steps; ++step) {
    if (step == steps / 2) {
      // As compaction does, between two turns: the snapshot stands for every record before it.
      snapshot = core().SnapshotRecords(clock_.Now());
      records_at_snapshot = journal_.records.size();
    }
    Step();
  }
  EndRun();

  // The run did what it was meant to: messages settled, dead-lettered, redelivered, deduplicated.
  const BrokerCounters& counters = core().counters();
  EXPECT_GT(counters.duplicates, 0u);
  EXPECT_GT(counters.deliveries_taken_back, 0u);
  std::uint64_t dead = 0;
  for (const std::string& name : core().QueueNames()) {
    if (name.ends_with(".dlq")) dead += core().FindQueue(name)->size();
  }
  EXPECT_GT(dead, 0u) << "some messages ran out of attempts or expired";
  ASSERT_GT(journal_.records.size(), steps / 4);

  auto from_journal = Replayed(journal_.records);
  ASSERT_NE(from_journal, nullptr);
  ExpectSameState(*from_journal, "the whole journal");

  std::vector<std::string> compacted = snapshot;
  compacted.insert(compacted.end(), journal_.records.begin() + static_cast<std::ptrdiff_t>(records_at_snapshot),
                   journal_.records.end());
  auto from_snapshot = Replayed(compacted);
  ASSERT_NE(from_snapshot, nullptr);
  ExpectSameState(*from_snapshot, "a mid-run snapshot and the records after it");
}

}  // namespace
}  // namespace zmqkit::internal
