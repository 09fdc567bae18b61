// BrokerClient: a native client of the broker — publish with confirms, consume with acks, admin.
//
// Publishes, deliveries and acks go straight between the caller's thread and the broker's socket.
// A background "keeper" thread wakes once per heartbeat interval: it sends heartbeats so the broker
// knows this client is alive, and — unless auto_extend is off — extends the ack deadline of every
// delivery this client holds (prefetched-but-unstarted ones included) until it is acked, for at
// most max_lease. So a handler that runs long is not mistaken for a stalled one, while a process
// that dies or hangs loses its deliveries to other consumers after the broker's timeout or liveness
// limit.
//
// The BrokerClient object itself is used from one thread at a time.
#ifndef ZMQKIT_BROKER_CLIENT_H_
#define ZMQKIT_BROKER_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>
#include <zmq.hpp>

#include "zmqkit/endpoint.h"
#include "zmqkit/envelope.h"
#include "zmqkit/envelope_codec.h"
#include "zmqkit/queue_options.h"
#include "zmqkit/socket_factory.h"
#include "zmqkit/status.h"

namespace zmqkit {

namespace internal::protocol {
class Args;  // broker/protocol.h: a command's decoded args
}  // namespace internal::protocol

struct BrokerClientOptions {
  SocketOptions socket = [] {
    SocketOptions options;
    options.send_hwm = 100000;
    options.recv_hwm = 100000;
    return options;
  }();
  DecodeLimits limits;
  // Must not be longer than the broker's interval, or the broker will think this client is dead.
  std::chrono::milliseconds heartbeat_interval{1000};
  // How long admin calls and Consume() wait for the broker's answer.
  std::chrono::milliseconds request_timeout{5000};
  // Extend held deliveries' deadlines in the background (see the class comment).
  bool auto_extend = true;
  std::chrono::milliseconds max_lease{std::chrono::minutes(10)};
  // Most deliveries the broker may pack into one message to this client (never more than a
  // consumer's prefetch). Receive() still returns them one at a time; packing saves the broker
  // and both sides' libzmq most of the per-message work. 1: one delivery per message.
  std::uint32_t delivery_batch = 64;
  // Idempotent publishing (docs/protocol.md): every publish carries this producer id and its
  // sequence number, so the broker stores a publish sent again only if its first copy was never
  // stored. Empty (the default): 12 random characters, new for each BrokerClient.
  std::string producer_id;
  // A publish whose outcome is unknown — sent, then the connection or the broker went away
  // before its confirm — is sent again, by itself, to a broker that publishes idempotently (its
  // greeting says so): exactly one copy is stored either way. Off, or with an older broker, such
  // a publish is reported in TakeRejections() with code "outcome-unknown".
  bool republish_unknown = true;
  // Most publishes sent and not yet settled (confirmed or rejected). Each is kept until then, to
  // be sent again if its outcome becomes unknown; at the limit, Publish() and PublishBatch() wait
  // for confirms (up to request_timeout, then kUnavailable: nothing more sent; a batch cut short
  // returns how many it sent), and no PUBLISH carries more than this many, as NATS's
  // PublishAsyncMaxPending and Kafka's buffer.memory bound a producer. 0: no limit.
  std::size_t max_unconfirmed = 10000;
};

// What a publisher confirm promises.
enum class ConfirmLevel {
  kQueued,  // the broker holds the message in memory; a broker crash loses it
  kOnDisk,  // written and synced to the broker's journal (durable brokers)
};

struct PublishOptions {
  std::string exchange;  // "" (default): deliver to the queue named by the routing key
  std::string key;       // the routing key; with the default exchange, the queue name
  std::chrono::milliseconds delay{0};  // not delivered before this long from now
  std::chrono::milliseconds ttl{0};    // expires (to the DLQ) if not delivered in time; 0: never
};

struct Rejection {
  std::uint64_t seq;  // as Publish() returned it (a publish sent again keeps its first seq)
  // docs/protocol.md: queue-full, message-too-large, not-found, ...; and "outcome-unknown": sent,
  // but the connection or broker went away before its confirm, and it was not sent again (see
  // BrokerClientOptions::republish_unknown). It may or may not have been stored.
  std::string code;
  std::string message;
};

struct Delivery {
  std::uint64_t tag;     // what Ack/Nack/Extend name
  std::string consumer;  // the consumer name given to Consume()
  std::string queue;
  Envelope envelope;     // attempt: 1 on first delivery, +1 per redelivery
};

struct PeekedMessage {
  std::uint64_t number;   // the message's number in its queue
  std::string place;      // "ready", "delayed", "in-flight"
  std::uint32_t priority;
  std::uint32_t attempt;
  Headers headers;
  std::string body;
};

struct QueueStats {
  std::string name;
  std::map<std::string, std::uint64_t> values;  // ready, in_flight, delayed, consumers, published,
                                                // delivered, acked, requeued, dead_lettered, ...
};

class BrokerClient {
 public:
  // Connects (or binds) to the broker's client endpoint and starts the actor thread.
  BrokerClient(zmq::context_t& context, const Endpoint& broker, BrokerClientOptions options = {});
  // Says BYE (the broker takes back unacked deliveries at once) and stops the actor.
  ~BrokerClient();
  BrokerClient(const BrokerClient&) = delete;
  BrokerClient& operator=(const BrokerClient&) = delete;

