#include "results.h"

#include "json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

namespace compare {

using zmqkit::tools::JsonString;

Tally::Tally(std::uint64_t tasks) : tasks_(tasks), seen_(tasks, false) {
  latencies_ns_.reserve(tasks);
}

void Tally::Add(const Seen& seen) {
  if (seen.task >= tasks_) {
    ++foreign_;
    return;
  }
  ++reports_;
  if (seen_[seen.task]) return;
  seen_[seen.task] = true;
  ++distinct_;
  auto [highest, first] = highest_by_consumer_.try_emplace(seen.consumer, seen.task);
  if (!first) {
    if (seen.task < highest->second) ++out_of_order_;
    highest->second = std::max(highest->second, seen.task);
  }
  latencies_ns_.push_back(seen.received_ns - seen.sent_ns);
  if (first_sent_ns_ == 0 || seen.sent_ns < first_sent_ns_) first_sent_ns_ = seen.sent_ns;
  last_first_delivery_ns_ = std::max(last_first_delivery_ns_, seen.received_ns);
}

double Tally::LatencyPercentileMs(double percentile) const {
  if (latencies_ns_.empty()) return 0;
  std::vector<std::int64_t> sorted = latencies_ns_;
  const auto rank = static_cast<std::size_t>(
      std::ceil(percentile / 100.0 * static_cast<double>(sorted.size())));
  const std::size_t index = std::clamp<std::size_t>(rank, 1, sorted.size()) - 1;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(index), sorted.end());
  return static_cast<double>(sorted[index]) / 1e6;
}

double Tally::Throughput() const {
  const std::int64_t span = last_first_delivery_ns_ - first_sent_ns_;
  if (distinct_ == 0 || span <= 0) return 0;
  return static_cast<double>(distinct_) * 1e9 / static_cast<double>(span);
}

void AddFigures(const Tally& tally, Row& row) {
  row.sent = tally.tasks();
  row.delivered = tally.distinct();
  row.lost = tally.tasks() - tally.distinct();
  row.duplicated = tally.duplicates();
  row.out_of_order = tally.out_of_order();
  row.throughput = tally.Throughput();
  row.p50_ms = tally.LatencyPercentileMs(50);
  row.p99_ms = tally.LatencyPercentileMs(99);
}

namespace {

std::string Fixed(double value, int decimals) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << value;
  return out.str();
}

std::uint64_t ProducerSaid(const Row& row, const std::string& key) {
  auto it = row.producer.find(key);
  return it == row.producer.end() ? 0 : it->second;
}


