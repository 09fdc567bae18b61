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
#ifndef ZMQKIT_SRC_BROKER_MESSAGE_QUEUE_H_
#define ZMQKIT_SRC_BROKER_MESSAGE_QUEUE_H_

#include <array>
#include <cstdint>
#include <deque>
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
  struct TickResult {
    std::vector<TimedOut> timed_out;  // leases taken back because their deadline passed
    std::vector<DeadLetter> dead;     // expired messages, and timed-out ones out of attempts
  };

  MessageQueue(std::string name, const QueueOptions& options);

  // Adds a message and returns its number (increasing in publish order). kResourceExhausted
  // ("queue full") if max_length or max_bytes would be passed.
  Result<std::uint64_t> Publish(Envelope envelope, EnqueueOptions options, TimePoint now);
  // Whether Publish would accept this message now (for all-or-nothing fanout).
  Status CheckRoom(const Envelope& envelope, const EnqueueOptions& options) const;
  // Hands the next ready message out under `tag` until now + ack_timeout; nullopt if none is ready.
  // REQUIRES: `tag` is not in flight in this queue.
  std::optional<Lease> LeaseNext(std::uint64_t tag, TimePoint now, Duration ack_timeout);
  // Settles a delivery and returns the message's number; nullopt if `tag` is not in flight here.
  std::optional<std::uint64_t> Ack(std::uint64_t tag);
  // A delivery failed. With `requeue`, the message is ready again (after a back-off, except for
  // kConsumerLost) or dead-lettered if out of attempts or expired; without, it is dead-lettered as
  // rejected.
  FailResult Fail(std::uint64_t tag, FailureReason reason, bool requeue, TimePoint now);
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
  std::optional<DeadLetter> KillNumber(std::uint64_t number, DeadLetterReason reason);
  bool Remove(std::uint64_t number);
  bool Settle(std::uint64_t number);  // as Remove, counted as acked
  std::optional<Envelope> Take(std::uint64_t number);
  // The message TakeReady(1) would take, or null.
  const Envelope* PeekReady() const;

  // What the queue holds, for inspection and tests: ready messages in delivery order, then delayed
  // ones by due time, then in-flight ones by number.
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
  std::vector<MessageView> Contents() const;

  // Compaction: everything needed to write the queue's messages anew, by number. `attempt` is the
  // count a restart would restore (an in-flight delivery is not counted, as in the journal).
  struct SnapshotEntry {
    std::uint64_t number;
    const Envelope* envelope;
    const std::string* reply_to;
    std::optional<TimePoint> due;         // delayed (a publish delay or a back-off)
    std::optional<TimePoint> expires_at;
    std::uint32_t attempt;
    const std::string* history;
  };
  std::vector<SnapshotEntry> SnapshotEntries() const;
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
  std::size_t size() const { return entries_.size(); }
  std::size_t bytes() const { return bytes_; }
  const QueueCounters& counters() const { return counters_; }

 private:
  enum class Place { kReady, kDelayed, kInFlight };
  // What few messages carry, kept out of line: two empty strings inline would cost every queued
  // message 64 bytes (docs/performance.md, memory).
  struct Extras {
    std::string reply_to;
    std::string history;  // comma-separated FailureReasonName of each failed delivery
  };
  struct Entry {
    Envelope envelope;
    std::unique_ptr<Extras> extras;
    std::optional<TimePoint> expires_at;
    const std::string& reply_to() const { return extras ? extras->reply_to : Empty(); }
    const std::string& history() const { return extras ? extras->history : Empty(); }
    Extras& mutable_extras() {
      if (!extras) extras = std::make_unique<Extras>();
      return *extras;
    }
    void AddFailure(std::string_view reason) {
      std::string& text = mutable_extras().history;
      if (!text.empty()) text += ',';
      text += reason;
    }
    static const std::string& Empty() {
      static const std::string empty;
      return empty;
    }
    std::uint32_t failures = 0;
    std::size_t bytes = 0;
    Place place = Place::kReady;
    // Position in the ready order. Set at publish, kept across requeues (so a taken-back message
    // returns to where it was: ahead of newer ones, in its original order), and renewed when a
    // publish delay ends (a delayed message joins the back of the line when it becomes due).
    std::uint64_t order = 0;
    bool requeued = false;      // kDelayed because of a back-off: keep `order` when it is due
    TimePoint due{};            // kDelayed
    std::uint64_t tag = 0;      // kInFlight
    TimePoint deadline{};       // kInFlight
  };
  using Key = std::pair<std::uint64_t, std::uint64_t>;

  void MakeReady(std::uint64_t number, Entry& entry);
  void MakeDelayed(std::uint64_t number, Entry& entry, TimePoint due);
  // Removes the entry from entries_ and every index that holds it.
  void Erase(std::uint64_t number);
  DeadLetter Kill(std::uint64_t number, DeadLetterReason reason);
  // After a failed delivery: ready again (maybe after a back-off) or dead-lettered.
  std::optional<DeadLetter> Requeue(std::uint64_t number, FailureReason reason, TimePoint now);
  Duration RetryDelay(std::uint32_t failures) const;

  std::string name_;
  QueueOptions options_;
  std::uint64_t next_number_ = 1;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::array<std::set<Key>, kMaxPriority + 1> ready_;  // per priority: (order, number)
  std::size_t ready_count_ = 0;
  std::set<std::pair<TimePoint, std::uint64_t>> delayed_;     // (due, number)
  std::set<std::pair<TimePoint, std::uint64_t>> expiries_;   // (expires_at, number), not in flight
  std::unordered_map<std::uint64_t, std::uint64_t> in_flight_;  // tag -> number
  std::set<std::pair<TimePoint, std::uint64_t>> deadlines_;     // (deadline, tag)
  std::size_t bytes_ = 0;
  QueueCounters counters_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_MESSAGE_QUEUE_H_
