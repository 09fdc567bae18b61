#include "broker/loop/commit_scheduler.h"

#include <utility>

namespace zmqkit::internal {

CommitScheduler::CommitScheduler(CommitJournal& journal, const Clock& clock, CommitPolicy policy,
                                 CommitEvents& events)
    : journal_(journal), clock_(clock), policy_(policy), events_(events) {}

void CommitScheduler::EndTurn(std::vector<Outgoing>& outbox, std::vector<Outgoing>& send) {
  if (journal_.pending() > 0) {
    if (Status written = journal_.Write(); !written.ok()) {
      Failed(written);
    } else {
      // With fsync "never", written is as synced as it gets: this releases it.
      CheckRecovered(Release(send));
      if (events_.AfterWrite()) Release(send);
    }
  }
  const std::uint64_t synced = journal_.synced();
  // Once the records a failed write left pending are written too.
  const std::uint64_t all = journal_.written() + journal_.pending();
  for (Outgoing& out : outbox) {
    std::uint64_t needs = all;
    bool keep_order = true;
    switch (out.waits_for) {
      case WaitsFor::kNothing:
        send.push_back(std::move(out));
        continue;
      case WaitsFor::kWrite:
        // A delivery's records are written (or, while writes fail, it goes anyway: the message it
        // hands out was journaled when it was published). Under group commit a sync is not
        // started for it: what it needs is already as safe as a delivery needs.
        if (policy_.group_commit) needs = 0;
        break;
      case WaitsFor::kSync:
        // While the journal fails, only confirms wait for the records it cannot write; a refusal
        // or a STATS reply must get through.
        if (failing_ && !out.confirm) {
          needs = journal_.written();
          keep_order = false;
        }
        break;
    }
    if (gate_.Pass(out, needs, synced, keep_order)) send.push_back(std::move(out));
  }
  outbox.clear();
  StartSyncIfWanted(clock_.Now());
}

void CommitScheduler::SyncFinished(std::vector<Outgoing>& send) {
  if (Status synced = journal_.FinishSync(); !synced.ok()) {
    Failed(synced);
    next_sync_allowed_ = clock_.Now() + policy_.retry_after_failure;
    return;
  }
  next_sync_allowed_.reset();
  CheckRecovered(Release(send));
}

std::size_t CommitScheduler::Release(std::vector<Outgoing>& send) {
  const std::size_t before = send.size();
  gate_.Release(journal_.synced(), send);
  return send.size() - before;
}

std::optional<TimePoint> CommitScheduler::NextWake() const {
  std::optional<TimePoint> wake;
  auto consider = [&](std::optional<TimePoint> at) {
    if (at && (!wake || *at < *wake)) wake = at;
  };
  // To write again: a failed write leaves its records pending, and only a turn writes.
  if (failing_) consider(clock_.Now() + policy_.retry_after_failure);
  consider(LazySyncAt());
  consider(next_sync_allowed_);
  consider(sync_held_until_);
  return wake;
}

void CommitScheduler::Failed(const Status& failure) {
  events_.JournalFailed(failure, !failing_);
  failing_ = true;
}

void CommitScheduler::CheckRecovered(std::size_t released) {
  if (!failing_ || journal_.pending() > 0 || journal_.synced() < journal_.written()) return;
  failing_ = false;
  events_.JournalRecovered(released);
}

std::optional<TimePoint> CommitScheduler::LazySyncAt() const {
  if (journal_.syncing()) return std::nullopt;
  auto since = journal_.unsynced_since();
  if (!since) return std::nullopt;
  return *since + policy_.max_unsynced_age;
}

void CommitScheduler::StartSyncIfWanted(TimePoint now) {
  sync_held_until_.reset();
  if (journal_.syncing() || journal_.synced() == journal_.written()) return;
  if (next_sync_allowed_ && now < *next_sync_allowed_) return;
  if (policy_.group_commit) {
    // Group commit syncs for what waits on it, or for records nothing waits on once they have
    // waited max_unsynced_age (acks and the like, which a crash may otherwise undo for long).
    const auto lazy_at = LazySyncAt();
    if (gate_.highest_need() <= journal_.synced() && !(lazy_at && now >= *lazy_at)) return;
    if (last_sync_start_ && now < *last_sync_start_ + policy_.min_sync_interval) {
      // Too soon after the last one: what arrives meanwhile joins this sync.
      sync_held_until_ = *last_sync_start_ + policy_.min_sync_interval;
      return;
    }
  }
  journal_.StartSync();
  last_sync_start_ = now;
}

}  // namespace zmqkit::internal
