// zmqkit queues: depths, consumers, DLQ and totals of every queue, once or refreshed with rates.
// zmqkit counters: the broker's own counters.
#include <iomanip>
#include <iostream>
#include <map>
#include <thread>

#include "cli.h"
#include "json.h"

namespace zmqkit::cli {
namespace {

using tools::JsonString;

class Queues final : public Subcommand {
 public:
  explicit Queues(CLI::App& parent) {
    app_ = parent.add_subcommand("queues", "list queues: depths, consumers, DLQ, totals");
    app_->add_option("--watch", watch_s_, "refresh every N seconds, with rates");
    app_->add_option("--iterations", iterations_, "with --watch: stop after N refreshes")->group("");
  }

  int Run(const Common& common) override {
    zmq::context_t context;
    auto client = Connect(context, common);
    std::map<std::string, std::map<std::string, std::uint64_t>> previous;
    for (int round = 0; iterations_ <= 0 || round < iterations_; ++round) {
      auto stats = client->Stats();
      if (!stats.ok()) return FailWith(stats.error(), common);
      if (common.json) {
        PrintJson(*stats);
      } else {
        PrintTable(*stats, previous);
      }
      if (watch_s_ <= 0) break;
      std::this_thread::sleep_for(Millis(watch_s_));
    }
    return 0;
  }

 private:
  static void PrintJson(const std::vector<QueueStats>& stats) {
    std::cout << "[";
    for (std::size_t i = 0; i < stats.size(); ++i) {
      const auto& queue = stats[i];
      std::cout << (i ? "," : "") << "{\"name\":" << JsonString(queue.name);
      for (const auto& [key, value] : queue.values) std::cout << "," << JsonString(key) << ":" << value;
      std::cout << "}";
    }
    std::cout << "]" << std::endl;
  }

  void PrintTable(std::vector<QueueStats>& stats,
                  std::map<std::string, std::map<std::string, std::uint64_t>>& previous) const {
    if (watch_s_ > 0 && Interactive()) std::cout << "\x1b[H\x1b[2J";
    std::cout << std::left << std::setw(24) << "QUEUE" << std::right << std::setw(9) << "READY"
              << std::setw(10) << "IN-FLIGHT" << std::setw(8) << "DELAYED" << std::setw(10)
              << "CONSUMERS" << std::setw(6) << "DLQ" << std::setw(11) << "PUBLISHED"
              << std::setw(11) << "DELIVERED" << std::setw(10) << "ACKED";
    if (watch_s_ > 0) std::cout << std::setw(10) << "IN/s" << std::setw(10) << "ACK/s";
    std::cout << "\n";
    for (auto& queue : stats) {
      auto& v = queue.values;
      std::cout << std::left << std::setw(24) << queue.name << std::right << std::setw(9)
                << v["ready"] << std::setw(10) << v["in_flight"] << std::setw(8) << v["delayed"]
                << std::setw(10) << v["consumers"] << std::setw(6) << v["dlq_depth"]
                << std::setw(11) << v["published"] << std::setw(11) << v["delivered"]
                << std::setw(10) << v["acked"];
      if (watch_s_ > 0) {
        auto& before = previous[queue.name];
        auto rate = [&](const char* key) {
          return before.empty() ? 0.0 : static_cast<double>(v[key] - before[key]) / watch_s_;
        };
        std::cout << std::setw(10) << std::fixed << std::setprecision(0) << rate("published")
                  << std::setw(10) << rate("acked");
        before = v;
      }
      std::cout << "\n";
    }
    if (stats.empty()) std::cout << "(no queues)\n";
    std::cout << std::flush;
  }

  double watch_s_ = 0;
  int iterations_ = 0;
};

class Counters final : public Subcommand {
 public:
  explicit Counters(CLI::App& parent) {
    app_ = parent.add_subcommand(
        "counters", "the broker's own counters: messages in, malformed, forbidden, refused "
                    "connections, sessions");
  }

  int Run(const Common& common) override {
    zmq::context_t context;
    auto client = Connect(context, common);
    auto values = client->ServerCounters();
    if (!values.ok()) return FailWith(values.error(), common);
    if (common.json) {
      std::cout << "{";
      for (auto it = values->begin(); it != values->end(); ++it) {
        std::cout << (it == values->begin() ? "" : ",") << JsonString(it->first) << ":" << it->second;
      }
      std::cout << "}\n";
    } else {
      for (const auto& [key, value] : *values) {
        std::cout << std::left << std::setw(24) << key << value << "\n";
      }
    }
    return 0;
  }
};

}  // namespace

std::unique_ptr<Subcommand> MakeQueues(CLI::App& parent) { return std::make_unique<Queues>(parent); }
std::unique_ptr<Subcommand> MakeCounters(CLI::App& parent) { return std::make_unique<Counters>(parent); }

}  // namespace zmqkit::cli
