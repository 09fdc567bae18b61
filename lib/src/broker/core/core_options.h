// What BrokerCore is told: the rules it enforces (CoreOptions, a subset of the public
// BrokerOptions without sockets, CURVE or storage), and what it would otherwise take from the
// machine (CoreEnvironment: the wall clock, the instance id, the delivery tag epoch), so a test or
// a replica can give it fixed ones.
#ifndef ZMQKIT_SRC_BROKER_CORE_CORE_OPTIONS_H_
#define ZMQKIT_SRC_BROKER_CORE_CORE_OPTIONS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "zmqkit/clock.h"
#include "zmqkit/envelope.h"
#include "zmqkit/queue_options.h"

namespace zmqkit {
struct BrokerOptions;
}  // namespace zmqkit

namespace zmqkit::internal {

// Each field means what the BrokerOptions field of the same name does (zmqkit/broker.h), where
// its documentation is, and has the same default (broker_core_test holds them equal).
struct CoreOptions {
  QueueOptions queue_defaults;
  std::string request_queue = "requests";
  std::chrono::milliseconds heartbeat_interval{1000};
  std::uint32_t liveness = 3;
  std::size_t max_message_bytes = 16 * 1024 * 1024;
  std::size_t max_frames = 64;
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_headers = 256;
  std::size_t max_name_bytes = 255;
  std::size_t max_queues = 10000;
  std::size_t max_consumers_per_client = 1000;
  std::uint32_t max_prefetch = 100000;
  std::size_t max_clients = 10000;
  std::chrono::seconds producer_window{std::chrono::hours(24)};
  std::size_t max_producers = 100000;
  std::chrono::seconds dedup_window{120};
  std::size_t max_dedup_ids = 100000;
  std::set<std::string> admin_keys;

  friend bool operator==(const CoreOptions&, const CoreOptions&) = default;
};

// The rules of the public options, which the socket loop hands the core (defined in
// loop/broker.cc: the core itself does not depend on BrokerOptions).
CoreOptions CoreOptionsFrom(const BrokerOptions& options);

struct CoreEnvironment {
  // Microseconds since the Unix epoch, for times that must survive a restart (when a delay ends,
  // when a TTL expires, when a producer was last heard): journaled against this clock.
  std::function<std::int64_t()> wall_clock = UnixMicrosNow;
  // Sent with every HEARTBEAT so clients can tell a restarted broker; empty: a fresh random id.
  std::string instance;
  // The epoch delivery tags carry until BeginJournaledEpoch (a durable broker) takes the next
  // journaled one; 0: a random one (a memory-only broker, whose tags must not repeat an earlier
  // run's either).
  std::uint64_t tag_epoch = 0;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_CORE_CORE_OPTIONS_H_