  // Sends a message and returns its publish sequence number; does not wait for the confirm.
  // kUnavailable if the broker took nothing for one heartbeat interval (it is away and the
  // connection's queue, send_hwm messages, is full); the message was not sent then. A body of up
  // to 1 KiB goes in one frame with its header once the broker has said it reads that
  // (docs/protocol.md, PUBLISH); the caller sees no difference.
  Result<std::uint64_t> Publish(Envelope envelope, const PublishOptions& options);
  // Shorthand: to the queue `queue` through the default exchange.
  Result<std::uint64_t> Publish(const std::string& queue, std::string_view body);
  // Publishes `envelopes` with the same options as consecutive sequence numbers, batched into as
  // few messages as the broker takes (its greeting says how many; docs/protocol.md). Each is
  // still confirmed or rejected on its own. Cheaper per message than Publish() in a loop, for the
  // broker and both sides' libzmq. Returns how many were sent, from the front: all, or fewer if
  // the broker stopped taking messages partway (the rest were not sent, took no sequence number,
  // and still hold their bodies). kUnavailable if none was sent. The last one sent has
  // last_seq().
  Result<std::size_t> PublishBatch(std::span<Envelope> envelopes, const PublishOptions& options);
  std::uint64_t last_seq() const { return last_sent_seq_; }
  // Waits until every publish so far is confirmed or rejected. kDeadlineExceeded if not within
  // `timeout`; kResourceExhausted (naming the first) if any was rejected since the last call —
  // see TakeRejections() for all of them.
  Status WaitForConfirms(std::chrono::milliseconds timeout);
  std::vector<Rejection> TakeRejections();
  std::size_t unconfirmed() const { return last_sent_seq_ - last_settled_seq_; }
  // Publishes sent again because their outcome was unknown (BrokerClientOptions::republish_unknown).
  std::uint64_t republished() const { return republished_; }
  // Every publish whose seq (as Publish returned it) is at most this is settled: confirmed, or
  // rejected (TakeRejections). A publish sent again is settled when its copy is.
  std::uint64_t settled_through() const {
    return copies_outstanding_.empty() ? last_settled_seq_
                                       : std::min(last_settled_seq_, *copies_outstanding_.begin() - 1);
  }
  ConfirmLevel confirm_level() const { return confirm_level_; }

