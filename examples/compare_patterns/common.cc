#include "common.h"

#include <cstring>
#include <stdexcept>

namespace compare {
namespace {

template <typename T>
void Put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

template <typename T>
T Get(std::string_view bytes, std::size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

}  // namespace

const std::vector<PatternInfo>& AllPatterns() {
  static const std::vector<PatternInfo> patterns = {
      {Pattern::kPushPull, "push-pull", "PUSH/PULL"},
      {Pattern::kPushPullResend, "push-pull-resend", "PUSH/PULL + sink + resend"},
      {Pattern::kPubSub, "pub-sub", "PUB/SUB (sharded topics)"},
      {Pattern::kBrokerMemory, "broker-memory", "broker, in memory"},
      {Pattern::kBrokerDurable, "broker-durable", "broker, durable (fsync batch)"},
  };
  return patterns;
}

std::optional<Pattern> PatternFromKey(std::string_view key) {
  for (const auto& info : AllPatterns()) {
    if (info.key == key) return info.pattern;
  }
  return std::nullopt;
}

const PatternInfo& Info(Pattern pattern) {
  for (const auto& info : AllPatterns()) {
    if (info.pattern == pattern) return info;
  }
  throw std::logic_error("unknown pattern");
}

std::string EncodeTask(std::uint64_t task, std::int64_t sent_ns, std::size_t size) {
  std::string body;
  body.reserve(std::max<std::size_t>(size, 16));
  Put(body, task);
  Put(body, sent_ns);
  if (body.size() < size) body.resize(size, '.');
  return body;
}

std::optional<Task> DecodeTask(std::string_view body) {
  if (body.size() < 16) return std::nullopt;
  return Task{Get<std::uint64_t>(body, 0), Get<std::int64_t>(body, 8)};
}

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string EncodeSeen(const Seen& seen) {
  std::string out;
  Put(out, seen.task);
  Put(out, seen.sent_ns);
  Put(out, seen.received_ns);
  Put(out, seen.consumer);
  Put(out, seen.attempt);
  return out;
}

std::optional<Seen> DecodeSeen(std::string_view bytes) {
  if (bytes.size() != 32) return std::nullopt;
  return Seen{Get<std::uint64_t>(bytes, 0), Get<std::int64_t>(bytes, 8),
              Get<std::int64_t>(bytes, 16), Get<std::uint32_t>(bytes, 24),
              Get<std::uint32_t>(bytes, 28)};
}

Addresses::Addresses(std::string run_dir) : dir(std::move(run_dir)) {
  auto ipc = [&](std::string_view name) { return "ipc://" + dir + "/" + std::string(name); };
  collector = ipc("collector");
  tasks = ipc("tasks");
  results = ipc("results");
  completions = ipc("completions");
  broker = ipc("broker");
  broker_workers = ipc("broker-workers");
  data_dir = dir + "/data";
}

std::string ShardTopic(std::uint64_t task) {
  return std::string("shard.").append(std::to_string(task % kShards + 1));
}

std::vector<std::string> RoleArgs::ToArgv(std::string_view role) const {
  return {"--role",      std::string(role),
          std::string(Info(pattern).key),
          run_dir,
          std::to_string(id),
          std::to_string(tasks),
          std::to_string(rate),
          std::to_string(body_size),
          std::to_string(work.count()),
          std::to_string(die_after),
          std::to_string(consumers_at_start)};
}

// The inverse of ToArgv, given what follows the role name. Only this program writes these
// command lines, so a mismatch is a bug here, reported as "no".
std::optional<RoleArgs> RoleArgs::FromArgv(std::span<char*> args) {
  if (args.size() != 9) return std::nullopt;
  auto pattern = PatternFromKey(args[0]);
  if (!pattern) return std::nullopt;
  try {
    RoleArgs parsed;
    parsed.pattern = *pattern;
    parsed.run_dir = args[1];
    parsed.id = static_cast<std::uint32_t>(std::stoul(args[2]));
    parsed.tasks = std::stoull(args[3]);
    parsed.rate = std::stod(args[4]);
    parsed.body_size = std::stoull(args[5]);
    parsed.work = std::chrono::microseconds(std::stoll(args[6]));
    parsed.die_after = std::stoull(args[7]);
    parsed.consumers_at_start = static_cast<std::uint32_t>(std::stoul(args[8]));
    return parsed;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace compare
