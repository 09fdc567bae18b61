// BrokerCore: everything the broker decides, with no sockets and no clock.
//
// The socket loop (zmqkit::Broker) hands it each message received — the routing id and the frames
// after it — and the current time; the core updates its state and appends the messages to send to
// outbox(). Tick(now) does what time makes due, and NextDeadline() tells the loop how long it may
// sleep. So every rule (leases, liveness, LRU dispatch, confirms, dead letters) is tested by calling
// these methods with a ManualClock's time and reading the outbox.
//
// Peers on the client endpoint are native clients (frames start with the ZKB1 signature) or plain
// REQ clients (an empty delimiter frame first). Peers on the worker endpoint are Paranoid Pirate
// workers. The core keeps a session per native client and per worker, and forgets it when the peer
// says BYE or falls silent for `liveness` heartbeat intervals.
#ifndef ZMQKIT_SRC_BROKER_CORE_BROKER_CORE_H_
#define ZMQKIT_SRC_BROKER_CORE_BROKER_CORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_set>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "broker/core/exchanges.h"
#include "broker/core/journal_records.h"
#include "broker/core/message_queue.h"
#include "broker/core/core_options.h"
#include "broker/core/dedup_window.h"
#include "broker/core/producer_table.h"
#include "broker/protocol.h"
#include "zmqkit/broker.h"
#include "zmqkit/clock.h"
#include "zmqkit/envelope_codec.h"

namespace zmqkit::internal {

enum class Side { kClients, kWorkers };

// Where a durable broker's core writes its journal records, in the order of the state changes
// (docs/journal-format.md, section 7). The loop syncs them before it sends the confirms that depend
// on them.
class JournalSink {
 public:
  virtual ~JournalSink() = default;
  virtual void Append(std::string record) = 0;
};

// What an outgoing message must wait for before it leaves (docs/broker.md, "Durability").
enum class WaitsFor : std::uint8_t {
  // A reply: what its turn journaled (a confirm's publishes, a declaration) must be synced first.
  kSync,
  // A message handed to a consumer (DELIVER, or a request to a Paranoid Pirate worker). It
  // promises nothing about the journal, so under group commit it leaves once its records are
  // written, before they are synced; under fsync "always" it waits for the sync like a reply.
  kWrite,
  // A heartbeat: promises nothing and orders nothing, so it leaves at once, even past messages
  // held for the same peer. A slow disk must not make peers think the broker is dead.
  kNothing,
};

struct Outgoing {
  Side side;
  std::string peer;  // routing id on that side's ROUTER
  std::vector<zmq::message_t> frames;
  WaitsFor waits_for = WaitsFor::kSync;
  // A DELIVER's (or a Paranoid Pirate job's) delivery tags: what to take back if the peer's
  // connection will not take the message (BrokerCore::OnDeliveryRefused).
  std::vector<std::uint64_t> tags;
  // A CONFIRM: while the journal fails it stays held, where other answers that need a sync leave
  // once what could be written is (CommitScheduler).
  bool confirm = false;
};

class BrokerCore {
 public:
  explicit BrokerCore(const CoreOptions& options, CoreEnvironment environment = {});

  // One message from the client ROUTER; `frames` are those after the routing id.
  void OnClientMessage(std::string_view peer, std::span<zmq::message_t> frames, TimePoint now);
  // One message from the worker ROUTER.
  void OnWorkerMessage(std::string_view peer, std::span<zmq::message_t> frames, TimePoint now);
  // A message from `peer` with more than max_frames frames: the loop kept the first `kept` (at most
  // max_frames) and read and dropped `dropped` more. A PUBLISH among them has each of its seqs
  // rejected, so no later CONFIRM covers them.
  void OnOversizedMessage(Side side, std::string_view peer, std::span<zmq::message_t> kept,
                          std::size_t dropped, TimePoint now);
  // The peer's connection would not take a message carrying these deliveries (its queue is at the
  // high-water mark: the peer stopped reading) or the peer is gone. They never left, so they are
  // taken back as if never given — ready again in their place, attempt unchanged — and the peer's
  // consumers get nothing more for a short while, then are tried again. Counted in
  // deliveries_withheld. Dispatches what this made ready to other consumers.
  void OnDeliveryRefused(Side side, std::string_view peer, std::span<const std::uint64_t> tags,
                         TimePoint now);
  // Delayed messages due, TTLs expired, leases timed out, silent peers dropped, heartbeats sent.
  void Tick(TimePoint now);
  // The earliest time Tick() has work to do.
  std::optional<TimePoint> NextDeadline() const;
  // Queues the deliveries and the publisher confirms owed for what was handled since the last
  // Flush(). Call once per batch of input: one CONFIRM covers every publish of a client in the
  // batch, and a consumer that asked for batches gets the batch's messages in few DELIVERs.
  void Flush();

