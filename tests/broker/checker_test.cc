// The delivery contract under random faults, checked from the clients' own records, in the style of
// Jepsen's queue checkers.
//
// Workload: publishers with confirms (idempotent, as every BrokerClient), and consumers with acks —
// one prompt, one slow that holds deliveries across faults and acks them late (tags from before a
// restart), one that stops reading now and then. Faults, at random from a seed: SIGKILL of the
// broker (a child process) and restart, SIGSTOP/SIGCONT, a byte flipped in the journal or its tail
// cut off while the broker is down (then a start that refuses and one with --salvage). At the end
// the broker is restarted once more and everything left is drained.
//
// The analysis uses what the clients recorded, and what the fault injector knows it destroyed:
//   lost      confirmed, never delivered, and not in a record the injector destroyed   must be 0
//   settled   delivered, never acked by a holder, gone at the end, not destroyed       must be 0
//   invented  delivered, never published                                               must be 0
//   copies    delivered twice in the final drain (two copies stored)                   must be 0
//   repeats   deliveries beyond the first, within the documented bound per fault
// and every start after damage must have salvaged and said how many messages it lost.
//
// CI: ZMQKIT_CHECKER_FAULTS (default 50) faults from a seed printed with the result;
// ZMQKIT_CHECKER_SEED=<seed> replays one, ZMQKIT_CHECKER_FAULTS=2000 soaks.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "broker/core/journal_records.h"
#include "helpers/test_support.h"
#include "storage/file.h"
#include "storage/journal_reader.h"
#include "zmqkit/broker_client.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kPrefetch = 20;
constexpr int kConsumers = 3;
constexpr std::size_t kBatchRecords = 1000;  // the broker's group-commit bound (broker.cc)

