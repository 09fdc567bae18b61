// zmqkit bench: how close each layer comes to its physical limit, measured in one run.
#ifndef ZMQKIT_TOOLS_ZMQKIT_BENCH_H_
#define ZMQKIT_TOOLS_ZMQKIT_BENCH_H_

#include <cstdint>
#include <string>

namespace zmqkit::tools {

struct BenchOptions {
  std::size_t size = 100;                   // body bytes
  std::uint64_t messages = 1'000'000;       // per brokerless run
  std::uint64_t broker_messages = 300'000;  // per broker end-to-end run
  std::uint64_t backlog = 1'000'000;        // queued with no consumer; also recovery and memory
  std::uint64_t latency_samples = 10'000;
  std::uint64_t publish_batch = 100;        // envelopes per PublishBatch() in the batched runs
  std::int64_t min_sync_interval_us = -1;   // the durable brokers' min_sync_interval; -1: default
  std::string data_dir = ".";               // where the disk and the durable broker are measured
  std::string only;                         // run only the sections whose name contains this
  bool quick = false;                       // CI's smoke run: small counts, seconds in all
  bool json = false;
};

// Runs the benchmarks, prints the table (or JSON) on stdout and progress on stderr. 0 if every
// measurement ran, 1 if one failed (it is reported and the rest still run).
int RunBench(BenchOptions options);

}  // namespace zmqkit::tools

#endif  // ZMQKIT_TOOLS_ZMQKIT_BENCH_H_
