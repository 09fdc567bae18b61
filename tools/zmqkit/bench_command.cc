// zmqkit bench: the flags of the benchmark (bench.h runs it).
#include "bench.h"
#include "cli.h"

namespace zmqkit::cli {
namespace {

class Bench final : public Subcommand {
 public:
  explicit Bench(CLI::App& parent) {
    app_ = parent.add_subcommand(
        "bench", "measure throughput, latency, recovery and memory against raw libzmq and the disk");
    app_->add_option("--size", options_.size, "message body bytes")->capture_default_str();
    app_->add_option("--messages", options_.messages, "messages per brokerless run")->capture_default_str();
    app_->add_option("--broker-messages", options_.broker_messages, "messages per broker run")
        ->capture_default_str();
    app_->add_option("--backlog", options_.backlog, "messages queued for the backlog, memory and recovery runs")
        ->capture_default_str();
    app_->add_option("--latency-samples", options_.latency_samples)->capture_default_str();
    app_->add_option("--publish-batch", options_.publish_batch,
                     "envelopes per PublishBatch() call in the batched broker runs")
        ->capture_default_str()
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100000}));
    app_->add_option("--min-sync-interval-us", options_.min_sync_interval_us,
                     "the durable brokers' min_sync_interval (zmqkit-broker --min-sync-interval-us); "
                     "-1: the broker's default")
        ->check(CLI::Range(std::int64_t{-1}, std::int64_t{1'000'000}))
        ->capture_default_str();
    app_->add_option("--data-dir", options_.data_dir, "where the disk and the durable broker are measured")
        ->capture_default_str();
    app_->add_option("--only", options_.only,
                     "only these steps, comma-separated: limits disk brokerless broker idle backlog scaling latency recovery");
    app_->add_flag("--quick", options_.quick, "small counts: a smoke run of a few seconds");
  }

  int Run(const Common& common) override {
    options_.json = common.json;
    return tools::RunBench(options_);
  }

 private:
  tools::BenchOptions options_;
};

}  // namespace

std::unique_ptr<Subcommand> MakeBench(CLI::App& parent) { return std::make_unique<Bench>(parent); }

}  // namespace zmqkit::cli
