// Broker: the optional broker device — messages that wait for consumers, acks, requeue on timeout,
// heartbeats and liveness, dead-letter queues — embeddable in a program or run as zmqkit-broker.
//
// Two ROUTER sockets: one for clients (native clients speaking docs/protocol.md, and plain REQ
// "Lazy Pirate" clients) and one for Paranoid Pirate (RFC 6) workers. With a data directory the
// queues are journaled (lib/src/storage/) and survive crashes. Everything the broker decides is made
// by a pure core (lib/src/broker/core/broker_core.h); this class is its socket loop: it polls, reads the
// clock, commits the journal before sending what depends on it, and moves frames.
#ifndef ZMQKIT_BROKER_H_
#define ZMQKIT_BROKER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "zmqkit/access_policy.h"
#include "zmqkit/clock.h"
#include "zmqkit/endpoint.h"
#include "zmqkit/queue_options.h"
#include "zmqkit/socket_factory.h"

namespace zmqkit {

// When a durable broker syncs its journal, and so what a publisher confirm means. Syncs run on a
// thread of their own; the broker goes on serving meanwhile, and heartbeats never wait for one.
enum class FsyncPolicy {
  kAlways,  // whatever is written is synced at once; nothing a turn of the loop produced is sent
            // before a sync covers its records, deliveries included
  kBatch,   // group commit: keep reading input that is already waiting for up to 2 ms or 1000
            // records, write it in one go; one sync covers everything written before it began.
            // Deliveries leave once their records are written, replies (confirms) after the sync.
            // Records no reply waits on (acks) are synced with the next reply's, or
            // max_unsynced_age later at the latest
  kNever,   // never sync explicitly (the OS writes back later); confirms say "queued"
};

struct BrokerOptions {
  Endpoint clients = Endpoint::Bind("tcp://*:5555");
  Endpoint workers = Endpoint::Bind("tcp://*:5556");
  // Applied to queues created on first use; DECLARE_QUEUE can set others per queue.
  QueueOptions queue_defaults;
  // Where requests from plain REQ clients are queued, and what Paranoid Pirate workers take from.
  std::string request_queue = "requests";
  // Heartbeats go to every peer this often; a peer silent for `liveness` intervals is dead, and its
  // unacked deliveries are taken back at once.
  std::chrono::milliseconds heartbeat_interval{1000};
  std::uint32_t liveness = 3;
  // Limits (docs/security.md). Each refusal names the limit it hit ("limit" in the ERROR or
  // REJECTED, docs/protocol.md) and is counted.
  //  - max_message_bytes: header + body of a publish (refused: message-too-large). The sockets
  //    also get ZMQ_MAXMSGSIZE = max_message_bytes + 64 KiB, so libzmq disconnects a peer sending
  //    a grossly oversized frame before allocating it; one slightly over gets the clear refusal.
  //  - max_frames: frames in one message; the rest are read and dropped unallocated.
  //  - max_header_bytes, max_headers: the envelope header frame and its "h" entries.
  //  - max_name_bytes: queue and exchange names (characters: letters, digits, . _ - :).
  //  - max_queues: queues; also exchanges, and bindings per exchange.
  //  - max_consumers_per_client, max_prefetch (unacked deliveries per consumer: its credit).
  //  - max_clients: client sessions at once; a new one beyond it gets an error and is not kept.
  std::size_t max_message_bytes = 16 * 1024 * 1024;
  std::size_t max_frames = 64;
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_headers = 256;
  std::size_t max_name_bytes = 255;
  std::size_t max_queues = 10000;
  std::size_t max_consumers_per_client = 1000;
  std::uint32_t max_prefetch = 100000;
  std::size_t max_clients = 10000;
  // Durability. Empty: queues live in memory only. Otherwise queues, messages and declarations are
  // kept in a journal in this directory (docs/journal-format.md) and come back after a crash or
  // restart; with kAlways or kBatch a confirm is sent only after its record is synced ("on-disk").
  std::string data_dir;
  FsyncPolicy fsync = FsyncPolicy::kBatch;
  // kBatch: how long a record that nothing sent waits on (an ack, a settle, a publish that asked
  // for no confirm) may stay written to the OS but unsynced. It is safe from the broker being
  // killed meanwhile; a power cut may lose it, which redelivers what was acked.
  std::chrono::milliseconds max_unsynced_age{100};
  // kBatch: a sync starts at least this long after the previous one started; what a confirm
  // needs meanwhile waits for it, and whatever arrives in between joins it. At low rates every
  // confirm would otherwise take a sync of its own, and each sync takes CPU (here about 150 us of
  // a core plus the block layer's) from the threads that deliver messages: at one publish every
  // 500 us this took the delivery p99 from 1.4-5.9 ms to 0.4-0.8 ms on the project's 2-vCPU VM
  // (docs/performance.md). A confirm waits at most this much longer. 0: sync as soon as needed.
  std::chrono::microseconds min_sync_interval{1000};
  std::uint64_t segment_bytes = 64 * 1024 * 1024;
  // Start even if the journal is damaged in the middle, skipping the damaged records.
  bool salvage = false;
  // Idempotent publishing (docs/protocol.md): a producer that published nothing for this long is
  // forgotten, and a publish of it sent again after that is stored again. At most max_producers
  // are remembered (the idlest forgotten first), each in a few dozen bytes plus 16 per gap (a
  // refused or missing sequence number below its highest one), at most 4,096 gaps each.
  std::chrono::seconds producer_window{std::chrono::hours(24)};
  std::size_t max_producers = 100000;
  // Deduplication by message id (docs/protocol.md): a message whose headers hold "dedup-id" is
  // stored once per exchange, routing key and id within this window; a copy inside it is
  // confirmed and not stored. At most max_dedup_ids are remembered (oldest forgotten first: the
  // window then shrinks to max_dedup_ids / ids per second; STATS dedup_ids_evicted_early counts
  // it), each in about 150 bytes plus its id, exchange and key. A zero window turns it off.
  std::chrono::seconds dedup_window{120};
  std::size_t max_dedup_ids = 100000;
  // Who may connect (docs/security.md): allowed client keys, allowed and denied networks. When a
  // rule is set the broker runs a ZAP handler (zap_server.h) on its context, so the context must
  // not have one already. Allowed keys need CURVE (socket.curve.server_secret_key).
  AccessPolicy access;
  // Z85 public keys that may administer: DECLARE_QUEUE, DECLARE_EXCHANGE, BIND, UNBIND, STATS,
  // PURGE, REDRIVE, PEEK. Empty: every client may. Otherwise other clients may only publish,
  // consume and settle, and get a "forbidden" error for the rest. Needs CURVE; admin keys are
  // allowed to connect even when access.allowed_keys does not list them.
  std::set<std::string> admin_keys;
  SocketOptions socket = [] {
    SocketOptions options;
    options.send_hwm = 100000;
    // Per peer. Sends: deliveries are bounded by each consumer's credit (prefetch), so this
    // only has to hold them plus replies. Receives: a peer sending faster than the broker reads
    // is held back at 1000 messages instead of growing the broker's memory.
    options.recv_hwm = 1000;
    return options;
  }();
};

struct BrokerCounters {
  std::uint64_t messages_in = 0;        // client and worker messages received
  std::uint64_t published = 0;          // copies queued (a fanout to four queues counts four)
  std::uint64_t unroutable = 0;         // publishes that reached no queue (confirmed, as AMQP does)
  std::uint64_t refused = 0;            // negative confirms
  std::uint64_t malformed = 0;          // frames we could not read
  std::uint64_t unknown_commands = 0;
  std::uint64_t unsupported_version = 0;
  std::uint64_t unknown_tags = 0;       // acks, nacks, extends for tags not held by that peer
  std::uint64_t peers_expired = 0;      // peers declared dead for silence
  std::uint64_t deliveries_taken_back = 0;
  std::uint64_t dead_lettered = 0;
  std::uint64_t journal_failures = 0;   // commits that failed (disk full, I/O error)
  std::uint64_t journal_syncs = 0;      // fdatasync calls on the journal
  std::uint64_t forbidden = 0;          // admin commands refused to a non-admin key
  std::uint64_t connections_refused = 0;  // by the access policy (ZAP), both endpoints
  std::uint64_t oversized_messages = 0;   // more frames or bytes than a message may have
  std::uint64_t errors_unsent = 0;        // ERRORs not sent: over 100 per peer per second
  // Deliveries a peer's connection would not take (it stopped reading): taken back, never lost.
  std::uint64_t deliveries_withheld = 0;
  // Answers held for a peer whose connection was full, until it took them; and answers given up
  // on because a peer left more than 100,000 of them unread.
  std::uint64_t answers_held = 0;
  std::uint64_t answers_dropped = 0;
  // Publishes recognised as copies of one stored before — sent again by an idempotent producer, or
  // with a "dedup-id" stored within the window: confirmed, not stored a second time.
  std::uint64_t duplicates = 0;
  // Paranoid Pirate replies to a job that had been taken back from the worker (too late to count).
  std::uint64_t late_replies = 0;
};

// Thrown by the Broker constructor when the data directory cannot be used: in use by another
// broker, damaged in the middle (and no salvage), unreadable.
class BrokerStartError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ZapServer;

namespace internal {
class BrokerCore;
class Journal;
struct ZapLog;
class JournalSink;
}  // namespace internal

class Broker {
 public:
  // Recovers the data directory, if any (throws BrokerStartError), then binds both endpoints
  // (throws zmq::error_t if one is refused). `clock` (SteadyClock if null) must outlive the broker.
  // The recovery is logged through the default log (stderr) or the one set later.
  Broker(zmq::context_t& context, BrokerOptions options, const Clock* clock = nullptr);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Serves until Stop(). Call from one thread, once.
  void Run();
  // Makes Run() return. Safe from any thread, before or during Run().
  void Stop();
  // Where log lines go (rate-limited by the broker); stderr if not set. Call before Run().
  void set_log(std::function<void(std::string_view)> log) { log_ = std::move(log); }