  // Starts consuming from `queue` with up to `prefetch` unacked deliveries; waits for the broker's
  // answer. `consumer` names it (unique per client); `ack_timeout` overrides the queue's.
  Status Consume(const std::string& queue, std::uint32_t prefetch, const std::string& consumer = "",
                 std::optional<std::chrono::milliseconds> ack_timeout = std::nullopt);
  Status Cancel(const std::string& consumer);
  // The next delivery, waiting up to `timeout`. Also processes confirms and heartbeats arriving
  // meanwhile.
  Result<Delivery> Receive(std::chrono::milliseconds timeout);
  // Settle deliveries. A delivery the broker has since taken back by itself — it restarted (a new
  // instance in its heartbeat), or it expired this client's session — is void: the broker gives
  // the message again, so the client drops such deliveries it had not yet returned from Receive()
  // and does not send the tags of those it had. Settling a void tag returns kFailedPrecondition
  // ("broker-restarted: ..."); the other tags of the same call are settled.
  Status Ack(std::uint64_t tag);
  Status Ack(const std::vector<std::uint64_t>& tags);  // one message for a batch
  Status Nack(std::uint64_t tag, bool requeue);
  Status Extend(std::uint64_t tag, std::chrono::milliseconds by);

  // Admin.
  Status DeclareQueue(const std::string& name, const QueueOptions& options);
  Status DeclareExchange(const std::string& name, const std::string& type);  // "fanout"/"topic"
  Status Bind(const std::string& exchange, const std::string& queue, const std::string& pattern = "");
  Result<std::vector<QueueStats>> Stats(const std::string& queue = "");
  // The broker's own counters (docs/protocol.md, STATS): messages in, malformed, forbidden,
  // connections refused, sessions... An admin command, like Stats.
  Result<std::map<std::string, std::uint64_t>> ServerCounters();
  Result<std::uint64_t> Purge(const std::string& queue);
  // Up to `limit` of the queue's messages in delivery order, without taking them (no lease, no
  // attempt counted): for inspecting dead-letter queues.
  Result<std::vector<PeekedMessage>> Peek(const std::string& queue, std::uint64_t limit = 100);
  Result<std::uint64_t> Redrive(const std::string& queue,
                                std::optional<std::uint64_t> limit = std::nullopt);

  // Errors the broker reported that no call was waiting for (e.g. an ack of an unknown tag).
  std::vector<std::string> TakeErrors();

 private:
  // Reads one message from the actor and files it: confirms, rejections, errors, deliveries
  // (queued in `deliveries_`), replies (in `replies_`). False if nothing came within `timeout`.
  bool ReadOne(std::chrono::milliseconds timeout);
  // ReadOne's handling of each command from the broker.
  void OnConfirm(const internal::protocol::Args& args);
  void OnDeliver(const internal::protocol::Args& args, std::span<zmq::message_t> payload);
  void OnHeartbeat(const internal::protocol::Args& args);
  void OnError(const internal::protocol::Args& args);
  // Moves last_settled_seq_ past the seqs settled ahead of it and lets go of their publishes.
  void AdvanceSettled();
  zmq::message_t PublishArgs(std::uint64_t seq, std::size_t count, const PublishOptions& options,
                             std::uint64_t pseq = 0) const;
  // Sends a command with a fresh rid and waits for its OK or ERROR; returns the OK's raw args.
  Result<std::string> Call(std::string_view command, zmq::message_t args, std::uint64_t rid);
  // kUnavailable if the broker did not take it within one heartbeat interval. `publish_seq`: the
  // command is that PUBLISH.
  Status SendCommand(std::string_view command, zmq::message_t args,
                     std::vector<zmq::message_t> payload = {}, std::uint64_t publish_seq = 0);

  struct Connection;  // the socket, shared with the keeper thread (broker_client.cc)
  // The keeper thread: heartbeats and deadline extensions, once per interval, until stopped.
  static void RunKeeper(Connection& connection, const BrokerClientOptions& options);

