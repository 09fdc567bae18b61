// compare_patterns: what the processes of one run share — the patterns, the task body, the report
// a consumer sends for every task it sees, and the addresses they meet at.
#ifndef ZMQKIT_EXAMPLES_COMPARE_PATTERNS_COMMON_H_
#define ZMQKIT_EXAMPLES_COMPARE_PATTERNS_COMMON_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace compare {

enum class Pattern { kPushPull, kPushPullResend, kPubSub, kBrokerMemory, kBrokerDurable };

struct PatternInfo {
  Pattern pattern;
  std::string_view key;    // on the command line and in JSON
  std::string_view title;  // in the table
};

const std::vector<PatternInfo>& AllPatterns();
std::optional<Pattern> PatternFromKey(std::string_view key);
const PatternInfo& Info(Pattern pattern);
inline bool UsesBroker(Pattern pattern) {
  return pattern == Pattern::kBrokerMemory || pattern == Pattern::kBrokerDurable;
}

// The workload every pattern carries: tasks numbered 0..N-1. The body holds the number and the
// moment it was first sent (steady clock, which is CLOCK_MONOTONIC and so the same in every process
// on the machine), padded to the configured size. A resent task keeps its first send time, so its
// latency includes the time it took to recover.
std::string EncodeTask(std::uint64_t task, std::int64_t sent_ns, std::size_t size);
struct Task {
  std::uint64_t number;
  std::int64_t sent_ns;
};
std::optional<Task> DecodeTask(std::string_view body);

std::int64_t NowNs();

// What a consumer tells the collector for every task it receives, before it works on it.
struct Seen {
  std::uint64_t task;
  std::int64_t sent_ns;
  std::int64_t received_ns;
  std::uint32_t consumer;
  std::uint32_t attempt;  // as the pattern reports it (0 where it has no such notion)
};
std::string EncodeSeen(const Seen& seen);
std::optional<Seen> DecodeSeen(std::string_view bytes);

// Collector commands (consumer/producer DEALER -> orchestrator ROUTER, one frame each, then data).
inline constexpr std::string_view kReady = "ready";   // a consumer is connected and subscribed
inline constexpr std::string_view kSeen = "seen";     // + EncodeSeen()
inline constexpr std::string_view kDying = "dying";   // answered with "ok"; then the consumer dies
inline constexpr std::string_view kDone = "done";     // producer finished; + "key=value ..." text

// Where the processes of one pattern's run meet: ipc files in that run's directory.
struct Addresses {
  explicit Addresses(std::string run_dir);
  std::string dir;
  std::string collector;
  std::string tasks;        // PUSH/PULL, PUB/SUB, the ventilator's tasks
  std::string results;      // the sink's results
  std::string completions;  // the sink's reports to the ventilator
  std::string broker;       // the broker's client endpoint
  std::string broker_workers;
  std::string data_dir;
};

// The parameters a child process is started with.
struct RoleArgs {
  Pattern pattern = Pattern::kPushPull;
  std::string run_dir;
  std::uint32_t id = 0;           // consumer number, 1-based
  std::uint64_t tasks = 0;
  double rate = 0;                // tasks per second the producer aims for; 0: as fast as it can
  std::size_t body_size = 100;
  std::chrono::microseconds work{100};
  std::uint64_t die_after = 0;    // the consumer SIGKILLs itself on receiving its n-th task; 0: never
  std::uint32_t consumers_at_start = 2;  // the producer waits for these before sending
  std::vector<std::string> ToArgv(std::string_view role) const;
  static std::optional<RoleArgs> FromArgv(std::span<char*> args);
};

int RunProducer(const RoleArgs& args);
int RunConsumer(const RoleArgs& args);
int RunBroker(const RoleArgs& args);

// The sharding PUB/SUB uses to spread tasks over consumers: task n goes to topic "shard.<n%3+1>".
inline constexpr std::uint32_t kShards = 3;
std::string ShardTopic(std::uint64_t task);

inline constexpr std::chrono::milliseconds kHeartbeat{100};
inline constexpr std::uint32_t kPrefetch = 50;

}  // namespace compare

#endif  // ZMQKIT_EXAMPLES_COMPARE_PATTERNS_COMMON_H_
