// MessageQueue: one broker queue's state machine. Pure: no sockets, no clock reads — every method
// that depends on time takes `now`.
//
// A message is in exactly one of three places:
//   ready     waiting for a consumer, in one FIFO per priority (9 first); taken-back messages go to
//             the front of theirs, ahead of newer ones
//   delayed   not ready before a time: published with a delay, or backing off after a failure
//   in flight leased to a consumer under a delivery tag until acked, failed, or its deadline passes
// Every path out of the queue other than an ack ends in a DeadLetter the caller must place (the
// broker puts it in "<queue>.dlq"): nothing is dropped silently.
//
// Which consumer gets a lease, and what a tag means to a session, is the broker core's business;
// this class only needs tags to be unique while in flight.
//
// Storage is built for deep queues (docs/performance.md, memory). A message nobody has touched
// yet (published ready, no TTL, a body of at most 4 KiB) is an entry in its priority's PackedLog:
// its body and about 14 bytes, no object of its own. Once it is leased, failed, delayed or named
// by number for a change, it becomes a Record: a fixed-size slot from a pool, found by number
// through a dense index, with its body in one exact-sized buffer and the fields few messages carry
// (headers, stream, reply_to, failure history, a big body kept by reference) out of line. The
// ready order of a priority merges three sequences, each in order: the packed log, a FIFO of the
// numbers of fresh records, and a small ordered set of taken-back messages, which return ahead of
// newer ones. So queuing a message allocates nothing but, now and then, a chunk of its log.
#ifndef ZMQKIT_SRC_BROKER_CORE_MESSAGE_QUEUE_H_
#define ZMQKIT_SRC_BROKER_CORE_MESSAGE_QUEUE_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "zmqkit/clock.h"
#include "zmqkit/envelope.h"
#include "zmqkit/queue_options.h"
#include "zmqkit/status.h"
#include "broker/core/packed_log.h"

namespace zmqkit::internal {

using Duration = std::chrono::steady_clock::duration;

// Why a delivery failed. The name goes into the message's attempt history.
enum class FailureReason { kRejected, kTimedOut, kConsumerLost };
std::string_view FailureReasonName(FailureReason reason);  // "rejected", "timeout", "consumer-lost"

// Why a message left for the dead-letter queue.
enum class DeadLetterReason { kRejected, kExpired, kMaxAttempts };
std::string_view DeadLetterReasonName(DeadLetterReason reason);  // "rejected", "expired", "max-attempts"

// Dead-letter headers, set on the envelope when it leaves.
inline constexpr std::string_view kHeaderOriginQueue = "x-origin-queue";
inline constexpr std::string_view kHeaderDeathReason = "x-death-reason";
inline constexpr std::string_view kHeaderAttempts = "x-attempts";
inline constexpr std::string_view kHeaderAttemptHistory = "x-attempt-history";

struct DeadLetter {
  Envelope envelope;  // with the dead-letter headers set
  DeadLetterReason reason;
  std::uint64_t number;  // the message's number in the queue it left
};

struct EnqueueOptions {
  std::optional<Duration> delay;  // not deliverable before now + delay
  std::optional<Duration> ttl;    // overrides the queue's message_ttl
  // Restoring from the journal: the message never expires, whatever the queue's message_ttl is now
  // (it entered while the queue had none, and a TTL is fixed when a message enters).
  bool no_ttl = false;
  std::string reply_to;           // opaque to the queue; handed back with each lease
  // Restoring from the journal: the number the message had. Live publishes leave it empty and get
  // the next number.
  std::optional<std::uint64_t> number;
  // Restoring from the journal: accept even past max_length/max_bytes (the message was accepted
  // once; options may have changed since).
  bool ignore_limits = false;
};

struct QueueCounters {
  std::uint64_t published = 0;
  std::uint64_t refused_full = 0;
  std::uint64_t delivered = 0;  // leases handed out, redeliveries included
  std::uint64_t acked = 0;
  std::uint64_t requeued = 0;
  std::uint64_t dead_lettered = 0;
  std::uint64_t expired = 0;    // of which dead-lettered for their TTL
  std::uint64_t purged = 0;
};

class MessageQueue {
 public:
  struct Lease {
    std::uint64_t tag;
    std::uint64_t number;
    Envelope envelope;     // a copy sharing the body; attempt already counts this delivery
    std::string reply_to;
    TimePoint deadline;
  };
  struct FailResult {
    bool found = false;                // the tag was in flight here
    std::uint64_t number = 0;          // the message's number
    std::uint32_t attempt = 0;         // the attempt that failed
    std::optional<DeadLetter> dead;    // set if the message left for the dead-letter queue
  };
  struct TimedOut {
    std::uint64_t tag;
    std::uint64_t number;
    std::uint32_t attempt;
  };
  // A message whose publish delay ended: it joined the back of the ready order at `order` (taken
  // from the message numbers, so it stands behind every message published before it became due
  // and ahead of every later one). When that happened depends on when Tick ran, so the broker
  // journals it (READY) for replay to put the message in the same place.
  struct Readied {
    std::uint64_t number;
    std::uint64_t order;
  };
  struct TickResult {
    std::vector<TimedOut> timed_out;  // leases taken back because their deadline passed
    std::vector<DeadLetter> dead;     // expired messages, and timed-out ones out of attempts
    std::vector<Readied> readied;     // publish delays that ended, in the order they did
  };

