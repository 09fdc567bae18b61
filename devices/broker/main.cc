// zmqkit-broker: the broker device. Flags, signals, exit codes; the broker itself is zmqkit::Broker.
#include <zmqkit/broker.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "common/exit_codes.h"
#include "common/security_flags.h"
#include "common/stop_signals.h"

int main(int argc, char** argv) {
  using zmqkit::devices::kExitRuntime;
  using zmqkit::devices::kExitUsage;
  const char* name = "zmqkit-broker";
  CLI::App app(
      "zmqkit broker: queues that wait for consumers, acks and requeue on timeout, heartbeats, "
      "dead-letter queues. Clients (native and plain REQ) connect to --clients; Paranoid Pirate "
      "workers to --workers.",
      name);
  std::string clients = "tcp://*:5555";
  std::string workers = "tcp://*:5556";
  zmqkit::BrokerOptions options;
  auto& queue = options.queue_defaults;
  std::int64_t heartbeat_ms = options.heartbeat_interval.count();
  std::int64_t ack_timeout_ms = queue.ack_timeout.count();
  std::int64_t retry_delay_ms = queue.retry_delay.count();
  std::int64_t max_retry_delay_ms = queue.max_retry_delay.count();
  std::int64_t message_ttl_ms = queue.message_ttl.count();
  app.add_option("--clients", clients, "client endpoint (ROUTER), bound")->capture_default_str();
  app.add_option("--workers", workers, "Paranoid Pirate worker endpoint (ROUTER), bound")
      ->capture_default_str();
  app.add_option("--request-queue", options.request_queue,
                 "queue for plain REQ clients' requests, served by PPP workers")
      ->capture_default_str();
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--liveness", options.liveness, "heartbeats a peer may miss before it is dead")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--ack-timeout-ms", ack_timeout_ms, "default ack timeout per delivery")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--max-attempts", queue.max_attempts,
                 "deliveries before a failing message goes to <queue>.dlq (0: no limit)")
      ->capture_default_str();
  app.add_option("--retry-delay-ms", retry_delay_ms, "first back-off after a failed delivery")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--max-retry-delay-ms", max_retry_delay_ms, "back-off cap")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--message-ttl-ms", message_ttl_ms, "default message TTL (0: none)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--max-length", queue.max_length, "messages per queue before publishes are refused")
      ->capture_default_str();
  app.add_option("--max-bytes", queue.max_bytes, "bytes per queue before publishes are refused")
      ->capture_default_str();
  app.add_option("--max-message-bytes", options.max_message_bytes, "largest message accepted")
      ->capture_default_str();
  app.add_option("--max-queues", options.max_queues,
                 "most queues the broker will hold (also exchanges, and bindings per exchange)")
      ->capture_default_str();
  app.add_option("--max-frames", options.max_frames, "most frames in one message")
      ->check(CLI::Range(std::size_t{5}, std::size_t{1} << 20))->capture_default_str();
  app.add_option("--max-header-bytes", options.max_header_bytes, "largest envelope header frame")
      ->capture_default_str();
  app.add_option("--max-headers", options.max_headers, "most application headers per message")
      ->capture_default_str();
  app.add_option("--max-name-bytes", options.max_name_bytes,
                 "longest queue or exchange name, and binding pattern")
      ->check(CLI::Range(std::size_t{1}, std::size_t{4096}))->capture_default_str();
  app.add_option("--max-clients", options.max_clients, "most client connections served at once")
      ->capture_default_str();
  app.add_option("--max-consumers-per-client", options.max_consumers_per_client,
                 "most consumers one connection may start")
      ->capture_default_str();
  app.add_option("--max-prefetch", options.max_prefetch,
                 "most unacked deliveries one consumer may hold (its credit)")
      ->capture_default_str();
  std::string data_dir = "./zmqkit-data";
  std::string fsync = "batch";
  app.add_option("--data-dir", data_dir,
                 "where queues are journaled to survive crashes; \"none\": in memory only")
      ->capture_default_str();
  app.add_option("--fsync", fsync,
                 "always: sync before every reply; batch: group commit (<= 2 ms or 1000 records); "
                 "never: leave it to the OS (confirms then only mean queued)")
      ->check(CLI::IsMember({"always", "batch", "never"}))
      ->capture_default_str();
  std::int64_t max_unsynced_ms = options.max_unsynced_age.count();
  app.add_option("--max-unsynced-ms", max_unsynced_ms,
                 "batch: longest an ack (or anything no reply waits on) stays written but unsynced")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  std::int64_t min_sync_interval_us = options.min_sync_interval.count();
  app.add_option("--min-sync-interval-us", min_sync_interval_us,
                 "batch: a sync starts at least this long after the previous one started (fewer "
                 "syncs at low rates; a confirm waits at most this much longer); 0: at once")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000}))
      ->capture_default_str();
  app.add_option("--segment-bytes", options.segment_bytes,
                 "journal segment size; the journal is compacted when it holds more than twice "
                 "the live messages plus a segment")
      ->check(CLI::Range(std::uint64_t{4096}, std::uint64_t{1} << 34))
      ->capture_default_str();
  app.add_flag("--salvage", options.salvage,
               "start even if the journal is damaged, skipping what is damaged and logging what "
               "was lost");
  std::int64_t producer_window_s = options.producer_window.count();
  app.add_option("--producer-window-s", producer_window_s,
                 "idempotent publishing: how long a producer that publishes nothing is remembered "
                 "(a copy it sends again later is recognised)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{366} * 86400))
      ->capture_default_str();
  std::int64_t dedup_window_s = options.dedup_window.count();
  app.add_option("--dedup-window-s", dedup_window_s,
                 "deduplication by message id: how long a message's \"dedup-id\" header is "
                 "remembered (a copy published within it is confirmed, not stored); 0: off")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{366} * 86400))
      ->capture_default_str();
  app.add_option("--max-dedup-ids", options.max_dedup_ids,
                 "deduplication by message id: most ids remembered (the oldest forgotten first)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000'000}))
      ->capture_default_str();
  app.add_option("--max-producers", options.max_producers,
                 "idempotent publishing: most producers remembered (the idlest forgotten first)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000'000}))
      ->capture_default_str();
  zmqkit::devices::SecurityFlags security;
  zmqkit::devices::AddSecurityFlags(app, security, /*with_admin=*/true);
  app.footer("Endpoints are bound; prefix one with '>' to connect instead.\n"
             "Stops cleanly on SIGINT or SIGTERM. Exit codes: 0 ok, 1 runtime failure (address in "
             "use, data directory damaged or in use), 2 usage.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : kExitUsage;
  }
  if (data_dir != "none") options.data_dir = data_dir;
  if (zmqkit::Status applied = zmqkit::devices::ApplySecurityFlags(
          security, options.socket, options.access, &options.admin_keys);
      !applied.ok()) {
    std::cerr << name << ": " << applied.message() << "\n";
    return kExitUsage;
  }
  options.fsync = fsync == "always"  ? zmqkit::FsyncPolicy::kAlways
                  : fsync == "never" ? zmqkit::FsyncPolicy::kNever
                                     : zmqkit::FsyncPolicy::kBatch;
  options.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  options.max_unsynced_age = std::chrono::milliseconds(max_unsynced_ms);
  options.min_sync_interval = std::chrono::microseconds(min_sync_interval_us);
  options.producer_window = std::chrono::seconds(producer_window_s);
  options.dedup_window = std::chrono::seconds(dedup_window_s);
  queue.ack_timeout = std::chrono::milliseconds(ack_timeout_ms);
  queue.retry_delay = std::chrono::milliseconds(retry_delay_ms);
  queue.max_retry_delay = std::chrono::milliseconds(max_retry_delay_ms);
  queue.message_ttl = std::chrono::milliseconds(message_ttl_ms);
  for (auto [text, target] : {std::pair{&clients, &options.clients},
                              std::pair{&workers, &options.workers}}) {
    auto endpoint = zmqkit::Endpoint::Parse(*text, zmqkit::Endpoint::Mode::kBind);
    if (!endpoint.ok()) {
      std::cerr << name << ": " << endpoint.error().message() << "\n";
      return kExitUsage;
    }
    *target = *endpoint;
  }

  zmqkit::devices::StopSignals stop_signals;  // before the context: its threads inherit the mask
  zmq::context_t context;
  std::unique_ptr<zmqkit::Broker> broker;
  try {
    broker = std::make_unique<zmqkit::Broker>(context, options);
  } catch (const zmqkit::BrokerStartError& error) {
    std::cerr << name << ": cannot start: " << error.what() << "\n";
    return kExitRuntime;
  } catch (const zmq::error_t& error) {
    std::cerr << name << ": cannot open " << clients << " / " << workers << ": " << error.what()
              << "\n";
    return zmqkit::devices::IsEndpointError(error.num()) ? kExitUsage : kExitRuntime;
  }
  std::cerr << name << ": clients " << broker->clients_endpoint() << ", workers "
            << broker->workers_endpoint() << std::endl;
  int exit_code = 0;
  stop_signals.RunUntilStopped(
      name,
      [&] {
        try {
          broker->Run();
        } catch (const std::exception& error) {
          std::cerr << name << ": " << error.what() << "\n";
          exit_code = kExitRuntime;
        }
      },
      [&] { broker->Stop(); });
  return exit_code;
}