  const std::string& clients_endpoint() const { return clients_endpoint_; }
  const std::string& workers_endpoint() const { return workers_endpoint_; }
  // A snapshot, safe to read only from Run()'s thread or after Run() returned.
  const BrokerCounters& counters() const;
  // What recovery found at start-up (empty without a data directory).
  const std::string& recovery_summary() const { return recovery_summary_; }

 private:
  zmq::context_t& context_;
  BrokerOptions options_;
  SteadyClock steady_clock_;
  const Clock& clock_;
  std::unique_ptr<internal::BrokerCore> core_;
  std::unique_ptr<internal::Journal> journal_;
  std::unique_ptr<internal::JournalSink> journal_sink_;
  // The access policy's ZAP handler, if any, and the lines it logged for Run() to pass on.
  std::unique_ptr<internal::ZapLog> zap_log_;
  std::unique_ptr<ZapServer> zap_;
  std::string recovery_summary_;
  zmq::socket_t clients_;
  zmq::socket_t workers_;
  zmq::socket_t control_;  // PULL; Stop() sends here
  std::string control_address_;
  std::string clients_endpoint_;
  std::string workers_endpoint_;
  std::function<void(std::string_view)> log_;
};

}  // namespace zmqkit

#endif  // ZMQKIT_BROKER_H_