  MessageQueue(std::string name, const QueueOptions& options);

  // Adds a message and returns its number (increasing in publish order). kResourceExhausted
  // ("queue full") if max_length or max_bytes would be passed.
  Result<std::uint64_t> Publish(Envelope envelope, EnqueueOptions options, TimePoint now);
  // Whether Publish would accept this message now (for all-or-nothing fanout).
  Status CheckRoom(const Envelope& envelope, const EnqueueOptions& options) const;
  // The same, for a message counting `bytes` against max_bytes (see ReadyFrontBytes).
  Status CheckRoom(std::size_t bytes) const;
  // Hands the next ready message out under `tag` until now + ack_timeout; nullopt if none is ready.
  // REQUIRES: `tag` is not in flight in this queue.
  std::optional<Lease> LeaseNext(std::uint64_t tag, TimePoint now, Duration ack_timeout);
  // Settles a delivery and returns the message's number; nullopt if `tag` is not in flight here.
  std::optional<std::uint64_t> Ack(std::uint64_t tag);
  // A delivery failed. With `requeue`, the message is ready again (after a back-off, except for
  // kConsumerLost) or dead-lettered if out of attempts or expired; without, it is dead-lettered as
  // rejected.
  FailResult Fail(std::uint64_t tag, FailureReason reason, bool requeue, TimePoint now);
  // Takes a lease back as if it had never been given: the message is ready again in its place,
  // its attempt count and the queue's "delivered" as before, no failure recorded. For a delivery
  // that never left the broker (the consumer's connection would not take it). False if `tag` is
  // not in flight here.
  bool Unlease(std::uint64_t tag);
  // Moves a lease's deadline. False if `tag` is not in flight here.
  bool Extend(std::uint64_t tag, TimePoint deadline);
  // Everything time has made due: delayed messages become ready, TTLs expire, leases time out.
  TickResult Tick(TimePoint now);
  // The earliest time Tick() has work to do.
  std::optional<TimePoint> NextDeadline() const;

  // Removes every ready and delayed message; in-flight ones stay. Returns the numbers removed.
  std::vector<std::uint64_t> Purge();
  // Removes up to `limit` ready messages, oldest first within each priority, highest first.
  std::vector<std::pair<std::uint64_t, Envelope>> TakeReady(std::size_t limit);

  // Replaying the journal: the same state changes as live operation, named by message number.
  // Each returns false (or nullopt) if there is no such message.
  // A delivery of message `number` failed as attempt `attempt` and it was requeued.
  bool RestoreFailure(std::uint64_t number, std::uint32_t attempt, FailureReason reason);
  // Message `number` became ready at `order` in the ready order (a Readied, from the journal or a
  // snapshot). It is delayed (its publish delay ended) or, in a snapshot, was just published
  // ready: the last of its lane's fresh messages, or packed. The queue's numbering continues
  // after `order`.
  bool RestoreReady(std::uint64_t number, std::uint64_t order);
  std::optional<DeadLetter> KillNumber(std::uint64_t number, DeadLetterReason reason);
  bool Remove(std::uint64_t number);
  bool Settle(std::uint64_t number);  // as Remove, counted as acked
  std::optional<Envelope> Take(std::uint64_t number);
  // What the message TakeReady(1) would take counts against max_bytes; nullopt if none is ready.
  std::optional<std::size_t> ReadyFrontBytes() const;

  // What the queue holds, for inspection and tests: ready messages in delivery order, then delayed
  // ones by due time, then in-flight ones by number; the first `limit` of them.
  struct MessageView {
    std::uint64_t number;
    std::string_view place;  // "ready", "delayed", "in-flight"
    std::uint8_t priority;
    std::uint32_t attempt;
    std::string history;
    Headers headers;
    std::string body;
    friend bool operator==(const MessageView&, const MessageView&) = default;
  };
  std::vector<MessageView> Contents(std::size_t limit = SIZE_MAX) const;

