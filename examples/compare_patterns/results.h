// compare_patterns: turning what the consumers reported into the figures of one row, and the rows
// into a table, JSON and an SVG chart.
#ifndef ZMQKIT_EXAMPLES_COMPARE_PATTERNS_RESULTS_H_
#define ZMQKIT_EXAMPLES_COMPARE_PATTERNS_RESULTS_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "common.h"

namespace compare {

// Counts the reports of one pattern's run, as they arrive.
class Tally {
 public:
  explicit Tally(std::uint64_t tasks);
  void Add(const Seen& seen);

  std::uint64_t tasks() const { return tasks_; }
  std::uint64_t distinct() const { return distinct_; }
  std::uint64_t reports() const { return reports_; }
  std::uint64_t duplicates() const { return reports_ - distinct_; }
  // First deliveries that reached their consumer after a task sent later had reached it.
  std::uint64_t out_of_order() const { return out_of_order_; }
  // Latency (ms) of each task's first delivery: from its first send to its receipt.
  double LatencyPercentileMs(double percentile) const;
  // Distinct tasks delivered per second, from the first send to the last first delivery.
  double Throughput() const;
  std::uint64_t foreign() const { return foreign_; }  // reports of tasks outside 0..N-1

 private:
  std::uint64_t tasks_;
  std::vector<bool> seen_;
  std::uint64_t distinct_ = 0;
  std::uint64_t reports_ = 0;
  std::uint64_t out_of_order_ = 0;
  std::uint64_t foreign_ = 0;
  std::map<std::uint32_t, std::uint64_t> highest_by_consumer_;
  std::vector<std::int64_t> latencies_ns_;
  std::int64_t first_sent_ns_ = 0;
  std::int64_t last_first_delivery_ns_ = 0;
};

// One row of the comparison.
struct Row {
  Pattern pattern;
  std::uint64_t sent = 0;
  std::uint64_t delivered = 0;  // distinct tasks some consumer saw
  std::uint64_t lost = 0;       // sent - delivered
  std::uint64_t duplicated = 0;
  std::uint64_t out_of_order = 0;
  double throughput = 0;        // tasks/s
  double p50_ms = 0;
  double p99_ms = 0;
  double seconds = 0;           // the run, start to end
  std::map<std::string, std::uint64_t> producer;  // what the producer said when done
  std::vector<std::string> faults;               // what was done to this run, in order
  std::string verdict;                           // the one sentence
  std::string failure;                           // why the run could not be carried out, if so
  bool baseline = false;                         // run without faults
};

// Sets the row's figures (sent ... p99) from what the consumers reported.
void AddFigures(const Tally& tally, Row& row);
// The sentence for a row, from its figures.
std::string Verdict(const Row& row);

void PrintTable(std::ostream& out, const std::vector<Row>& rows, std::uint64_t tasks, double rate);
void PrintJson(std::ostream& out, const std::vector<Row>& rows, std::uint64_t tasks, double rate);
void WriteSvg(std::ostream& out, const std::vector<Row>& rows, std::uint64_t tasks);

}  // namespace compare

#endif  // ZMQKIT_EXAMPLES_COMPARE_PATTERNS_RESULTS_H_
