// zmqkit: one command line for the broker (queues, send, recv, purge, dlq, declare) and for the
// brokerless patterns (push, pull, pub, sub). Exit codes: 0 ok, 1 failure, 2 usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "zmqkit/broker_client.h"
#include "zmqkit/curve.h"
#include "zmqkit/fanout.h"
#include "zmqkit/work_queue.h"
#include "bench.h"
#include "json.h"
#include "progress.h"

namespace {

using namespace std::chrono_literals;
using zmqkit::Endpoint;
using zmqkit::Status;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct Common {
  std::string broker = "tcp://localhost:5555";
  std::string server_key;  // CURVE: the broker's public certificate
  std::string curve_key;   // CURVE: this client's secret certificate (else a fresh pair per run)
  std::string curve_secret;  // CURVE: the secret certificate of a brokerless endpoint this binds
  double timeout_s = 2.0;
  bool json = false;
};

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

int Fail(const std::string& message) {
  std::cerr << "zmqkit: " << message << "\n";
  return kExitFailure;
}

// A broker that does not answer gets the same advice whatever the command.
int FailWith(const Status& status, const Common& common) {
  if (status.code() == zmqkit::StatusCode::kUnavailable) {
    std::ostringstream message;
    message << "no broker answered at " << common.broker << " within " << common.timeout_s
            << " s — is zmqkit-broker running?";
    if (!common.server_key.empty()) {
      message << " (or it refused this client's key or address: its log says so)";
    }
    return Fail(message.str());
  }
  return Fail(status.message());
}

using zmqkit::tools::JsonString;

std::string JsonHeaders(const zmqkit::Headers& headers) {
  std::string out = "{";
  for (const auto& [key, value] : headers) {
    if (out.size() > 1) out += ",";
    out += JsonString(key) + ":" + JsonString(value);
  }
  return out + "}";
}

bool Interactive() { return ::isatty(STDOUT_FILENO) == 1; }

// CURVE for a socket the CLI opens: the server side when it binds (--curve-secret), the client
// side when it connects (--server-key, and --curve-key or a fresh pair).
zmqkit::CurveOptions CurveFor(const Common& common, bool binds) {
  zmqkit::CurveOptions curve;
  if (binds) {
    if (common.curve_secret.empty()) return curve;
    auto keys = zmqkit::ReadSecretCertificate(common.curve_secret);
    if (!keys.ok()) throw CLI::ValidationError("--curve-secret", keys.error().message());
    curve.server_secret_key = keys->secret_key;
    return curve;
  }
  if (common.server_key.empty()) {
    if (!common.curve_key.empty()) {
      throw CLI::ValidationError("--curve-key", "needs --server-key, the public certificate of the side that binds");
    }
    return curve;
  }
  auto server = zmqkit::ReadCertificate(common.server_key);
  if (!server.ok()) throw CLI::ValidationError("--server-key", server.error().message());
  auto mine = common.curve_key.empty() ? zmqkit::GenerateCurveKeyPair()
                                       : zmqkit::ReadSecretCertificate(common.curve_key);
  if (!mine.ok()) throw CLI::ValidationError("--curve-key", mine.error().message());
  curve.server_public_key = server->public_key;
  curve.client_public_key = mine->public_key;
  curve.client_secret_key = mine->secret_key;
  return curve;
}

std::unique_ptr<zmqkit::BrokerClient> Connect(zmq::context_t& context, const Common& common) {
  zmqkit::BrokerClientOptions options;
  options.request_timeout = Millis(common.timeout_s);
  options.socket.linger = 500ms;
  options.socket.curve = CurveFor(common, /*binds=*/false);
  auto endpoint = Endpoint::Parse(common.broker, Endpoint::Mode::kConnect);
  if (!endpoint.ok()) throw CLI::ValidationError("--broker", endpoint.error().message());
  return std::make_unique<zmqkit::BrokerClient>(context, *endpoint, options);
}

// ---- queues ----------------------------------------------------------------------------------

int Queues(const Common& common, double watch_s, int iterations) {
  zmq::context_t context;
  auto client = Connect(context, common);
  std::map<std::string, std::map<std::string, std::uint64_t>> previous;
  for (int round = 0; iterations <= 0 || round < iterations; ++round) {
    auto stats = client->Stats();
    if (!stats.ok()) return FailWith(stats.error(), common);
    if (common.json) {
      std::cout << "[";
      for (std::size_t i = 0; i < stats->size(); ++i) {
        const auto& queue = (*stats)[i];
        std::cout << (i ? "," : "") << "{\"name\":" << JsonString(queue.name);
        for (const auto& [key, value] : queue.values) std::cout << "," << JsonString(key) << ":" << value;
        std::cout << "}";
      }
      std::cout << "]" << std::endl;
    } else {
      if (watch_s > 0 && Interactive()) std::cout << "\x1b[H\x1b[2J";
      std::cout << std::left << std::setw(24) << "QUEUE" << std::right << std::setw(9) << "READY"
                << std::setw(10) << "IN-FLIGHT" << std::setw(8) << "DELAYED" << std::setw(10)
                << "CONSUMERS" << std::setw(6) << "DLQ" << std::setw(11) << "PUBLISHED"
                << std::setw(11) << "DELIVERED" << std::setw(10) << "ACKED";
      if (watch_s > 0) std::cout << std::setw(10) << "IN/s" << std::setw(10) << "ACK/s";
      std::cout << "\n";
      for (auto& queue : *stats) {
        auto& v = queue.values;
        std::cout << std::left << std::setw(24) << queue.name << std::right << std::setw(9)
                  << v["ready"] << std::setw(10) << v["in_flight"] << std::setw(8) << v["delayed"]
                  << std::setw(10) << v["consumers"] << std::setw(6) << v["dlq_depth"]
                  << std::setw(11) << v["published"] << std::setw(11) << v["delivered"]
                  << std::setw(10) << v["acked"];
        if (watch_s > 0) {
          auto& before = previous[queue.name];
          auto rate = [&](const char* key) {
            return before.empty() ? 0.0 : static_cast<double>(v[key] - before[key]) / watch_s;
          };
          std::cout << std::setw(10) << std::fixed << std::setprecision(0) << rate("published")
                    << std::setw(10) << rate("acked");
          before = v;
        }
        std::cout << "\n";
      }
      if (stats->empty()) std::cout << "(no queues)\n";
      std::cout << std::flush;
    }
    if (watch_s <= 0) break;
    std::this_thread::sleep_for(Millis(watch_s));
  }
  return 0;
}

// ---- send ------------------------------------------------------------------------------------

struct SendOptions {
  std::string target;
  std::vector<std::string> bodies;
  std::string file;
  bool stdin_lines = false;
  std::vector<std::string> headers;
  int priority = 0;
  std::int64_t delay_ms = 0;
  std::int64_t ttl_ms = 0;
  int count = 1;
  std::string exchange;
};

int Send(const Common& common, SendOptions& options) {
  std::vector<std::string> bodies = options.bodies;
  if (!options.file.empty()) {
    std::ifstream in(options.file, std::ios::binary);
    if (!in) return Fail("cannot read " + options.file);
    bodies.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (options.stdin_lines || (bodies.empty() && !::isatty(STDIN_FILENO))) {
    for (std::string line; std::getline(std::cin, line);) bodies.push_back(line);
  }
  if (bodies.empty()) return Fail("nothing to send: give bodies as arguments, --file, or lines on stdin");
  zmqkit::Headers headers;
  for (const std::string& header : options.headers) {
    auto equals = header.find('=');
    if (equals == std::string::npos) {
      std::cerr << "zmqkit: --header " << header << " is not KEY=VALUE\n";
      return kExitUsage;
    }
    headers[header.substr(0, equals)] = header.substr(equals + 1);
  }
  zmq::context_t context;
  auto client = Connect(context, common);
  zmqkit::PublishOptions publish;
  publish.exchange = options.exchange;
  publish.key = options.target;
  publish.delay = std::chrono::milliseconds(options.delay_ms);
  publish.ttl = std::chrono::milliseconds(options.ttl_ms);
  const std::size_t total = bodies.size() * static_cast<std::size_t>(options.count);
  std::size_t sent = 0;
  // Long sends show progress on stderr, so stdout keeps only the result line.
  zmqkit::tools::Progress progress(
      std::cerr, "sending", total,
      total >= 1000 ? zmqkit::tools::Progress::StyleFor(STDERR_FILENO) : zmqkit::tools::Progress::Style::kNone);
  for (int round = 0; round < options.count; ++round) {
    for (const std::string& body : bodies) {
      zmqkit::Envelope envelope = zmqkit::Envelope::New(body);
      envelope.priority = static_cast<std::uint8_t>(options.priority);
      envelope.headers = headers;
      if (!client->Publish(std::move(envelope), publish).ok()) return Fail("cannot send");
      ++sent;
      if (client->unconfirmed() > 10000) (void)client->WaitForConfirms(Millis(common.timeout_s));
      progress.Update(sent);
    }
  }
  progress.Finish();
  // At least 10 s: a durable broker's confirms wait for its disk, and the first connection may
  // still be under way. The error then names the wait that really happened.
  Common waited = common;
  waited.timeout_s = std::max(common.timeout_s, 10.0);
  Status confirmed = client->WaitForConfirms(Millis(waited.timeout_s));
  auto rejections = client->TakeRejections();
  for (const auto& rejection : rejections) {
    std::cerr << "zmqkit: message " << rejection.seq << " rejected: " << rejection.code << ": "
              << rejection.message << "\n";
  }
  if (!confirmed.ok() && rejections.empty()) return FailWith(Status::Unavailable(""), waited);
  std::cout << "sent " << sent - rejections.size() << " of " << sent << " to "
            << (options.exchange.empty() ? "queue " + options.target
                                         : "exchange " + options.exchange)
            << ", confirmed "
            << (client->confirm_level() == zmqkit::ConfirmLevel::kOnDisk ? "on disk" : "queued")
            << "\n";
  return rejections.empty() ? 0 : kExitFailure;
}

// ---- recv ------------------------------------------------------------------------------------

int Recv(const Common& common, const std::string& queue, int count, double wait_s,
         const std::string& settle, int prefetch) {
  zmq::context_t context;
  auto client = Connect(context, common);
  // Never hold more than we will take: what we prefetched and did not process would come back to
  // the queue with an attempt counted against it.
  const auto credit = static_cast<std::uint32_t>(std::min(prefetch, count));
  if (Status consumed = client->Consume(queue, credit); !consumed.ok()) {
    return FailWith(consumed, common);
  }
  int received = 0;
  // When the bodies go to a file or a pipe, a long receive shows progress on stderr instead.
  zmqkit::tools::Progress progress(
      std::cerr, "receiving", static_cast<std::uint64_t>(count),
      count >= 1000 && !Interactive() ? zmqkit::tools::Progress::StyleFor(STDERR_FILENO)
                                      : zmqkit::tools::Progress::Style::kNone);
  auto deadline = std::chrono::steady_clock::now() + Millis(wait_s);
  while (received < count) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) break;
    auto delivery = client->Receive(left);
    if (!delivery.ok()) break;
    ++received;
    const auto& envelope = delivery->envelope;
    if (common.json) {
      std::cout << "{\"id\":" << JsonString(envelope.id.ToString()) << ",\"attempt\":" << envelope.attempt
                << ",\"priority\":" << static_cast<int>(envelope.priority)
                << ",\"headers\":" << JsonHeaders(envelope.headers)
                << ",\"body\":" << JsonString(envelope.body_view()) << "}\n";
    } else {
      std::cout << envelope.body_view() << "\n";
    }
    std::cout << std::flush;
    if (settle == "ack") {
      (void)client->Ack(delivery->tag);
    } else if (settle == "requeue") {
      (void)client->Nack(delivery->tag, true);
    } else if (settle == "reject") {
      (void)client->Nack(delivery->tag, false);
    }
    progress.Update(static_cast<std::uint64_t>(received));
  }
  progress.Finish();
  // Let the acks reach the broker before the connection closes.
  (void)client->Stats(queue);
  if (received < count) {
    std::cerr << "zmqkit: received " << received << " of " << count << " within " << wait_s << " s\n";
    return kExitFailure;
  }
  return 0;
}