  // Compaction: everything needed to write the queue's messages anew, by number. `attempt` is the
  // count a restart would restore (an in-flight delivery is not counted, as in the journal).
  struct SnapshotEntry {
    std::uint64_t number;
    Envelope envelope;  // made for the visit: a big body is shared, a small one copied
    std::string_view reply_to;
    std::optional<TimePoint> due;         // delayed (a publish delay or a back-off)
    std::optional<TimePoint> expires_at;
    std::uint32_t attempt;
    std::string_view history;
    // Its place in the ready order where that is not its number (a publish delay ended).
    std::optional<std::uint64_t> order;
  };
  // Calls `visit` for every message, by number, one at a time (no copy of the whole queue).
  void VisitSnapshot(const std::function<void(const SnapshotEntry&)>& visit) const;
  std::uint64_t next_number() const { return next_number_; }
  void set_next_number(std::uint64_t number) { next_number_ = std::max(next_number_, number); }
  // Replay of a snapshot: sets a message's attempt count and failure history.
  bool RestoreState(std::uint64_t number, std::uint32_t attempt, const std::string& history);

  const std::string& name() const { return name_; }
  const QueueOptions& options() const { return options_; }
  void set_options(const QueueOptions& options) { options_ = options; }
  std::size_t ready() const { return ready_count_; }
  std::size_t delayed() const { return delayed_.size(); }
  std::size_t in_flight() const { return in_flight_.size(); }
  std::size_t size() const { return live_; }
  std::size_t bytes() const { return bytes_; }
  const QueueCounters& counters() const { return counters_; }
  // What the storage holds, to check that it stays proportional to the messages in the queue.
  struct StorageStats {
    std::size_t records = 0;        // record slots allocated, in use or free
    std::size_t index_slots = 0;    // number-indexed slots, in use or holes
    std::size_t outliers = 0;       // messages kept out of the index (see CompactIndex)
    std::size_t packed_bytes = 0;   // chunks of the packed logs
  };
  StorageStats storage() const;

 private:
  enum class Place : std::uint8_t { kReady, kDelayed, kInFlight };
  // A body bigger than this is kept as the zmq::message_t it arrived in (shared, not copied). A
  // smaller one is copied into a message of its own: received, it points into libzmq's 8 KiB
  // receive buffer, which stays allocated (with libzmq's per-message counters beside it, about
  // 18 KiB in all) while any message in it is referenced, about 450 bytes per queued 100-byte
  // message.
  static constexpr std::size_t kOwnedBodyLimit = 4096;
  // What few messages carry, kept out of line: inline, these would cost every queued message
  // about 200 bytes (docs/performance.md, memory).
  struct Extras {
    std::string stream;
    Headers headers;
    std::string reply_to;
    std::string history;  // comma-separated FailureReasonName of each failed delivery
  };
  struct Record {
    MessageId id;
    std::int64_t created_us = 0;
    std::uint64_t seq = 0;
    // Position in the ready order. Set at publish, kept across requeues (so a taken-back message
    // returns to where it was: ahead of newer ones, in its original order), and renewed when a
    // publish delay ends (a delayed message joins the back of the line when it becomes due).
    std::uint64_t order = 0;
    TimePoint expires_at = TimePoint::max();  // max: no TTL
    TimePoint when{};                         // kDelayed: when due; kInFlight: the lease's deadline
    std::uint64_t tag = 0;                    // kInFlight
    // A zmq::message_t so that a delivery's frame shares it (a reference count, no copy; 33
    // bytes or fewer are held inline and copied). 64 bytes, where a pointer and a size would be
    // 12: records are only for messages in flight, delayed, with a TTL or taken back, while a
    // backlog's untouched messages are packed.
    zmq::message_t body;
    std::unique_ptr<Extras> extras;
    std::uint32_t attempt = 0;
    std::uint32_t failures = 0;
    std::uint8_t priority = 0;
    Place place = Place::kReady;
    bool requeued = false;  // kDelayed because of a back-off: keep `order` when it is due
    bool returned = false;  // kReady in its lane's `returned` set rather than its FIFO

    bool expires() const { return expires_at != TimePoint::max(); }
    Extras& mutable_extras() {
      if (!extras) extras = std::make_unique<Extras>();
      return *extras;
    }
    std::string_view reply_to() const { return extras ? std::string_view(extras->reply_to) : ""; }
    std::string_view history() const { return extras ? std::string_view(extras->history) : ""; }
  };
  // Records come from here in blocks (growing to a few thousand) and go back to a free list; a
  // queue that empties gives all its blocks back.
  class RecordPool {
   public:
    Record* Allocate();
    void Release(Record* record);
    void ReleaseAll();
    std::size_t capacity() const { return capacity_; }