  std::vector<Outgoing>& outbox() { return outbox_; }
  // Log lines since the last call, rate-limited (a flood of bad input produces a count, not a line
  // per message).
  std::vector<std::string> TakeLog();

  // Durable brokers: every state change is also written to `journal` (null: none). Must outlive
  // the core.
  void set_journal(JournalSink* journal) { journal_ = journal; }
  // What confirms promise: "queued" (default) or "on-disk" (a syncing journal).
  void set_confirm_level(std::string level) { confirm_level_ = std::move(level); }
  // While set, publishes are refused with this reason (the journal cannot write); nullopt: accepted.
  void set_publish_refusal(std::optional<std::string> reason) { publish_refusal_ = std::move(reason); }
  BrokerCounters& mutable_counters() { return counters_; }
  // Who sent a message, from its first frame after the routing id: by default the ZAP User-Id
  // libzmq attached to it. Tests set their own.
  void set_peer_identity(std::function<std::string(const zmq::message_t&)> identity) {
    peer_identity_ = std::move(identity);
  }
  // Durable brokers, once recovery has replayed the journal: delivery tags from now on carry the
  // epoch after the last one journaled, and that epoch is journaled. The caller syncs it before it
  // serves anyone, so no epoch, and so no tag, is used by two runs of the broker.
  // `skip`: how far past the last journaled epoch to go — more than 1 after a salvaged start,
  // whose damage may have taken the record of the last epoch used.
  void BeginJournaledEpoch(std::uint64_t skip = 1);
  // The epoch delivery tags carry now (docs/protocol.md, DELIVER): a tag is epoch << 32 | n.
  std::uint64_t tag_epoch() const { return tag_epoch_; }
  // Tests: the next tag of this epoch is `counter`, to reach the end of an epoch without 2^32
  // deliveries.
  void SetNextTagCounterForTesting(std::uint64_t counter) { next_tag_counter_ = counter; }
  // Recovery: applies one journal record, through the same state changes as live operation. Sends
  // nothing and writes no journal. kCorruption if the record does not decode or does not fit the
  // state (a message it names is missing).
  Status Replay(std::string_view record, TimePoint now);
  // The same for a decoded record: the one fold that recovery, and a follower applying a leader's
  // stream, go through. Each op has its Apply function below; the live path makes the same state
  // change and journals the record that describes it, and replay_fold_test holds the two equal.
  Status Apply(const records::Record& record, TimePoint now);

  // What replay could tell was lost, for a salvaged start's report. Messages are numbered 1, 2, 3
  // … per queue, and every number is given by a journal record (PUBLISH, DEAD, REDRIVE) in
  // increasing order, so a number skipped is a message whose record the damage took. Those later
  // acked were done with anyway; the others are lost.
  struct ReplayAudit {
    std::uint64_t messages_missing = 0;
    std::uint64_t missing_acked = 0;
  };
  const ReplayAudit& replay_audit() const { return replay_audit_; }
  const BrokerCounters& counters() const { return counters_; }
  const MessageQueue* FindQueue(std::string_view name) const;
  std::vector<std::string> QueueNames() const;
  // Compaction: records that rebuild the current state from nothing (declarations, every queued
  // message with its number, attempts and history). In-flight deliveries are written as ready.
  std::vector<std::string> SnapshotRecords(TimePoint now) const;
  // Bytes of messages held across all queues (what a compacted journal must hold).
  std::uint64_t LiveBytes() const;
  std::size_t sessions() const { return sessions_.size(); }
  std::size_t consumers() const { return consumers_.size(); }