  BrokerClientOptions options_;
  std::unique_ptr<Connection> connection_;
  std::thread keeper_;
  std::string broker_instance_;  // from the broker's heartbeats; empty until the first
  std::string scratch_;
  std::vector<zmq::message_t> frames_;  // reused by every read from the actor
  std::uint64_t last_sent_seq_ = 0;
  // Messages one PUBLISH may carry, from the broker's greeting; 0 until it has been heard.
  std::uint64_t max_publish_batch_ = 0;
  // The greeting also says whether the broker reads packed [header+body] publishes; brokers from
  // before them do not, and get [header][body].
  bool packed_publish_ = false;
  std::uint64_t last_settled_seq_ = 0;
  ConfirmLevel confirm_level_ = ConfirmLevel::kQueued;
  std::vector<Rejection> rejections_;
  // Seqs above last_settled_seq_ settled without a CONFIRM: rejected, or sent again as a new seq.
  std::set<std::uint64_t> settled_ahead_;
  // Every publish not yet settled, by seq from pending_front_seq_ on: what sending it again takes.
  struct PendingPublish {
    std::uint64_t first_seq = 0;  // the seq Publish() returned for it
    std::uint64_t pseq = 0;       // its producer sequence number: the same each time it is sent
    std::shared_ptr<const PublishOptions> options;
    zmq::message_t header;        // packed: [header+body]; else [header]
    zmq::message_t body;          // empty if packed
    bool packed = false;
  };
  // A ring (its size a power of two): pending_count_ entries from pending_head_ on. Slots are
  // reused, so publishing allocates nothing here once the ring has grown to what is in flight (a
  // std::deque of these allocates a block every three publishes, and moves none less).
  std::vector<PendingPublish> pending_;
  std::size_t pending_head_ = 0;
  std::size_t pending_count_ = 0;
  PendingPublish& PendingAt(std::size_t index);  // index 0: the oldest
  PendingPublish& PushPending();                 // a slot at the back, to fill in
  void ReleasePending(PendingPublish& entry);    // lets go of its frames and options
  static constexpr std::size_t kPublishesBetweenReads = 256;
  std::size_t published_since_read_ = 0;  // messages PublishBatch sent since it last read
  std::uint64_t pending_front_seq_ = 1;
  std::shared_ptr<const PublishOptions> last_options_;  // shared by publishes with equal options
  bool broker_idempotent_ = false;  // from the greeting
  std::uint64_t republished_ = 0;
  // The first seqs of publishes sent again whose copy is not settled yet.
  std::multiset<std::uint64_t> copies_outstanding_;
  PendingPublish* FindPending(std::uint64_t seq);
  void DropSettledPending();
  // Ok once `count` more publishes keep the unsettled ones within max_unconfirmed (reading
  // confirms until then).
  Status AwaitPublishRoom(std::size_t count);
  // Sends the publishes whose outcome is unknown again, each under a new seq with its pseq.
  void Republish(const std::vector<std::uint64_t>& seqs);
  std::deque<Delivery> deliveries_;
  std::chrono::steady_clock::time_point last_look_{};  // Receive(): when it last read the socket
  // Tags this client was given and has not settled (kept here only without auto_extend: with it,
  // the keeper's held map has them); when the broker takes them all back (a restart, an expired
  // session) they move to void_tags_, and are never sent again.
  std::unordered_set<std::uint64_t> unsettled_;
  std::unordered_set<std::uint64_t> void_tags_;
  // The broker took back every delivery this client held: drops the prefetched ones and voids
  // the tags of the rest.
  void VoidDeliveries();
  // Removes the void tags from `tags` (and from void_tags_); an error naming them if any were.
  Status DropVoidTags(std::vector<std::uint64_t>& tags);
  // Tags about to be settled: no longer held, not to be voided.
  void ForgetSettled(std::span<const std::uint64_t> tags);
  std::map<std::uint64_t, Result<std::string>> replies_;  // by rid
  std::uint64_t next_rid_ = 1;
  std::uint64_t next_consumer_ = 1;
  // Active consumers, so they can be started again if the broker expired this client's session.
  struct ConsumerSpec {
    std::string queue;
    std::uint32_t prefetch;
    std::optional<std::chrono::milliseconds> ack_timeout;
  };
  std::map<std::string, ConsumerSpec> consumers_;
  void Resubscribe();
  std::uint32_t DeliveryBatch(std::uint32_t prefetch) const;
  std::vector<std::string> errors_;
};

}  // namespace zmqkit

#endif  // ZMQKIT_BROKER_CLIENT_H_
