// CommitScheduler: when the journal syncs and when what waits on it leaves — fsync "always",
// group commit with its spacing and lazy syncs, failed writes and syncs — with a manual clock and a
// journal in memory whose syncs finish when the test says.
#include "broker/loop/commit_scheduler.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace zmqkit::internal {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// Counts records the way storage/journal.h does; a sync runs until Complete() ends it.
class MemoryJournal final : public CommitJournal {
 public:
  explicit MemoryJournal(const ManualClock& clock) : clock_(clock) {}

  void Append(std::uint64_t records) { pending_ += records; }
  std::size_t pending() const override { return pending_; }
  Status Write() override {
    ++writes;
    if (fail_writes) return Status::IOError("write: no space left on device");
    if (pending_ > 0 && !unsynced_since_) unsynced_since_ = clock_.Now();
    written_ += pending_;
    pending_ = 0;
    return Status::Ok();
  }
  std::uint64_t written() const override { return written_; }
  std::uint64_t synced() const override { return synced_; }
  void StartSync() override {
    if (running_ || synced_ == written_) return;
    running_ = true;
    sync_upto_ = written_;
    ++syncs_started;
  }
  bool syncing() const override { return running_; }
  Status FinishSync() override {
    if (!finished_) return Status::Ok();
    finished_ = false;
    if (!sync_ok_) {
      // As the journal does: what the failed sync covered is to be written again.
      pending_ += written_ - synced_;
      written_ = synced_;
      unsynced_since_.reset();
      return Status::IOError("fdatasync: input/output error");
    }
    synced_ = sync_upto_;
    unsynced_since_ = synced_ < written_ ? std::optional(clock_.Now()) : std::nullopt;
    return Status::Ok();
  }
  std::optional<TimePoint> unsynced_since() const override { return unsynced_since_; }

  // The running sync ends (the scheduler learns it in FinishSync).
  void Complete(bool ok = true) {
    ASSERT_TRUE(running_) << "no sync runs";
    running_ = false;
    finished_ = true;
    sync_ok_ = ok;
  }
  // What a compaction's snapshot does: everything written is synced.
  void SyncEverything() {
    synced_ = written_;
    unsynced_since_.reset();
  }

  bool fail_writes = false;
  int writes = 0;
  int syncs_started = 0;

 private:
  const ManualClock& clock_;
  std::uint64_t pending_ = 0;
  std::uint64_t written_ = 0;
  std::uint64_t synced_ = 0;
  bool running_ = false;
  bool finished_ = false;
  bool sync_ok_ = true;
  std::uint64_t sync_upto_ = 0;
  std::optional<TimePoint> unsynced_since_;
};

class RecordingEvents final : public CommitEvents {
 public:
  void JournalFailed(const Status& failure, bool first) override {
    failures.push_back(failure.message());
    if (first) ++first_failures;
  }
  void JournalRecovered(std::size_t released) override { recoveries.push_back(released); }
  bool AfterWrite() override {
    ++after_writes;
    if (!compact_next) return false;
    compact_next = false;
    journal->SyncEverything();
    return true;
  }

  MemoryJournal* journal = nullptr;
  std::vector<std::string> failures;
  int first_failures = 0;
  std::vector<std::size_t> recoveries;
  int after_writes = 0;
  bool compact_next = false;
};

Outgoing Message(const std::string& peer, const std::string& text, WaitsFor waits_for,
                 bool confirm = false) {
  Outgoing out;
  out.side = Side::kClients;
  out.peer = peer;
  out.frames.emplace_back(text.data(), text.size());
  out.waits_for = waits_for;
  out.confirm = confirm;
  return out;
}

std::vector<std::string> Texts(const std::vector<Outgoing>& messages) {
  std::vector<std::string> texts;
  for (const Outgoing& out : messages) texts.push_back(out.frames.at(0).to_string());
  return texts;
}

class CommitSchedulerTest : public ::testing::Test {
 protected:
  explicit CommitSchedulerTest(bool group_commit = false) : policy_(Policy(group_commit)) {
    events_.journal = &journal_;
  }
  static CommitPolicy Policy(bool group_commit) {
    CommitPolicy policy;
    policy.group_commit = group_commit;
    policy.min_sync_interval = milliseconds(1);
    policy.max_unsynced_age = milliseconds(100);
    policy.retry_after_failure = milliseconds(100);
    return policy;
  }

  // One turn that journaled `records` and produced `message`, if any; returns what is to be sent now.
  std::vector<std::string> Turn(std::uint64_t records, std::optional<Outgoing> message = std::nullopt) {
    journal_.Append(records);
    std::vector<Outgoing> messages;
    if (message) messages.push_back(std::move(*message));
    std::vector<Outgoing> send;
    scheduler_.EndTurn(messages, send);
    EXPECT_TRUE(messages.empty()) << "EndTurn takes the whole outbox";
    return Texts(send);
  }
  std::vector<std::string> SyncEnds(bool ok = true) {
    journal_.Complete(ok);
    std::vector<Outgoing> send;
    scheduler_.SyncFinished(send);
    return Texts(send);
  }