 private:
  struct SessionKey {
    Side side;
    std::string peer;
    friend auto operator<=>(const SessionKey&, const SessionKey&) = default;
  };
  struct Session {
    TimePoint last_seen;
    TimePoint last_heartbeat_sent;
    std::set<std::uint64_t> consumers;   // consumer ids
    std::optional<std::uint64_t> confirm_upto;  // highest publish seq to confirm at Flush()
    // The first publish seq this session received. Sent with every CONFIRM as "from": a client
    // whose earlier publishes never reached this session (a broker restart, a reconnect — each
    // connection is a new session) must not read the cumulative "upto" as covering them.
    std::optional<std::uint64_t> first_seq;
  };
  struct QueueSlot;
  struct Consumer {
    SessionKey session;
    std::string name;  // the client's name for it; unique within the session
    QueueSlot* slot;
    std::uint32_t prefetch;
    Duration ack_timeout;
    std::uint32_t batch;           // most messages in one DELIVER (CONSUME's "batch")
    // Delivery tags given, in order; a settled one stays until the next compaction, so settling
    // costs no tree node. `held` counts the ones still in deliveries_.
    std::vector<std::uint64_t> given;
    std::size_t held = 0;
    bool waiting = false;          // in slot->waiting (has credit)
    // Its connection refused a delivery: given nothing until the session's pause ends.
    bool paused = false;
    std::list<std::uint64_t>::iterator waiting_position;
  };
  struct QueueSlot {
    explicit QueueSlot(std::string name, const QueueOptions& options)
        : queue(std::move(name), options) {}
    MessageQueue queue;
    // Consumers with free credit, the one that has waited longest first (LRU, not round robin).
    std::list<std::uint64_t> waiting;
    std::size_t consumers = 0;
    bool dispatch_due = false;  // in dispatch_due_
    // Where the queue stands in due_queues_ (its NextDeadline when last indexed), and whether it
    // changed since (in deadline_dirty_).
    std::optional<TimePoint> indexed_due;
    bool deadline_dirty = false;
  };
  // Why a request is refused: the error code, the text, and which limit it hit (if one did).
  struct Refusal {
    std::string_view code;
    std::string message;
    std::string_view limit;
  };
  struct Delivery {
    std::uint64_t consumer;
    QueueSlot* slot;
    std::string reply_to;  // routing id of a REQ client waiting for the answer, if any
  };