std::string XmlText(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string Verdict(const Row& row) {
  if (!row.failure.empty()) return "Could not be run: " + row.failure;
  const std::string lost = std::to_string(row.lost);
  const std::string duplicated = std::to_string(row.duplicated);
  if (row.baseline) {
    return "Without faults: " +
           (row.lost == 0 && row.duplicated == 0 ? std::string("every task delivered exactly once")
                                                 : lost + " lost, " + duplicated + " duplicated") +
           ", p50 " + Fixed(row.p50_ms, 2) + " ms.";
  }
  switch (row.pattern) {
    case Pattern::kPushPull:
      return row.lost > 0
                 ? "Lost " + lost + " tasks — the one the killed consumer held, those queued to "
                   "it, and any still queued when the producer exited — and nothing noticed: no "
                   "acks, no resend."
                 : "Lost nothing this time by luck alone: a killed consumer's queued tasks are gone "
                   "and nothing would have noticed.";
    case Pattern::kPushPullResend:
      return "The ventilator resent " + std::to_string(ProducerSaid(row, "resent")) +
             " unfinished tasks, so " + (row.lost == 0 ? "nothing was lost" : lost + " were still lost") +
             (row.duplicated > 0 ? ", " + duplicated + " tasks were done twice," : "") +
             " and the producer had to stay up " + std::to_string(ProducerSaid(row, "stayed_ms")) +
             " ms, until every task was done: had it exited, nothing would have been resent.";
    case Pattern::kPubSub:
      return row.lost > 0
                 ? "Lost " + lost + ": a shard nobody had subscribed to yet and a dead subscriber's "
                   "shard went nowhere; PUB/SUB keeps nothing for absent subscribers."
                 : "Lost nothing, which PUB/SUB cannot promise: it keeps nothing for absent "
                   "subscribers.";
    case Pattern::kBrokerMemory:
      return row.lost > 0
                 ? "Redelivered the killed consumer's tasks, but the broker's crash took " + lost +
                       " tasks it held only in memory."
                 : "Redelivered the killed consumer's tasks and lost nothing, only because the "
                   "broker held nothing unacked when it crashed; memory does not survive a crash.";
    case Pattern::kBrokerDurable:
      return row.lost == 0
                 ? "Lost nothing: confirmed tasks were on disk and came back after the broker's "
                   "crash, the killed consumer's went to the others; the price is " + duplicated +
                       " duplicates (at-least-once) and a p99 of " + Fixed(row.p99_ms, 1) + " ms."
                 : "Lost " + lost + " although durable: that is a bug, please report it.";
  }
  return {};
}

void PrintTable(std::ostream& out, const std::vector<Row>& rows, std::uint64_t tasks, double rate) {
  out << tasks << " tasks per pattern, "
      << (rate > 0 ? "sent at " + Fixed(rate, 0) + "/s (so tasks/s shows what each pattern kept up with, not its top speed)"
                   : std::string("sent as fast as each pattern takes them"))
      << "\n\n";
  out << std::left << std::setw(30) << "pattern" << std::right << std::setw(7) << "sent"
      << std::setw(10) << "delivered" << std::setw(7) << "lost" << std::setw(6) << "dup"
      << std::setw(8) << "order" << std::setw(9) << "tasks/s" << std::setw(9) << "p50 ms"
      << std::setw(9) << "p99 ms" << "\n";
  for (const Row& row : rows) {
    out << std::left << std::setw(30) << Info(row.pattern).title << std::right;
    if (!row.failure.empty()) {
      out << "  (not run)\n";
      continue;
    }
    out << std::setw(7) << row.sent << std::setw(10) << row.delivered << std::setw(7) << row.lost
        << std::setw(6) << row.duplicated << std::setw(8) << row.out_of_order << std::setw(9)
        << static_cast<std::uint64_t>(row.throughput) << std::setw(9) << Fixed(row.p50_ms, 2)
        << std::setw(9) << Fixed(row.p99_ms, 2) << "\n";
  }
  out << "\n(order: first deliveries that reached their consumer after a later task had)\n\n";
  for (const Row& row : rows) {
    out << Info(row.pattern).title << ": " << Verdict(row) << "\n";
    if (row.faults.empty()) continue;
    out << "    what happened:";
    for (std::size_t i = 0; i < row.faults.size(); ++i) out << (i ? "; " : " ") << row.faults[i];
    out << "\n";
  }
}

void PrintJson(std::ostream& out, const std::vector<Row>& rows, std::uint64_t tasks, double rate) {
  out << "{\"tasks\": " << tasks << ", \"rate\": " << rate << ", \"patterns\": [";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    out << (i ? ",\n  " : "\n  ") << "{\"pattern\": " << JsonString(Info(row.pattern).key)
        << ", \"title\": " << JsonString(Info(row.pattern).title) << ", \"sent\": " << row.sent
        << ", \"delivered\": " << row.delivered << ", \"lost\": " << row.lost
        << ", \"duplicated\": " << row.duplicated << ", \"out_of_order\": " << row.out_of_order
        << ", \"throughput\": " << Fixed(row.throughput, 1) << ", \"p50_ms\": " << Fixed(row.p50_ms, 3)
        << ", \"p99_ms\": " << Fixed(row.p99_ms, 3) << ", \"seconds\": " << Fixed(row.seconds, 2)
        << ", \"producer\": {";
    bool first = true;
    for (const auto& [key, value] : row.producer) {
      out << (first ? "" : ", ") << JsonString(key) << ": " << value;
      first = false;
    }
    out << "}, \"faults\": [";
    for (std::size_t f = 0; f < row.faults.size(); ++f) {
      out << (f ? ", " : "") << JsonString(row.faults[f]);
    }
    out << "], \"verdict\": " << JsonString(Verdict(row));
    if (!row.failure.empty()) out << ", \"failure\": " << JsonString(row.failure);
    out << "}";
  }
  out << "\n]}\n";
}

