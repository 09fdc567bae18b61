// CommitScheduler: when the broker's journal writes and syncs, and when what waits on it may leave.
//
// Each turn of the broker's loop ends with EndTurn(): the records the turn appended are written,
// and each message the turn produced is either sent at once or held (OutputGate) until the records
// it depends on are synced — a CONFIRM until its publishes are on disk. The sync itself runs on
// the journal's own thread; the scheduler decides when to start one:
//
//   - fsync "always": as soon as something written is unsynced.
//   - fsync "batch" (group commit): only when a held message waits for it, no sooner than
//     min_sync_interval after the previous sync began (what arrives meanwhile joins it), and at
//     the latest max_unsynced_age after an unsynced record nothing waits for (an ack) was written.
//   - After a failed sync or write: not again before retry_after_failure. While the journal fails,
//     publishes are refused (CommitEvents::JournalFailed), confirms stay held, and replies that
//     need only what could be written (a refusal, STATS) still leave.
//
// It reads time only from the injected Clock and touches the disk only through CommitJournal, so
// every rule above is unit-tested with a manual clock and an in-memory journal, without sleeps.
#ifndef ZMQKIT_SRC_BROKER_LOOP_COMMIT_SCHEDULER_H_
#define ZMQKIT_SRC_BROKER_LOOP_COMMIT_SCHEDULER_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "broker/core/broker_core.h"
#include "broker/loop/output_gate.h"
#include "zmqkit/clock.h"
#include "zmqkit/status.h"

namespace zmqkit::internal {

// What the scheduler needs of a journal (storage/journal.h implements it). Records are numbered
// as they are written; written() and synced() count them.
class CommitJournal {
 public:
  virtual ~CommitJournal() = default;
  // Records appended and not yet written.
  virtual std::size_t pending() const = 0;
  // Hands the pending records to the OS; on failure they stay pending.
  virtual Status Write() = 0;
  virtual std::uint64_t written() const = 0;
  virtual std::uint64_t synced() const = 0;
  // Starts syncing what is written, in the background; nothing if one runs or nothing is unsynced.
  virtual void StartSync() = 0;
  virtual bool syncing() const = 0;
  // The result of a finished background sync; on failure what it covered is pending again.
  virtual Status FinishSync() = 0;
  // Since when a written record has been waiting for a sync (nullopt: none is).
  virtual std::optional<TimePoint> unsynced_since() const = 0;
};

// What the scheduler tells the broker.
class CommitEvents {
 public:
  virtual ~CommitEvents() = default;
  // A write or sync failed. `first` when the journal was working until now: the broker logs it
  // and refuses publishes until JournalRecovered.
  virtual void JournalFailed(const Status& failure, bool first) = 0;
  // Everything the failure held back is written and synced; `released` messages left with it.
  virtual void JournalRecovered(std::size_t released) = 0;
  // Pending records were written and none is left pending: the moment compaction may run (it
  // needs nothing pending). True if it synced the journal (a compaction's snapshot counts as a
  // sync of everything before it): the scheduler then releases what that made durable.
  virtual bool AfterWrite() = 0;
};

struct CommitPolicy {
  bool group_commit = false;  // fsync "batch"; else a sync starts whenever something is unsynced
  std::chrono::steady_clock::duration min_sync_interval{};
  std::chrono::steady_clock::duration max_unsynced_age = std::chrono::milliseconds(100);
  std::chrono::steady_clock::duration retry_after_failure = std::chrono::milliseconds(100);
};

class CommitScheduler {
 public:
  CommitScheduler(CommitJournal& journal, const Clock& clock, CommitPolicy policy, CommitEvents& events);

  // Ends a turn: writes what it journaled, then moves each message of `outbox` to `send` (to be
  // sent now, in order) or into the gate, and starts a sync if one is wanted. `outbox` is left
  // empty. Also appends to `send` what earlier turns held and is now synced.
  void EndTurn(std::vector<Outgoing>& outbox, std::vector<Outgoing>& send);
  // The journal's sync thread has finished (its event fd was readable): takes the result and
  // appends to `send` what it released.
  void SyncFinished(std::vector<Outgoing>& send);
  // Appends to `send` whatever is synced now; for a sync the journal took on its own (a
  // compaction's snapshot, the blocking commit at shutdown).
  std::size_t Release(std::vector<Outgoing>& send);
  // Whether a sync that is wanted is being held back for min_sync_interval, and until when (the
  // loop arms a timer for it, finer than its poll timeout).
  std::optional<TimePoint> sync_held_until() const { return sync_held_until_; }
  // The earliest time the loop must run a turn for the scheduler's sake (a held-back sync, a lazy
  // sync, a retry after a failure); nullopt: only input or the sync's completion can change
  // anything.
  std::optional<TimePoint> NextWake() const;
  bool failing() const { return failing_; }
  std::size_t held() const { return gate_.held(); }

 private:
  void Failed(const Status& failure);
  void CheckRecovered(std::size_t released);
  void StartSyncIfWanted(TimePoint now);
  std::optional<TimePoint> LazySyncAt() const;

  CommitJournal& journal_;
  const Clock& clock_;
  const CommitPolicy policy_;
  CommitEvents& events_;
  OutputGate gate_;
  bool failing_ = false;
  // After a failure the next sync waits until then: a disk that fails every sync must not make
  // the loop spin on it.
  std::optional<TimePoint> next_sync_allowed_;
  std::optional<TimePoint> last_sync_start_;
  std::optional<TimePoint> sync_held_until_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_LOOP_COMMIT_SCHEDULER_H_