  ManualClock clock_;
  MemoryJournal journal_{clock_};
  RecordingEvents events_;
  CommitPolicy policy_;
  CommitScheduler scheduler_{journal_, clock_, policy_, events_};
};

using Strings = std::vector<std::string>;

TEST_F(CommitSchedulerTest, AConfirmLeavesOnlyOnceItsPublishesAreSynced) {
  EXPECT_EQ(Turn(3, {Message("p", "confirm 1-3", WaitsFor::kSync, true)}), Strings{});
  EXPECT_EQ(journal_.written(), 3u) << "the turn's records are written at its end";
  EXPECT_EQ(journal_.syncs_started, 1) << "fsync always: a sync starts as soon as anything is unsynced";
  EXPECT_EQ(scheduler_.held(), 1u);
  EXPECT_EQ(SyncEnds(), Strings{"confirm 1-3"});
  EXPECT_EQ(scheduler_.held(), 0u);
}

TEST_F(CommitSchedulerTest, WhatArrivesDuringASyncWaitsForTheNextOne) {
  Turn(1, {Message("p", "confirm 1", WaitsFor::kSync, true)});
  EXPECT_EQ(Turn(1, {Message("p", "confirm 2", WaitsFor::kSync, true)}), Strings{});
  EXPECT_EQ(journal_.syncs_started, 1) << "one sync at a time";
  EXPECT_EQ(SyncEnds(), Strings{"confirm 1"}) << "record 2 was written after the sync began";
  EXPECT_EQ(Turn(0), Strings{});
  EXPECT_EQ(journal_.syncs_started, 2) << "the next turn starts the sync record 2 waits for";
  EXPECT_EQ(SyncEnds(), Strings{"confirm 2"});
}

TEST_F(CommitSchedulerTest, AHeartbeatLeavesAtOnceEvenPastHeldMessagesToItsPeer) {
  Turn(1, {Message("p", "confirm 1", WaitsFor::kSync, true)});
  EXPECT_EQ(Turn(0, {Message("p", "heartbeat", WaitsFor::kNothing)}), Strings{"heartbeat"});
  EXPECT_EQ(Turn(0, {Message("p", "ok", WaitsFor::kSync)}), Strings{}) << "behind the held confirm";
  EXPECT_EQ(SyncEnds(), (Strings{"confirm 1", "ok"}));
}

TEST_F(CommitSchedulerTest, WithFsyncAlwaysADeliveryWaitsForItsRecordsToBeSynced) {
  EXPECT_EQ(Turn(1, {Message("c", "deliver", WaitsFor::kWrite)}), Strings{});
  EXPECT_EQ(SyncEnds(), Strings{"deliver"});
}

class GroupCommitTest : public CommitSchedulerTest {
 protected:
  GroupCommitTest() : CommitSchedulerTest(/*group_commit=*/true) {}
};

TEST_F(GroupCommitTest, ADeliveryLeavesOnceWrittenAndStartsNoSync) {
  EXPECT_EQ(Turn(1, {Message("c", "deliver", WaitsFor::kWrite)}), Strings{"deliver"});
  EXPECT_EQ(journal_.syncs_started, 0) << "nothing waits for a sync";
}

TEST_F(GroupCommitTest, RecordsNothingWaitsOnAreSyncedOnceTheyAreMaxUnsyncedAgeOld) {
  Turn(2);  // acks, say
  EXPECT_EQ(journal_.syncs_started, 0);
  ASSERT_TRUE(scheduler_.NextWake().has_value());
  EXPECT_EQ(*scheduler_.NextWake(), clock_.Now() + milliseconds(100)) << "the loop wakes for the lazy sync";
  clock_.Advance(milliseconds(99));
  Turn(0);
  EXPECT_EQ(journal_.syncs_started, 0) << "not yet 100 ms old";
  clock_.Advance(milliseconds(1));
  Turn(0);
  EXPECT_EQ(journal_.syncs_started, 1);
  EXPECT_FALSE(scheduler_.NextWake().has_value()) << "a sync runs: only its completion matters";
  SyncEnds();
  EXPECT_EQ(journal_.synced(), 2u);
  EXPECT_FALSE(scheduler_.NextWake().has_value()) << "nothing left unsynced";
}