// A horizontal bar per pattern: delivered (green) and lost (red) make up the tasks sent;
// duplicates (orange) are drawn beneath on the same scale. Latency and throughput as text.
void WriteSvg(std::ostream& out, const std::vector<Row>& rows, std::uint64_t tasks) {
  constexpr int kLabel = 230, kBar = 420, kRowHeight = 56, kTop = 70;
  const int height = kTop + static_cast<int>(rows.size()) * kRowHeight + 40;
  const int width = kLabel + kBar + 260;
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"13\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"10\" y=\"24\" font-size=\"17\" font-weight=\"bold\">zmqkit: " << tasks
      << " tasks through each pattern, under the same faults</text>\n"
      << "<text x=\"10\" y=\"46\" fill=\"#555\">a consumer SIGKILLed mid-stream, one joining late, "
         "the producer exiting when done sending, the broker SIGKILLed and restarted</text>\n";
  const double scale = tasks ? static_cast<double>(kBar) / static_cast<double>(tasks) : 0;
  int y = kTop;
  for (const Row& row : rows) {
    const int delivered = static_cast<int>(std::lround(static_cast<double>(row.delivered) * scale));
    const int lost = static_cast<int>(std::lround(static_cast<double>(row.lost) * scale));
    const int duplicated =
        std::min(kBar, static_cast<int>(std::lround(static_cast<double>(row.duplicated) * scale)));
    out << "<text x=\"10\" y=\"" << y + 16 << "\">" << XmlText(Info(row.pattern).title) << "</text>\n"
        << "<rect x=\"" << kLabel << "\" y=\"" << y << "\" width=\"" << delivered
        << "\" height=\"22\" fill=\"#3a9a4a\"><title>delivered " << row.delivered << "</title></rect>\n"
        << "<rect x=\"" << kLabel + delivered << "\" y=\"" << y << "\" width=\"" << std::max(lost, row.lost ? 2 : 0)
        << "\" height=\"22\" fill=\"#d0392b\"><title>lost " << row.lost << "</title></rect>\n"
        << "<rect x=\"" << kLabel << "\" y=\"" << y + 25 << "\" width=\""
        << std::max(duplicated, row.duplicated ? 2 : 0)
        << "\" height=\"8\" fill=\"#f0a030\"><title>duplicated " << row.duplicated << "</title></rect>\n"
        << "<text x=\"" << kLabel + kBar + 10 << "\" y=\"" << y + 12 << "\">lost " << row.lost
        << ", dup " << row.duplicated << "</text>\n"
        << "<text x=\"" << kLabel + kBar + 10 << "\" y=\"" << y + 28 << "\" fill=\"#555\">p50 "
        << Fixed(row.p50_ms, 2) << " ms, p99 " << Fixed(row.p99_ms, 1) << " ms</text>\n";
    y += kRowHeight;
  }
  out << "<rect x=\"" << kLabel << "\" y=\"" << y << "\" width=\"12\" height=\"12\" fill=\"#3a9a4a\"/>"
      << "<text x=\"" << kLabel + 16 << "\" y=\"" << y + 11 << "\">delivered</text>\n"
      << "<rect x=\"" << kLabel + 100 << "\" y=\"" << y << "\" width=\"12\" height=\"12\" fill=\"#d0392b\"/>"
      << "<text x=\"" << kLabel + 116 << "\" y=\"" << y + 11 << "\">lost</text>\n"
      << "<rect x=\"" << kLabel + 170 << "\" y=\"" << y << "\" width=\"12\" height=\"12\" fill=\"#f0a030\"/>"
      << "<text x=\"" << kLabel + 186 << "\" y=\"" << y + 11 << "\">duplicated</text>\n"
      << "</svg>\n";
}

}  // namespace compare