  // Native commands.
  void HandleNative(Session& session, const SessionKey& key, std::string_view command,
                    const protocol::Args& args, std::span<zmq::message_t> payload, TimePoint now);
  void HandleClientHeartbeat(Session& session, const SessionKey& key, const protocol::Args& args);
  void HandlePublish(Session& session, const SessionKey& key, const protocol::Args& args,
                     std::span<zmq::message_t> payload, TimePoint now);
  // Refuses a whole PUBLISH before any of its messages is looked at: a REJECTED for each seq it
  // carries, so that no later CONFIRM's range covers one. `payload_frames` is how many frames
  // followed its args; a PUBLISH cannot carry more messages than that, whatever its count says.
  void RejectWholePublish(std::string_view peer, const protocol::Args& args,
                          std::size_t payload_frames, std::string_view code,
                          const std::string& message, std::string_view limit = {});
  // Where the messages of one PUBLISH go, and how (its args, shared by a batched PUBLISH's
  // messages).
  struct PublishRoute {
    std::string exchange;
    std::string key;
    std::int64_t delay_us = 0;
    std::int64_t ttl_us = 0;
    EnqueueOptions enqueue;
    // Resolved for the first message that decodes, then shared by the rest of a batched PUBLISH:
    // the target queues, or why there are none.
    bool resolved = false;
    std::vector<QueueSlot*> targets;
    std::optional<Refusal> refusal;
    // An idempotent producer's id ("": none) and the sequence number of the PUBLISH's first
    // message; the i-th message of a batched PUBLISH has pseq + i.
    std::string_view producer;
    std::uint64_t pseq = 0;
  };
  // Admits one [header][body] as publish `seq` into route.targets, or sends its REJECTED and
  // returns false.
  bool PublishOne(const SessionKey& key, std::uint64_t seq, std::uint64_t pseq,
                  std::span<zmq::message_t> message, PublishRoute& route, TimePoint now);
  void ResolveRoute(PublishRoute& route);
  // A published [header][body] (or packed frame) as an envelope, `header` its header's bytes as
  // the client wrote them; nullopt and `refusal` filled if it may not be stored (too big, does
  // not decode, the journal refuses publishes).
  std::optional<Envelope> DecodePublished(std::span<zmq::message_t> message,
                                          std::string_view& header, Refusal& refusal);
  // Stores an admitted message in route.targets (their room checked) and journals it.
  void StorePublished(Envelope& envelope, std::string_view header, std::uint64_t pseq,
                      std::string_view dedup_id, std::int64_t at_us, PublishRoute& route,
                      TimePoint now);
  void HandleConsume(Session& session, const SessionKey& key, const protocol::Args& args,
                     TimePoint now);
  void HandleCancel(Session& session, const SessionKey& key, const protocol::Args& args,
                    TimePoint now);
  void HandleSettle(const SessionKey& key, std::string_view command, const protocol::Args& args,
                    TimePoint now);
  void HandleDeclareQueue(const SessionKey& key, const protocol::Args& args);
  void HandleDeclareExchange(const SessionKey& key, const protocol::Args& args);
  void HandleBind(const SessionKey& key, const protocol::Args& args, bool bind);
  void HandleStats(const SessionKey& key, const protocol::Args& args);
  void HandlePurge(const SessionKey& key, const protocol::Args& args);
  void HandleRedrive(const SessionKey& key, const protocol::Args& args, TimePoint now);
  void HandlePeek(const SessionKey& key, const protocol::Args& args);
  // A plain REQ client's request: [request...] after the empty delimiter.
  void HandleRequest(std::string_view peer, std::span<zmq::message_t> frames, TimePoint now);

  Session& Touch(const SessionKey& key, TimePoint now);
  std::vector<zmq::message_t> ClientHeartbeat() const;
  // How many messages one PUBLISH may carry: as many [header][body] pairs as fit in max_frames
  // beside the signature, the command and the args. The packed form, where twice as many would
  // fit, keeps to it too: one number for both forms keeps clients simple.
  std::uint64_t MaxPublishBatch() const { return (options_.max_frames - 3) / 2; }
  void DropSession(const SessionKey& key, TimePoint now);
  void RemoveConsumer(std::uint64_t consumer_id, TimePoint now);
  std::uint64_t AddConsumer(const SessionKey& key, Session& session, std::string name,
                            QueueSlot& slot, std::uint32_t prefetch, Duration ack_timeout,
                            std::uint32_t batch);