// ---- dlq -------------------------------------------------------------------------------------

int DlqList(const Common& common, const std::string& queue, std::uint64_t limit) {
  zmq::context_t context;
  auto client = Connect(context, common);
  auto messages = client->Peek(queue + ".dlq", limit);
  if (!messages.ok()) return FailWith(messages.error(), common);
  for (const auto& message : *messages) {
    auto header = [&](const char* key) {
      auto it = message.headers.find(key);
      return it == message.headers.end() ? std::string() : it->second;
    };
    if (common.json) {
      std::cout << "{\"number\":" << message.number << ",\"attempts\":" << JsonString(header("x-attempts"))
                << ",\"reason\":" << JsonString(header("x-death-reason"))
                << ",\"history\":" << JsonString(header("x-attempt-history"))
                << ",\"headers\":" << JsonHeaders(message.headers)
                << ",\"body\":" << JsonString(message.body) << "}\n";
    } else {
      std::string body = message.body.size() > 60 ? message.body.substr(0, 57) + "..." : message.body;
      std::cout << "#" << message.number << "  " << header("x-death-reason") << " after "
                << header("x-attempts") << " attempt(s) [" << header("x-attempt-history") << "]  "
                << body << "\n";
    }
  }
  if (!common.json) std::cout << messages->size() << " message(s) in " << queue << ".dlq\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("zmqkit: drive and inspect the zmqkit broker, and the brokerless patterns.", "zmqkit");
  app.require_subcommand(1);
  app.fallthrough();  // global options (--broker, --json, --timeout) also after the subcommand
  Common common;
  app.add_option("--broker", common.broker, "the broker's client endpoint")->capture_default_str();
  app.add_option("--timeout", common.timeout_s, "seconds to wait for the broker's answers")
      ->capture_default_str();
  app.add_flag("--json", common.json, "machine-readable output");
  app.add_option("--server-key", common.server_key,
                 "CURVE: the broker's public certificate; encrypts the connection");
  app.add_option("--curve-key", common.curve_key,
                 "CURVE: this client's secret certificate (default: a fresh key pair per run)");
  app.add_option("--curve-secret", common.curve_secret,
                 "CURVE, brokerless: the secret certificate of an endpoint this binds (@endpoint); "
                 "peers then connect with --server-key and its public part");
  app.footer("Exit codes: 0 ok, 1 failure, 2 usage. Brokerless endpoints connect unless written "
             "@endpoint (bind).");

  double watch_s = 0;
  int iterations = 0;
  auto* queues = app.add_subcommand("queues", "list queues: depths, consumers, DLQ, totals");
  queues->add_option("--watch", watch_s, "refresh every N seconds, with rates");
  queues->add_option("--iterations", iterations, "with --watch: stop after N refreshes")->group("");

  auto* counters = app.add_subcommand(
      "counters", "the broker's own counters: messages in, malformed, forbidden, refused "
                  "connections, sessions");

  SendOptions send_options;
  auto* send = app.add_subcommand("send", "publish messages to the broker, with confirms");
  send->add_option("target", send_options.target, "queue (or routing key with --exchange)")->required();
  send->add_option("bodies", send_options.bodies, "message bodies (else --file or stdin lines)");
  send->add_option("--file", send_options.file, "send this file's contents as one message");
  send->add_flag("--stdin", send_options.stdin_lines, "send each line of stdin as a message");
  send->add_option("--header", send_options.headers, "KEY=VALUE, repeatable");
  send->add_option("--priority", send_options.priority, "0-9, higher first")->check(CLI::Range(0, 9));
  send->add_option("--delay-ms", send_options.delay_ms, "not delivered before this long")->check(CLI::NonNegativeNumber);
  send->add_option("--ttl-ms", send_options.ttl_ms, "dead-lettered as expired after this long")->check(CLI::NonNegativeNumber);
  send->add_option("--count", send_options.count, "send each body this many times")->check(CLI::PositiveNumber);
  send->add_option("--exchange", send_options.exchange, "publish to this exchange");

  std::string recv_queue;
  int recv_count = 1;
  double recv_wait = 5;
  std::string settle = "ack";
  int prefetch = 100;
  auto* recv = app.add_subcommand("recv", "consume messages from a queue");
  recv->add_option("queue", recv_queue)->required();
  recv->add_option("--count", recv_count, "how many to take")->check(CLI::PositiveNumber)->capture_default_str();
  recv->add_option("--wait", recv_wait, "seconds to wait for them")->capture_default_str();
  recv->add_option("--settle", settle, "ack, requeue (nack), reject (nack to the DLQ), or none")
      ->check(CLI::IsMember({"ack", "requeue", "reject", "none"}))->capture_default_str();
  recv->add_option("--prefetch", prefetch)->check(CLI::PositiveNumber)->capture_default_str();

  std::string purge_queue;
  auto* purge = app.add_subcommand("purge", "remove every ready and delayed message of a queue");
  purge->add_option("queue", purge_queue)->required();

  auto* dlq = app.add_subcommand("dlq", "inspect and redrive dead-letter queues");
  dlq->require_subcommand(1);
  std::string dlq_queue;
  std::uint64_t dlq_limit = 100;
  auto* dlq_list = dlq->add_subcommand("list", "show QUEUE.dlq without taking anything");
  dlq_list->add_option("queue", dlq_queue, "the origin queue")->required();
  dlq_list->add_option("--limit", dlq_limit)->capture_default_str();
  std::optional<std::uint64_t> redrive_limit;
  auto* dlq_redrive = dlq->add_subcommand("redrive", "move QUEUE.dlq's messages back to QUEUE");
  dlq_redrive->add_option("queue", dlq_queue, "the origin queue")->required();
  dlq_redrive->add_option("--limit", redrive_limit);

  auto* declare = app.add_subcommand("declare", "declare queues, exchanges and bindings");
  declare->require_subcommand(1);
  std::string name, type = "fanout", exchange, queue, pattern;
  zmqkit::QueueOptions queue_options;
  std::int64_t ack_timeout_ms = queue_options.ack_timeout.count();
  std::int64_t retry_delay_ms = queue_options.retry_delay.count();
  std::int64_t ttl_ms = queue_options.message_ttl.count();
  auto* declare_queue = declare->add_subcommand("queue", "a queue with options");
  declare_queue->add_option("name", name)->required();
  declare_queue->add_option("--ack-timeout-ms", ack_timeout_ms)->capture_default_str();
  declare_queue->add_option("--max-attempts", queue_options.max_attempts)->capture_default_str();
  declare_queue->add_option("--retry-delay-ms", retry_delay_ms)->capture_default_str();
  declare_queue->add_option("--message-ttl-ms", ttl_ms)->capture_default_str();
  declare_queue->add_option("--max-length", queue_options.max_length)->capture_default_str();
  declare_queue->add_option("--max-bytes", queue_options.max_bytes)->capture_default_str();
  auto* declare_exchange = declare->add_subcommand("exchange", "a fanout or topic exchange");
  declare_exchange->add_option("name", name)->required();
  declare_exchange->add_option("--type", type)->check(CLI::IsMember({"fanout", "topic"}))->capture_default_str();
  auto* declare_bind = declare->add_subcommand("bind", "bind a queue to an exchange");
  declare_bind->add_option("exchange", exchange)->required();
  declare_bind->add_option("queue", queue)->required();
  declare_bind->add_option("--pattern", pattern, "topic pattern (* one word, # any words)");

  std::string endpoint_text;
  std::vector<std::string> bodies;
  std::vector<std::string> topics;
  int wait_peers = 0;
  int take = 1;
  double take_wait = 5;
  auto* push = app.add_subcommand("push", "send bodies to PULL workers (brokerless)");
  push->add_option("endpoint", endpoint_text)->required();
  push->add_option("bodies", bodies)->required();
  push->add_option("--wait-workers", wait_peers, "wait until N workers are connected");
  auto* pull = app.add_subcommand("pull", "take messages from PUSH producers (brokerless)");
  pull->add_option("endpoint", endpoint_text)->required();
  pull->add_option("--count", take)->capture_default_str();
  pull->add_option("--wait", take_wait)->capture_default_str();
  auto* pub = app.add_subcommand("pub", "publish bodies on a topic (brokerless)");
  pub->add_option("endpoint", endpoint_text)->required();
  pub->add_option("bodies", bodies)->required();
  pub->add_option("--topic", topics, "topic (first one given)")->required();
  pub->add_option("--wait-subscribers", wait_peers, "wait until N subscriptions match the topic");
  auto* sub = app.add_subcommand("sub", "print messages published on topics (brokerless)");
  sub->add_option("endpoint", endpoint_text)->required();
  sub->add_option("--topic", topics, "topic prefix, repeatable (default: everything)");
  sub->add_option("--count", take)->capture_default_str();
  sub->add_option("--wait", take_wait)->capture_default_str();

  std::string keygen_name;
  auto* keygen = app.add_subcommand("keygen", "write a CURVE key pair: NAME (public) and NAME_secret");
  keygen->add_option("name", keygen_name, "file name for the public part; the secret goes to NAME_secret")
      ->required();

  zmqkit::tools::BenchOptions bench_options;
  auto* bench = app.add_subcommand(
      "bench", "measure throughput, latency, recovery and memory against raw libzmq and the disk");
  bench->add_option("--size", bench_options.size, "message body bytes")->capture_default_str();
  bench->add_option("--messages", bench_options.messages, "messages per brokerless run")->capture_default_str();
  bench->add_option("--broker-messages", bench_options.broker_messages, "messages per broker run")
      ->capture_default_str();
  bench->add_option("--backlog", bench_options.backlog, "messages queued for the backlog, memory and recovery runs")
      ->capture_default_str();
  bench->add_option("--latency-samples", bench_options.latency_samples)->capture_default_str();
  bench->add_option("--publish-batch", bench_options.publish_batch,
                    "envelopes per PublishBatch() call in the batched broker runs")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100000}));
  bench->add_option("--min-sync-interval-us", bench_options.min_sync_interval_us,
                    "the durable brokers' min_sync_interval (zmqkit-broker --min-sync-interval-us); "
                    "-1: the broker's default")
      ->check(CLI::Range(std::int64_t{-1}, std::int64_t{1'000'000}))
      ->capture_default_str();
  bench->add_option("--data-dir", bench_options.data_dir, "where the disk and the durable broker are measured")
      ->capture_default_str();
  bench->add_option("--only", bench_options.only,
                    "only these steps, comma-separated: limits disk brokerless broker idle backlog scaling latency recovery");
  bench->add_flag("--quick", bench_options.quick, "small counts: a smoke run of a few seconds");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : kExitUsage;
  }

  try {
    if (*keygen) {
      auto keys = zmqkit::GenerateCurveKeyPair();
      if (!keys.ok()) return Fail(keys.error().message());
      if (Status written = zmqkit::WriteCertificate(keygen_name, *keys); !written.ok()) {
        return Fail(written.message());
      }
      std::cout << "wrote " << keygen_name << " (public, share it) and " << keygen_name
                << "_secret (keep it; mode 0600)\n"
                << "public key: " << keys->public_key << "\n";
      return 0;
    }
    if (*bench) {
      bench_options.json = common.json;
      return zmqkit::tools::RunBench(bench_options);
    }
    if (*queues) return Queues(common, watch_s, iterations);
    if (*counters) {
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
    if (*send) return Send(common, send_options);
    if (*recv) {
      return Recv(common, recv_queue, recv_count, recv_wait, settle, prefetch);
    }
    if (*purge) {
      zmq::context_t context;
      auto client = Connect(context, common);
      auto purged = client->Purge(purge_queue);
      if (!purged.ok()) return FailWith(purged.error(), common);
      std::cout << "purged " << *purged << " message(s) from " << purge_queue << "\n";
      return 0;
    }
    if (*dlq_list) return DlqList(common, dlq_queue, dlq_limit);
    if (*dlq_redrive) {
      zmq::context_t context;
      auto client = Connect(context, common);
      auto moved = client->Redrive(dlq_queue, redrive_limit);
      if (!moved.ok()) return FailWith(moved.error(), common);
      std::cout << "moved " << *moved << " message(s) from " << dlq_queue << ".dlq back to "
                << dlq_queue << "\n";
      return 0;
    }
    if (*declare) {
      zmq::context_t context;
      auto client = Connect(context, common);
      Status status;
      if (*declare_queue) {
        queue_options.ack_timeout = std::chrono::milliseconds(ack_timeout_ms);
        queue_options.retry_delay = std::chrono::milliseconds(retry_delay_ms);
        queue_options.message_ttl = std::chrono::milliseconds(ttl_ms);
        status = client->DeclareQueue(name, queue_options);
      } else if (*declare_exchange) {
        status = client->DeclareExchange(name, type);
      } else {
        status = client->Bind(exchange, queue, pattern);
      }
      if (!status.ok()) return FailWith(status, common);
      std::cout << "ok\n";
      return 0;
    }
    zmq::context_t context;
    auto endpoint = Endpoint::Parse(endpoint_text, Endpoint::Mode::kConnect);
    if (!endpoint.ok()) {
      std::cerr << "zmqkit: " << endpoint.error().message() << "\n";
      return kExitUsage;
    }
    // Only CURVE is set here; each pattern keeps its own default HWMs.
    const zmqkit::CurveOptions curve = CurveFor(common, endpoint->mode == Endpoint::Mode::kBind);
    if (*push) {
      zmqkit::ProducerOptions producer_options;
      producer_options.socket.curve = curve;
      zmqkit::Producer producer(context, *endpoint, producer_options);
      if (wait_peers > 0) {
        if (Status waited = producer.WaitForWorkers(static_cast<std::size_t>(wait_peers), Millis(common.timeout_s));
            !waited.ok()) {
          return Fail(waited.message());
        }
      }
      for (const std::string& body : bodies) {
        if (Status sent = producer.Send(body); !sent.ok()) return Fail(sent.message());
      }
      std::cout << "pushed " << bodies.size() << " message(s)\n";
      return 0;
    }
    if (*pub) {
      zmqkit::PublisherOptions publisher_options;
      publisher_options.socket.curve = curve;
      zmqkit::Publisher publisher(context, *endpoint, publisher_options);
      if (wait_peers > 0) {
        if (Status waited = publisher.WaitForSubscribers(static_cast<std::size_t>(wait_peers), topics.front(),
                                                         Millis(common.timeout_s));
            !waited.ok()) {
          return Fail(waited.message());
        }
      }
      for (const std::string& body : bodies) (void)publisher.Publish(topics.front(), body);
      std::cout << "published " << bodies.size() << " message(s) on " << topics.front() << "\n";
      return 0;
    }
    const bool is_sub = static_cast<bool>(*sub);
    std::unique_ptr<zmqkit::Worker> worker;
    std::unique_ptr<zmqkit::Subscriber> subscriber;
    if (is_sub) {
      zmqkit::SubscriberOptions subscriber_options;
      subscriber_options.socket.curve = curve;
      subscriber = std::make_unique<zmqkit::Subscriber>(context, *endpoint, subscriber_options);
      if (topics.empty()) topics.emplace_back();
      for (const std::string& topic : topics) subscriber->Subscribe(topic);
    } else {
      zmqkit::WorkerOptions worker_options;
      worker_options.socket.curve = curve;
      worker = std::make_unique<zmqkit::Worker>(context, *endpoint, worker_options);
    }
    int got = 0;
    auto deadline = std::chrono::steady_clock::now() + Millis(take_wait);
    while (got < take) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) break;
      if (is_sub) {
        auto publication = subscriber->Receive(left);
        if (!publication.ok()) continue;
        std::cout << publication->topic << " " << publication->envelope.body_view() << std::endl;
      } else {
        auto message = worker->Receive(left);
        if (!message.ok()) continue;
        std::cout << message->body_view() << std::endl;
      }
      ++got;
    }
    if (got < take) {
      std::cerr << "zmqkit: received " << got << " of " << take << " within " << take_wait << " s\n";
      return kExitFailure;
    }
    return 0;
  } catch (const CLI::ValidationError& error) {
    std::cerr << "zmqkit: " << error.what() << "\n";
    return kExitUsage;
  } catch (const zmq::error_t& error) {
    return Fail(std::string("cannot open the endpoint: ") + error.what());
  }
}