TEST_F(GroupCommitTest, SyncsAreSpacedMinSyncIntervalApartAndWhatComesMeanwhileJoinsTheNext) {
  Turn(1, {Message("p", "confirm 1", WaitsFor::kSync, true)});
  ASSERT_EQ(journal_.syncs_started, 1);
  clock_.Advance(microseconds(200));
  EXPECT_EQ(SyncEnds(), Strings{"confirm 1"});
  Turn(1, {Message("p", "confirm 2", WaitsFor::kSync, true)});
  EXPECT_EQ(journal_.syncs_started, 1) << "0.2 ms after the last sync began, 1 ms apart";
  ASSERT_TRUE(scheduler_.sync_held_until().has_value());
  EXPECT_EQ(*scheduler_.sync_held_until(), TimePoint{} + milliseconds(1));
  EXPECT_EQ(scheduler_.NextWake(), scheduler_.sync_held_until());
  clock_.Advance(microseconds(500));
  Turn(1, {Message("q", "confirm 3", WaitsFor::kSync, true)});
  EXPECT_EQ(journal_.syncs_started, 1) << "still too soon";
  clock_.Advance(microseconds(300));
  Turn(0);
  EXPECT_EQ(journal_.syncs_started, 2);
  EXPECT_FALSE(scheduler_.sync_held_until().has_value());
  EXPECT_EQ(SyncEnds(), (Strings{"confirm 2", "confirm 3"})) << "one sync for both";
}

TEST_F(CommitSchedulerTest, AFailedSyncHoldsConfirmsRetriesLaterAndLetsOtherAnswersThrough) {
  Turn(1, {Message("p", "confirm 1", WaitsFor::kSync, true)});
  EXPECT_EQ(SyncEnds(/*ok=*/false), Strings{});
  EXPECT_TRUE(scheduler_.failing());
  EXPECT_EQ(events_.first_failures, 1);
  EXPECT_EQ(journal_.pending(), 1u) << "what the sync covered is to be written again";
  // The disk is full now. A refusal or a STATS reply needs only what could be written; it
  // overtakes the held confirm.
  journal_.fail_writes = true;
  EXPECT_EQ(Turn(0, {Message("p", "rejected", WaitsFor::kSync)}), Strings{"rejected"});
  EXPECT_EQ(events_.first_failures, 1) << "a failure is logged once until it recovers";
  EXPECT_EQ(scheduler_.NextWake(), clock_.Now() + milliseconds(100)) << "to write again";
  journal_.fail_writes = false;
  clock_.Advance(milliseconds(50));
  Turn(0);
  EXPECT_EQ(journal_.written(), 1u);
  EXPECT_EQ(journal_.syncs_started, 1) << "no sync before retry_after_failure";
  clock_.Advance(milliseconds(50));
  Turn(0);
  EXPECT_EQ(journal_.syncs_started, 2);
  EXPECT_EQ(SyncEnds(), Strings{"confirm 1"});
  EXPECT_FALSE(scheduler_.failing());
  EXPECT_EQ(events_.recoveries, std::vector<std::size_t>{1}) << "recovered, with the confirm it sent";
  EXPECT_EQ(events_.first_failures, 1);
}

TEST_F(CommitSchedulerTest, AFailedWriteKeepsTheRecordsAndTheConfirmUntilAWriteSucceeds) {
  journal_.fail_writes = true;
  EXPECT_EQ(Turn(2, {Message("p", "confirm 1-2", WaitsFor::kSync, true)}), Strings{});
  EXPECT_TRUE(scheduler_.failing());
  EXPECT_EQ(journal_.pending(), 2u);
  EXPECT_EQ(Turn(0), Strings{});
  EXPECT_EQ(events_.failures.size(), 2u) << "each failed write is counted";
  EXPECT_EQ(events_.first_failures, 1) << "and logged once";
  ASSERT_TRUE(scheduler_.NextWake().has_value()) << "a turn must come to write again";
  journal_.fail_writes = false;
  Turn(0);
  EXPECT_EQ(journal_.written(), 2u);
  EXPECT_TRUE(scheduler_.failing()) << "written, not yet synced";
  EXPECT_EQ(SyncEnds(), Strings{"confirm 1-2"});
  EXPECT_FALSE(scheduler_.failing());
}

TEST_F(CommitSchedulerTest, ACompactionAfterAWriteCountsAsASync) {
  Turn(1, {Message("p", "confirm 1", WaitsFor::kSync, true)});
  events_.compact_next = true;
  EXPECT_EQ(Turn(1, {Message("p", "confirm 2", WaitsFor::kSync, true)}), (Strings{"confirm 1", "confirm 2"}))
      << "the snapshot synced both records";
  EXPECT_EQ(events_.after_writes, 2);
}

TEST_F(CommitSchedulerTest, ATurnThatJournaledNothingWritesNothing) {
  EXPECT_EQ(Turn(0, {Message("p", "pong", WaitsFor::kSync)}), Strings{"pong"}) << "nothing to wait for";
  EXPECT_EQ(journal_.writes, 0);
  EXPECT_EQ(events_.after_writes, 0);
}

}  // namespace
}  // namespace zmqkit::internal