// Everything the clients saw, and what the fault injector destroyed.
struct History {
  std::mutex mutex;
  std::set<std::string> published;     // handed to Publish
  std::set<std::string> confirmed;
  std::set<std::string> rejected;      // refused for good (not outcome-unknown)
  std::map<std::string, int> delivered;
  std::set<std::string> acked;         // a holder sent an ack for a delivery of it
  std::map<std::string, int> drained;  // delivered in the final drain
  std::set<std::string> destroyed;     // its publish record was in bytes the injector changed
  std::uint64_t stale_acks_refused = 0;  // acks the client refused: from before a restart
  std::uint64_t republished = 0;
  std::vector<std::string> salvages;   // what each salvaged start said
  std::map<std::string, int> faults;
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class Checker {
 public:
  Checker(testing::TempDir& dir, std::uint64_t seed) : dir_(dir), random_(seed) {}

  void Run(int faults) {
    ASSERT_NO_FATAL_FAILURE(StartBroker());
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    // The clients stop and are joined however this ends, a failed assertion included.
    struct Joiner {
      std::atomic<bool>& stop;
      std::vector<std::thread>& threads;
      ~Joiner() {
        stop = true;
        for (std::thread& thread : threads) thread.join();
      }
    } joiner{stop, threads};
    for (int p = 0; p < 2; ++p) threads.emplace_back([this, p, &stop] { Publish(p, stop); });
    for (int c = 0; c < kConsumers; ++c) threads.emplace_back([this, c, &stop] { Consume(c, stop); });
    for (int fault = 0; fault < faults; ++fault) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50 + random_() % 250));
      ASSERT_NO_FATAL_FAILURE(InjectFault());
    }
    std::this_thread::sleep_for(300ms);
    stop = true;
    for (std::thread& thread : threads) thread.join();
    threads.clear();
    ASSERT_NO_FATAL_FAILURE(Drain());
  }

  History& history() { return history_; }

 private:
  BrokerClientOptions ClientOptions() const {
    BrokerClientOptions options;
    options.heartbeat_interval = 200ms;
    options.request_timeout = 2s;
    options.socket.linger = 0ms;
    return options;
  }

  // Starts the broker; if it refuses (damage), starts it again with --salvage and keeps what it
  // said. Returns once it answers.
  void StartBroker() {
    for (bool salvage : {false, true}) {
      const std::string log = (dir_.path() / "broker.log").string();
      std::filesystem::remove(log);
      std::string command = "exec '" + std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker' --clients '" +
                            clients_ + "' --workers '" + testing::IpcAddress(dir_, "w") +
                            "' --heartbeat-ms 200 --retry-delay-ms 0 --max-attempts 0 --data-dir '" +
                            data_ + "' --fsync batch" + (salvage ? " --salvage" : "") + " 2>>'" + log + "'";
      broker_ = std::make_unique<testing::ChildProcess>("/bin/sh", std::vector<std::string>{"-c", command});
      zmq::context_t context;
      BrokerClient probe(context, Endpoint::Connect(clients_), ClientOptions());
      bool up = false;
      const auto give_up = std::chrono::steady_clock::now() + 30s;
      while (!up && std::chrono::steady_clock::now() < give_up) {
        if (broker_->Wait(0ms)) break;  // exited: refused to start
        up = probe.ServerCounters().ok();
      }
      const std::string said = ReadFile(log);
      if (up) {
        if (auto at = said.find("SALVAGED"); at != std::string::npos) {
          std::lock_guard lock(history_.mutex);
          history_.salvages.push_back(said.substr(at, said.find('\n', at) - at));
        }
        damaged_ = false;
        return;
      }
      ASSERT_FALSE(salvage) << "did not start even with --salvage: " << said;
      ASSERT_TRUE(damaged_) << "refused to start though nothing was damaged: " << said;
      ASSERT_NE(said.find("--salvage"), std::string::npos) << said;
    }
  }

  void Kill() {
    broker_->Signal(SIGCONT);  // a stopped broker dies too, but only once it runs
    broker_->Signal(SIGKILL);
    ASSERT_TRUE(broker_->Wait(10s));
  }

  void InjectFault() {
    const unsigned kind = random_() % 100;
    std::string name;
    if (kind < 35) {
      name = "kill";
      ASSERT_NO_FATAL_FAILURE(Kill());
      ASSERT_NO_FATAL_FAILURE(StartBroker());
    } else if (kind < 65) {
      name = "stop";
      broker_->Signal(SIGSTOP);
      std::this_thread::sleep_for(std::chrono::milliseconds(100 + random_() % 900));
      broker_->Signal(SIGCONT);
    } else if (kind < 80) {
      name = "kill+flip";
      ASSERT_NO_FATAL_FAILURE(Kill());
      DamageJournal(/*truncate=*/false);
      ASSERT_NO_FATAL_FAILURE(StartBroker());
    } else if (kind < 90) {
      name = "kill+truncate";
      ASSERT_NO_FATAL_FAILURE(Kill());
      DamageJournal(/*truncate=*/true);
      ASSERT_NO_FATAL_FAILURE(StartBroker());
    } else {
      name = "consumer-stall";
      stall_[random_() % kConsumers] = true;
    }
    std::lock_guard lock(history_.mutex);
    ++history_.faults[name];
  }

  // Flips a byte of the newest segment, or cuts its tail off, and notes the messages whose publish
  // records that destroyed (read with the broker's own reader before the damage).
  void DamageJournal(bool truncate) {
    std::vector<std::uint64_t> numbers;
    for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(data_) / "journal")) {
      if (entry.path().extension() == ".zkj") numbers.push_back(std::stoull(entry.path().stem()));
    }
    if (numbers.empty()) return;
    std::sort(numbers.begin(), numbers.end());
    char name[32];
    std::snprintf(name, sizeof name, "%06llu.zkj", static_cast<unsigned long long>(numbers.back()));
    const auto segment = std::filesystem::path(data_) / "journal" / name;
    const std::uint64_t size = std::filesystem::file_size(segment);
    if (size < 200) return;
    // Where each logical record starts (and so where the one before it ends).
    std::vector<std::pair<std::uint64_t, std::string>> records;
    {
      auto file = internal::PosixSequentialFile::Open(segment);
      ASSERT_TRUE(file.ok());
      internal::JournalReader reader(file->get(), nullptr);
      std::string record;
      std::uint64_t offset = 0;
      while (reader.ReadRecord(&record, &offset)) records.emplace_back(offset, record);
    }
    if (records.size() < 2) return;
    auto destroy = [&](std::size_t index) {
      auto decoded = internal::records::Decode(records[index].second);
      if (!decoded.ok() || decoded->op != internal::records::Op::kPublish) return;
      std::lock_guard lock(history_.mutex);
      history_.destroyed.insert(decoded->body);
    };
    if (truncate) {
      // Somewhere in the last 4 KiB, past the segment header.
      const std::uint64_t lowest = std::max<std::uint64_t>(records[1].first, size > 4096 ? size - 4096 : 0);
      const std::uint64_t cut = lowest + random_() % (size - lowest);
      for (std::size_t i = 0; i < records.size(); ++i) {
        const std::uint64_t end = i + 1 < records.size() ? records[i + 1].first : size;
        if (end > cut) destroy(i);
      }
      std::filesystem::resize_file(segment, cut);
      // A cut tail is what a crash leaves: no refusal is due.
      return;
    }
    const std::uint64_t at = records[1].first + random_() % (size - records[1].first);
    std::size_t index = 0;
    while (index + 1 < records.size() && records[index + 1].first <= at) ++index;
    destroy(index);
    std::string bytes = ReadFile(segment);
    bytes[at] = static_cast<char>(bytes[at] ^ 0x40);
    std::ofstream out(segment, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    // Damage with nothing after it (the last record) reads as a torn tail, legitimately.
    damaged_ = index + 1 < records.size();
  }

  void Publish(int publisher, std::atomic<bool>& stop) {
    zmq::context_t context;
    BrokerClient client(context, Endpoint::Connect(clients_), ClientOptions());
    std::map<std::uint64_t, std::string> body_of;
    for (std::uint64_t n = 0; !stop; ++n) {
      std::string body = "p" + std::to_string(publisher) + "-" + std::to_string(n);
      auto seq = client.Publish("work", body);
      if (!seq.ok()) continue;
      body_of[*seq] = body;
      {
        std::lock_guard lock(history_.mutex);
        history_.published.insert(body);
      }
      if (n % 20 == 0) (void)client.WaitForConfirms(0ms);
      std::this_thread::sleep_for(1ms);
    }
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    while (client.unconfirmed() > 0 && std::chrono::steady_clock::now() < give_up) {
      (void)client.WaitForConfirms(1s);
    }
    std::set<std::uint64_t> refused, unknown;
    for (const Rejection& rejection : client.TakeRejections()) {
      (rejection.code == "outcome-unknown" ? unknown : refused).insert(rejection.seq);
    }
    const std::uint64_t settled = client.settled_through();
    std::lock_guard lock(history_.mutex);
    history_.republished += client.republished();
    for (const auto& [seq, body] : body_of) {
      if (refused.contains(seq)) {
        history_.rejected.insert(body);
      } else if (seq <= settled && !unknown.contains(seq)) {
        history_.confirmed.insert(body);
      }
    }
  }

  void Consume(int consumer, std::atomic<bool>& stop) {
    zmq::context_t context;
    BrokerClient client(context, Endpoint::Connect(clients_), ClientOptions());
    while (!stop && !client.Consume("work", kPrefetch).ok()) {
    }
    std::mt19937 random(static_cast<std::uint32_t>(consumer) * 7919u);
    std::vector<std::pair<std::uint64_t, std::string>> held;  // the slow one's, acked late
    auto ack = [&](std::uint64_t tag, const std::string& body) {
      Status acked = client.Ack(tag);
      std::lock_guard lock(history_.mutex);
      if (acked.ok()) {
        history_.acked.insert(body);
      } else if (acked.code() == StatusCode::kFailedPrecondition) {
        ++history_.stale_acks_refused;
      }
    };
    while (!stop) {
      if (stall_[consumer].exchange(false)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500 + random() % 1500));  // stops reading
      }
      auto delivery = client.Receive(20ms);
      if (!delivery.ok()) continue;
      std::string body(delivery->envelope.body_view());
      {
        std::lock_guard lock(history_.mutex);
        ++history_.delivered[body];
      }
      if (consumer == 1) {
        // Slow: holds a few, acks the oldest later — often across a fault, with a tag from
        // before a restart.
        held.emplace_back(delivery->tag, body);
        if (held.size() > 8) {
          ack(held.front().first, held.front().second);
          held.erase(held.begin());
        }
        std::this_thread::sleep_for(2ms);
        continue;
      }
      ack(delivery->tag, body);
    }
    for (const auto& [tag, body] : held) ack(tag, body);
  }

  void Drain() {
    Kill();
    ASSERT_NO_FATAL_FAILURE(StartBroker());
    zmq::context_t context;
    BrokerClient client(context, Endpoint::Connect(clients_), ClientOptions());
    ASSERT_TRUE(testing::WaitUntil([&] { return client.Consume("work", 1000).ok(); }, 30s));
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < give_up) {
      auto delivery = client.Receive(300ms);
      if (delivery.ok()) {
        std::lock_guard lock(history_.mutex);
        ++history_.drained[std::string(delivery->envelope.body_view())];
        (void)client.Ack(delivery->tag);
        continue;
      }
      auto stats = client.Stats("work");
      if (!stats.ok()) continue;
      auto& values = stats->at(0).values;
      if (values["ready"] + values["in_flight"] + values["delayed"] == 0) break;
    }
    broker_->Signal(SIGTERM);
    (void)broker_->Wait(10s);
  }

  testing::TempDir& dir_;
  std::mt19937 random_;
  std::string clients_ = testing::IpcAddress(dir_, "clients");
  std::string data_ = (dir_.path() / "data").string();
  std::unique_ptr<testing::ChildProcess> broker_;
  bool damaged_ = false;  // the journal holds damage the next start must refuse
  std::atomic<bool> stall_[kConsumers] = {};
  History history_;
};