  // The queue `name`, created if new; nullptr and `refusal` filled if the name is invalid or the
  // broker holds max_queues.
  QueueSlot* GetOrCreateQueue(std::string_view name, Refusal& refusal);
  std::optional<Refusal> CheckName(std::string_view what, std::string_view name) const;
  // Marks `slot` for dispatch at the end of this batch of input (Flush) or of Tick. Deferring it
  // lets one DELIVER carry what several publishes of the batch made ready.
  void Dispatch(QueueSlot& slot, TimePoint now);
  void DispatchDue();
  // Silent peers dropped, heartbeats sent: Tick's work every quarter heartbeat interval.
  void Housekeeping(TimePoint now);
  // Hands ready messages of `slot` to its waiting consumers, least recently served first.
  void DispatchNow(QueueSlot& slot, TimePoint now);
  // Leases up to the consumer's batch (within its credit) and sends them in one DELIVER; false if
  // nothing could be leased.
  bool DeliverToClient(QueueSlot& slot, std::uint64_t consumer_id, TimePoint now);
  void MakeWaiting(std::uint64_t consumer_id);
  // Takes the consumer out of its queue's line of consumers with credit, if it is in it.
  void StopWaiting(Consumer& consumer);
  // A delivery tag no earlier delivery of this broker had, in this run or (durable brokers) any
  // earlier one; moves to the next epoch when this one's numbers run out.
  std::uint64_t NextTag();
  // Removes a delivery from the books after the queue settled or took it back.
  void ForgetDelivery(std::uint64_t tag);
  // Finds a delivery held by `key`; nullptr (and counted) if unknown or someone else's.
  Delivery* OwnDelivery(const SessionKey& key, std::uint64_t tag);
  // Puts a dead letter in its dead-letter queue and returns its number there (`number` when
  // replaying).
  std::uint64_t PlaceDeadLetter(DeadLetter dead, TimePoint now,
                                std::optional<std::uint64_t> number = std::nullopt);
  // After a failed delivery in `slot`: records it, and places and records its dead letter if any.
  void AfterFailure(QueueSlot& slot, MessageQueue::FailResult failed, FailureReason reason,
                    TimePoint now);
  // Writes the record `make()` returns, if a journal is listening — only then is it built (a
  // PUBLISH record copies the body; an in-memory broker must not pay for that).
  template <typename MakeRecord>
  void Emit(MakeRecord&& make) {
    if (journal_ != nullptr && !replaying_) journal_->Append(make());
  }
  static void PrepareRedrive(Envelope& message);
  // What the message a redrive would take next from `dlq` counts against its queue's max_bytes
  // once PrepareRedrive changed its headers; nullopt if none is ready.
  static std::optional<std::size_t> RedrivenFrontBytes(const MessageQueue& dlq);

  void Send(Side side, std::string_view peer, std::vector<zmq::message_t> frames);
  void SendDelivery(Side side, std::string_view peer, std::vector<zmq::message_t> frames,
                    std::vector<std::uint64_t> tags);
  void SendHeartbeat(Side side, std::string_view peer, std::vector<zmq::message_t> frames);
  void SendOk(const SessionKey& key);  // OK with the current command's rid
  // The ERROR carries `rid` if given, else the rid of the command being handled (if it had one),
  // so a client waiting for an answer to that command gets this one.
  void SendError(std::string_view peer, std::string_view code, const std::string& message,
                 std::string_view command, std::optional<std::uint64_t> rid = std::nullopt,
                 std::string_view limit = {});
  void SendError(std::string_view peer, const Refusal& refusal, std::string_view command) {
    SendError(peer, refusal.code, refusal.message, command, std::nullopt, refusal.limit);
  }
  void SendRejected(std::string_view peer, std::uint64_t seq, std::string_view code,
                    const std::string& message, std::string_view limit = {});
  void SendRejected(std::string_view peer, std::uint64_t seq, const Refusal& refusal) {
    SendRejected(peer, seq, refusal.code, refusal.message, refusal.limit);
  }
  void Log(std::string line);