   private:
    std::vector<std::unique_ptr<Record[]>> blocks_;
    std::size_t last_block_size_ = 0;
    std::size_t used_in_last_ = 0;
    std::size_t capacity_ = 0;
    std::vector<Record*> free_;
  };
  // One priority's ready messages, in three sequences each in ready order: untouched ones packed;
  // fresh records (published with a TTL, or due after a delay) in a FIFO of numbers (numbers of
  // messages erased since are skipped when they reach the front); taken-back ones, few, in a set.
  struct Lane {
    PackedLog packed;  // order == number
    std::deque<std::uint64_t> fresh;
    std::uint64_t last_fresh_order = 0;
    std::set<std::pair<std::uint64_t, std::uint64_t>> returned;  // (order, number)
    std::size_t count = 0;
  };

  // The record of message `number`; null if it has none (it may still be packed).
  Record* Find(std::uint64_t number) const;
  // The record of message `number`, unpacking it if it is packed; null if the queue lacks it.
  Record* Locate(std::uint64_t number);
  // The priority and entry of message `number` if it is packed.
  std::optional<std::pair<std::uint8_t, PackedMessage>> FindPacked(std::uint64_t number) const;
  // Whether the queue holds message `number`, packed or not.
  bool Holds(std::uint64_t number) const;
  Record& Insert(std::uint64_t number);
  // A record for a packed message (its log entry is left to the caller), ready order == number.
  Record& Unpack(const PackedMessage& message, std::uint8_t priority);
  // Removes a packed message; false if none is packed under `number`.
  bool ErasePacked(std::uint64_t number);
  // Moves the records that keep the index from shrinking into `outliers_`, once the index is
  // mostly holes: a message that stays (a long delay, a stuck lease) must not make every message
  // that passes it cost an index slot.
  void CompactIndex();
  // Calls fn(number, record) for every message with a record, by number.
  template <typename Fn> void ForEachByNumber(Fn&& fn) const;
  // Calls fn(number, record, packed, priority) for every message, by number: `record` set for one
  // with a record, `packed` (and its lane's priority) for a packed one.
  template <typename Fn> void ForEachMessage(Fn&& fn) const;
  Lane& LaneAt(std::uint8_t priority);
  Lane& LaneOf(const Record& record) { return LaneAt(record.priority); }
  // Where a lane's next ready message is.
  enum class Source : std::uint8_t { kPacked, kFresh, kReturned };
  struct Front {
    std::uint64_t order;
    std::uint64_t number;
    Source source;
  };
  // The next ready message of a lane, dropping erased numbers off its FIFO (const: that changes
  // nothing any caller can observe).
  std::optional<Front> LaneFront(Lane& lane) const;
  // Removes the next ready message from the ready order and returns its number.
  std::optional<std::uint64_t> PopReady();
  void MakeReady(std::uint64_t number, Record& record);
  void MakeDelayed(std::uint64_t number, Record& record, TimePoint due);
  // Removes the record from every index that holds it and frees it.
  void Erase(std::uint64_t number);
  // An envelope of the message: a copy (sharing a big body), or its fields moved out.
  static Envelope EnvelopeWithoutExtras(const Record& record);
  static Envelope CopyEnvelope(const Record& record);
  static Envelope MoveEnvelope(Record& record);
  static Envelope PackedEnvelope(const PackedMessage& message, std::uint8_t priority);
  static std::size_t Bytes(const Record& record);
  DeadLetter Kill(std::uint64_t number, DeadLetterReason reason);
  // After a failed delivery: ready again (maybe after a back-off) or dead-lettered.
  std::optional<DeadLetter> Requeue(std::uint64_t number, FailureReason reason, TimePoint now);
  Duration RetryDelay(std::uint32_t failures) const;

  std::string name_;
  QueueOptions options_;
  std::uint64_t next_number_ = 1;
  RecordPool pool_;
  std::size_t live_ = 0;          // messages, packed or not
  std::size_t records_live_ = 0;  // messages with a record
  std::uint64_t base_ = 0;                // the number index_[0] stands for
  std::deque<Record*> index_;             // by number - base_; null where none
  std::map<std::uint64_t, Record*> outliers_;  // numbers below base_ still held
  std::array<std::unique_ptr<Lane>, kMaxPriority + 1> lanes_;
  std::size_t ready_count_ = 0;
  std::set<std::pair<TimePoint, std::uint64_t>> delayed_;     // (due, number)
  std::set<std::pair<TimePoint, std::uint64_t>> expiries_;   // (expires_at, number), not in flight
  std::unordered_map<std::uint64_t, std::uint64_t> in_flight_;  // tag -> number
  std::set<std::pair<TimePoint, std::uint64_t>> deadlines_;     // (deadline, tag)
  std::size_t bytes_ = 0;
  QueueCounters counters_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_CORE_MESSAGE_QUEUE_H_