int EnvInt(const char* name, int fallback) {
#if defined(__SANITIZE_ADDRESS__)
  fallback = std::min(fallback, 15);  // several times slower; the Release run in CI does 50
#endif
  const char* value = std::getenv(name);
  return value ? std::atoi(value) : fallback;
}

TEST(CheckerTest, TheDeliveryContractHoldsUnderRandomFaults) {
  const int faults = EnvInt("ZMQKIT_CHECKER_FAULTS", 50);
  const std::uint64_t seed = std::getenv("ZMQKIT_CHECKER_SEED")
                                 ? std::strtoull(std::getenv("ZMQKIT_CHECKER_SEED"), nullptr, 10)
                                 : std::random_device{}();
  std::printf("[checker] seed %llu (replay: ZMQKIT_CHECKER_SEED=%llu), %d faults\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed), faults);
  testing::TempDir dir;
  Checker checker(dir, seed);
  ASSERT_NO_FATAL_FAILURE(checker.Run(faults)) << "seed " << seed;
  History& h = checker.history();

  auto delivered = [&](const std::string& body) {
    return h.delivered.contains(body) || h.drained.contains(body);
  };
  std::size_t lost = 0, lost_to_damage = 0, settled_wrongly = 0, invented = 0, copies = 0, repeats = 0;
  std::vector<std::string> examples;
  for (const std::string& body : h.confirmed) {
    if (delivered(body)) continue;
    if (h.destroyed.contains(body)) {
      ++lost_to_damage;  // the injected disk damage took its record: not the broker's doing
      continue;
    }
    ++lost;
    if (examples.size() < 5) examples.push_back("lost " + body);
  }
  for (const auto& [body, times] : h.delivered) {
    if (!h.published.contains(body)) ++invented;
    repeats += static_cast<std::size_t>(times - 1);
    const bool gone = !h.drained.contains(body);
    if (gone && !h.acked.contains(body) && !h.destroyed.contains(body)) {
      ++settled_wrongly;
      if (examples.size() < 10) examples.push_back("settled without an ack: " + body);
    }
  }
  for (const auto& [body, times] : h.drained) {
    if (!h.published.contains(body)) ++invented;
    copies += static_cast<std::size_t>(times - 1);
    if (h.delivered.contains(body)) ++repeats;
  }
  std::string faults_seen;
  for (const auto& [name, count] : h.faults) faults_seen += " " + name + "=" + std::to_string(count);
  std::printf("[checker] seed %llu faults:%s\n[checker] published=%zu confirmed=%zu rejected=%zu "
              "delivered=%zu drained=%zu destroyed-by-injector=%zu republished=%llu "
              "stale-acks-refused=%llu salvaged-starts=%zu\n"
              "[checker] lost=%zu (and %zu to injected damage) settled-without-ack=%zu invented=%zu "
              "copies=%zu repeats=%zu\n",
              static_cast<unsigned long long>(seed), faults_seen.c_str(), h.published.size(),
              h.confirmed.size(), h.rejected.size(), h.delivered.size(), h.drained.size(),
              h.destroyed.size(), static_cast<unsigned long long>(h.republished),
              static_cast<unsigned long long>(h.stale_acks_refused), h.salvages.size(), lost,
              lost_to_damage, settled_wrongly, invented, copies, repeats);
  for (const std::string& salvage : h.salvages) std::printf("[checker]   %s\n", salvage.c_str());
  for (const std::string& example : examples) std::printf("[checker]   %s\n", example.c_str());
  ASSERT_GT(h.confirmed.size(), 0u) << "the load never got going";
  EXPECT_EQ(lost, 0u) << "seed " << seed;
  EXPECT_EQ(settled_wrongly, 0u) << "seed " << seed;
  EXPECT_EQ(invented, 0u) << "seed " << seed;
  EXPECT_EQ(copies, 0u) << "seed " << seed;
  // Each fault may repeat what consumers held (prefetch each) and one unwritten group commit of
  // acks (docs/broker.md, "Duplicates, bounded").
  const std::size_t per_fault = kConsumers * kPrefetch + kBatchRecords;
  EXPECT_LE(repeats, static_cast<std::size_t>(faults) * per_fault) << "seed " << seed;
  for (const std::string& salvage : h.salvages) {
    EXPECT_NE(salvage.find("message(s)"), std::string::npos) << "a salvage without a count: " << salvage;
  }
}

}  // namespace
}  // namespace zmqkit