  CoreOptions options_;
  std::function<std::string(const zmq::message_t&)> peer_identity_;
  DecodeLimits limits_;
  std::map<std::string, QueueSlot, std::less<>> queues_;  // std::map: QueueSlot* stay valid
  Exchanges exchanges_;
  std::map<SessionKey, Session> sessions_;
  std::unordered_map<std::uint64_t, Consumer> consumers_;
  std::unordered_map<std::uint64_t, Delivery> deliveries_;  // by delivery tag
  std::set<std::string> owed_confirms_;                     // client peers with confirm_upto set
  std::vector<QueueSlot*> dispatch_due_;
  // Every queue with something timed (a lease, a delay, a TTL), by its earliest such time, so that
  // Tick and NextDeadline look only at queues with something due, however many are idle. A queue
  // touched since it was indexed (every Dispatch, every lease, every extend) is re-indexed before
  // either reads the index when its deadline came earlier; an index entry may be early (a message
  // was acked), never late, and a queue whose entry comes due is taken out and indexed anew.
  mutable std::set<std::pair<TimePoint, QueueSlot*>> due_queues_;
  mutable std::vector<QueueSlot*> deadline_dirty_;
  void DeadlineChanged(QueueSlot& slot);
  void ReindexDeadlines() const;
  static void Reindex(QueueSlot& slot, std::set<std::pair<TimePoint, QueueSlot*>>& index);
  // Sessions whose connection refused a delivery, and when their consumers are tried again.
  std::map<SessionKey, TimePoint> paused_sessions_;
  void ResumePausedSessions(TimePoint now);
  TimePoint dispatch_time_{};  // the latest `now` a dispatch was asked for with
  // Clients dropped for silence, so that if one speaks again it is told its consumers are gone
  // (else it would wait for deliveries that never come). Oldest first; bounded.
  std::deque<std::string> expired_order_;
  std::unordered_set<std::string> expired_;
  std::uint64_t next_consumer_id_ = 1;
  // Delivery tags are tag_epoch_ << 32 | a counter from 1. A consumer may ack a tag long after it
  // was given — even to a later run of the broker, if it was busy while the broker restarted — so
  // a tag value is never given twice: a durable broker takes a new epoch at each start (journaled,
  // synced before it serves), a memory-only one a random epoch. Epochs stay below 2^21, so tags
  // stay below 2^53 and survive clients whose numbers are doubles (JavaScript, JSON).
  std::uint64_t tag_epoch_;
  std::uint64_t next_tag_counter_ = 1;
  std::uint64_t last_journaled_epoch_ = 0;  // from replay
  ReplayAudit replay_audit_;
  ProducerTable producers_;
  DedupWindow dedup_;
  // Replay: each queue's next message number, as the records so far gave them.
  std::unordered_map<std::string, std::uint64_t> replay_next_number_;
  void NoteReplayedNumber(const std::string& queue, std::uint64_t number);
  // The queue a record names, created with the defaults if new (whatever the limits now).
  QueueSlot& ReplayedQueue(const std::string& name);
  MessageQueue* FindReplayedQueue(const std::string& name);
  Status ApplyQueue(const records::Record& record);
  Status ApplyPublish(const records::Record& record, TimePoint now);
  Status ApplyAck(const records::Record& record);
  Status ApplyFail(const records::Record& record);
  Status ApplyDead(const records::Record& record, TimePoint now);
  Status ApplyRemove(const records::Record& record);
  Status ApplyRedrive(const records::Record& record, TimePoint now);
  Status ApplyRestore(const records::Record& record);
  Status ApplyReady(const records::Record& record);
  std::optional<TimePoint> next_housekeeping_;
  std::uint64_t current_rid_ = 0;  // of the native command being handled; 0 if none
  // ERRORs sent per peer in the current one-second window. A peer that sends nothing but bad
  // input and never reads would otherwise have the broker queue an answer for each message, up to
  // the send HWM; past the budget errors are counted (errors_unsent) instead.
  std::unordered_map<std::string, std::uint32_t> errors_in_window_;
  TimePoint error_window_start_{};
  TimePoint input_time_{};  // of the message being handled
  // Chosen anew at every start and sent with each HEARTBEAT to clients, so a client can tell a
  // restarted broker (which has forgotten its consumers and deliveries) from a slow one.
  std::string instance_;
  JournalSink* journal_ = nullptr;
  std::string confirm_level_ = "queued";
  std::optional<std::string> publish_refusal_;
  bool replaying_ = false;
  std::function<std::int64_t()> unix_micros_;
  std::vector<Outgoing> outbox_;
  std::vector<std::string> log_;
  int log_budget_ = 20;
  std::uint64_t log_suppressed_ = 0;
  BrokerCounters counters_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_CORE_BROKER_CORE_H_
