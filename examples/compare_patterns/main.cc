// compare_patterns — one workload through every pattern, under the same faults, counted from what
// the consumers actually saw.
//
// For each pattern a run starts a producer and two consumers as child processes (this program
// again, with --role) and then, while the tasks flow:
//   - consumer 1 SIGKILLs itself on receiving its (tasks/5)-th task, holding it and whatever else was
//     queued to it;
//   - consumer 3 joins once a quarter of the tasks have been delivered;
//   - the producer exits as soon as the pattern lets it consider its tasks sent;
//   - for the broker patterns, the broker is SIGKILLed and started again once 60% were delivered.
// Every consumer reports each task it receives to this process (before working on it), which is
// all the counting is based on: delivered, lost, duplicated, out of order, latency, throughput.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iomanip>
#include <optional>
#include <sstream>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common.h"
#include "progress.h"
#include "results.h"

extern char** environ;

namespace compare {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Options {
  std::uint64_t tasks = 10000;
  double rate = 5000;
  std::size_t body_size = 100;
  std::int64_t work_us = 100;
  std::vector<std::string> patterns;
  bool json = false;
  std::string svg = "compare_patterns.svg";
  bool quick = false;
  bool faults = true;
};

// A child process of this run; SIGKILLed and reaped when it goes out of scope.
class Child {
 public:
  Child(std::string_view role, const RoleArgs& args) {
    std::vector<std::string> strings = args.ToArgv(role);
    strings.insert(strings.begin(), "compare_patterns");
    std::vector<char*> argv;
    for (std::string& s : strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) {
      throw std::runtime_error("cannot start a " + std::string(role) + " process");
    }
  }
  ~Child() { Kill(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

std::map<std::string, std::uint64_t> ParseFields(std::string_view text) {
  std::map<std::string, std::uint64_t> fields;
  std::istringstream in{std::string(text)};
  for (std::string field; in >> field;) {
    auto eq = field.find('=');
    if (eq == std::string::npos) continue;
    try {
      fields[field.substr(0, eq)] = std::stoull(field.substr(eq + 1));
    } catch (const std::exception&) {
    }
  }
  return fields;
}

std::string Percent(std::uint64_t part, std::uint64_t whole) {
  return std::to_string(whole ? part * 100 / whole : 0) + "%";
}

Row RunPattern(Pattern pattern, const Options& options, std::ostream& progress) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("zmqkit-compare-" + std::to_string(::getpid()) +
                                                    "-" + std::string(Info(pattern).key));
  fs::remove_all(dir);
  fs::create_directories(dir);
  struct RemoveOnExit {
    fs::path dir;
    ~RemoveOnExit() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } remove_on_exit{dir};

  const Addresses at(dir.string());
  zmq::context_t context;
  zmq::socket_t collector(context, zmq::socket_type::router);
  collector.set(zmq::sockopt::linger, 0);
  collector.bind(at.collector);

  RoleArgs base;
  base.pattern = pattern;
  base.run_dir = dir.string();
  base.tasks = options.tasks;
  base.rate = options.rate;
  base.body_size = options.body_size;
  base.work = std::chrono::microseconds(options.work_us);
  base.consumers_at_start = options.faults ? 2 : 3;
  auto consumer_args = [&](std::uint32_t id, std::uint64_t die_after) {
    RoleArgs args = base;
    args.id = id;
    args.die_after = die_after;
    return args;
  };

  Tally tally(options.tasks);
  Row row;
  row.pattern = pattern;
  const auto started = Clock::now();
  std::unique_ptr<Child> broker;
  if (UsesBroker(pattern)) broker = std::make_unique<Child>("broker", base);
  const std::uint64_t die_after = options.faults ? std::max<std::uint64_t>(1, options.tasks / 5) : 0;
  std::vector<std::unique_ptr<Child>> consumers;
  consumers.push_back(std::make_unique<Child>("consumer", consumer_args(1, die_after)));
  consumers.push_back(std::make_unique<Child>("consumer", consumer_args(2, 0)));
  // Without faults the third consumer is there from the start, like the others.
  if (!options.faults) consumers.push_back(std::make_unique<Child>("consumer", consumer_args(3, 0)));
  std::unique_ptr<Child> producer;

  // A live count on a terminal; elsewhere the one line at the end is enough.
  zmqkit::tools::Progress bar(progress, std::string("  ").append(Info(pattern).title), options.tasks,
                              ::isatty(STDERR_FILENO) ? zmqkit::tools::Progress::Style::kBar
                                                      : zmqkit::tools::Progress::Style::kNone);
  int ready = 0;
  bool producer_done = false, late_joined = false, restarted = false;
  auto last_report = Clock::now();
  const auto give_up = started + 30s + std::chrono::seconds(
      options.rate > 0 ? static_cast<std::int64_t>(static_cast<double>(options.tasks) / options.rate) : 0);
  std::vector<zmq::message_t> frames;
  for (;;) {
    zmq::pollitem_t item{collector.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 20ms);
    while (true) {
      frames.clear();
      if (!zmq::recv_multipart(collector, std::back_inserter(frames), zmq::recv_flags::dontwait)) break;
      if (frames.size() < 2) continue;
      const std::string_view command = frames[1].to_string_view();
      const std::string_view data = frames.size() > 2 ? frames[2].to_string_view() : "";
      if (command == kSeen) {
        if (auto seen = DecodeSeen(data)) tally.Add(*seen);
        last_report = Clock::now();
      } else if (command == kReady) {
        ++ready;
      } else if (command == kDying) {
        row.faults.push_back("consumer 1 SIGKILLed on receiving its task #" + std::to_string(die_after) +
                             " (" + Percent(tally.distinct(), options.tasks) + " delivered)");
        collector.send(frames[0], zmq::send_flags::sndmore);
        collector.send(zmq::str_buffer("ok"), zmq::send_flags::none);
      } else if (command == kDone) {
        row.producer = ParseFields(data);
        producer_done = true;
        last_report = Clock::now();
        if (options.faults) row.faults.push_back("producer exited " + std::to_string(row.producer["stayed_ms"]) +
                             " ms after it started (" + Percent(tally.distinct(), options.tasks) +
                             " delivered)");
      }
    }
    bar.Update(tally.distinct());
    const auto now = Clock::now();
    if (!producer && ready >= static_cast<int>(base.consumers_at_start)) producer = std::make_unique<Child>("producer", base);
    if (options.faults && producer && !late_joined && tally.distinct() >= options.tasks / 4) {
      late_joined = true;
      consumers.push_back(std::make_unique<Child>("consumer", consumer_args(3, 0)));
      row.faults.push_back("consumer 3 joined late (" + Percent(tally.distinct(), options.tasks) +
                           " delivered)");
    }
    if (options.faults && broker && !restarted && tally.distinct() >= options.tasks * 3 / 5) {
      restarted = true;
      broker->Kill();
      broker = std::make_unique<Child>("broker", base);
      row.faults.push_back("broker SIGKILLed and restarted (" +
                           Percent(tally.distinct(), options.tasks) + " delivered)");
    }
    // The end: everything seen and a moment for late duplicates, or nothing new for a while after
    // the producer finished (what has not arrived by then is not coming).
    const auto quiet = now - last_report;
    if (producer_done && ((tally.distinct() == options.tasks && quiet >= 500ms) || quiet >= 2s)) break;
    if (now >= give_up) {
      if (!producer) row.failure = "the consumers did not start";
      row.faults.push_back("stopped at the time limit");
      break;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (::isatty(STDERR_FILENO)) progress << "\r\x1b[K";  // the summary line replaces the bar
  producer.reset();
  consumers.clear();
  broker.reset();

  AddFigures(tally, row);
  row.seconds = seconds;
  row.baseline = !options.faults;
  progress << "  " << Info(pattern).title << ": " << row.delivered << " of " << row.sent
           << " delivered in " << std::fixed << std::setprecision(1) << seconds << " s\n";
  return row;
}

int Orchestrate(const Options& given) {
  Options options = given;
  if (options.quick) options.tasks = std::min<std::uint64_t>(options.tasks, 2000);
  std::vector<Pattern> patterns;
  for (const std::string& key : options.patterns) {
    auto pattern = PatternFromKey(key);
    if (!pattern) {
      std::cerr << "compare_patterns: unknown pattern '" << key << "'\n";
      return 2;
    }
    patterns.push_back(*pattern);
  }
  if (patterns.empty()) {
    for (const auto& info : AllPatterns()) patterns.push_back(info.pattern);
  }
  std::cerr << "compare_patterns: " << options.tasks << " tasks at " << options.rate
            << "/s, consumers take " << options.work_us << " us each; per pattern:\n";
  std::vector<Row> rows;
  for (Pattern pattern : patterns) rows.push_back(RunPattern(pattern, options, std::cerr));

  if (options.json) {
    PrintJson(std::cout, rows, options.tasks, options.rate);
  } else {
    std::cout << "\n";
    PrintTable(std::cout, rows, options.tasks, options.rate);
  }
  if (!options.svg.empty()) {
    std::ofstream svg(options.svg);
    WriteSvg(svg, rows, options.tasks);
    if (!svg) {
      std::cerr << "compare_patterns: cannot write " << options.svg << "\n";
      return 1;
    }
    std::cerr << "chart: " << std::filesystem::absolute(options.svg).string() << "\n";
  }
  for (const Row& row : rows) {
    if (!row.failure.empty()) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace compare

int main(int argc, char** argv) {
  if (argc >= 3 && std::string_view(argv[1]) == "--role") {
    const std::string_view role = argv[2];
    auto args = compare::RoleArgs::FromArgv(std::span(argv + 3, static_cast<std::size_t>(argc - 3)));
    if (!args) return 2;
    if (role == "producer") return compare::RunProducer(*args);
    if (role == "consumer") return compare::RunConsumer(*args);
    if (role == "broker") return compare::RunBroker(*args);
    return 2;
  }
  compare::Options options;
  CLI::App app{
      "Runs one workload through PUSH/PULL, PUSH/PULL with resend, PUB/SUB and the broker (in "
      "memory and durable) under the same faults, and shows what each pattern gained and lost."};
  app.add_option("--tasks", options.tasks, "tasks per pattern")->capture_default_str();
  app.add_option("--rate", options.rate, "tasks per second the producer sends (0: unpaced)")
      ->capture_default_str();
  app.add_option("--size", options.body_size, "task body bytes (at least 16)")->capture_default_str();
  app.add_option("--work-us", options.work_us, "how long a consumer works on a task (microseconds)")
      ->capture_default_str();
  app.add_option("--patterns", options.patterns,
                 "which patterns, of push-pull push-pull-resend pub-sub broker-memory broker-durable")
      ->delimiter(',');
  app.add_flag("--json", options.json, "print JSON instead of the table");
  app.add_option("--svg", options.svg, "write the chart here ('' for none)")->capture_default_str();
  app.add_flag("--quick", options.quick, "at most 2,000 tasks (CI's smoke run)");
  app.add_flag("--no-faults", [&](std::int64_t) { options.faults = false; },
               "the same runs without any fault: the baseline");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;
  }
  try {
    return compare::Orchestrate(options);
  } catch (const std::exception& error) {
    std::cerr << "compare_patterns: " << error.what() << "\n";
    return 1;
  }
}
