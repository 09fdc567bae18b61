// Journal: a data directory of journal segments — recovery at open, then appends and group commits.
//
// Open() takes a lock on the directory (one broker per directory), reads every segment in number
// order and hands each logical record to the caller's `apply` (the broker core's Replay), truncates a
// torn tail of the newest segment, and refuses to open on corruption anywhere else unless
// `salvage` is set (docs/journal-format.md, section 6). Then records are appended with Append(),
// handed to the OS with Write() and made durable by a sync.
//
// Syncs run on a thread of their own (BackgroundSync), so the caller keeps working while the disk
// does: StartSync() returns at once and FinishSync() takes the result once sync_event_fd() is
// readable. Records are numbered in the order they were appended; something that depends on
// record N (a confirm) may be sent once synced() >= N. Commit() is the blocking form of the same.
//
// Nothing is lost or reordered by a failure. A failed write leaves its records pending and the
// segment cut back to the end of the last good write. A failed sync cuts the segment back to the end
// of the last good sync and makes every record written since pending again (the journal keeps them
// until a sync covers them), so the next Write() writes them again first, in their order.
#ifndef ZMQKIT_SRC_STORAGE_JOURNAL_H_
#define ZMQKIT_SRC_STORAGE_JOURNAL_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <deque>

#include "storage/background_sync.h"
#include "storage/file.h"
#include "storage/journal_writer.h"
#include "zmqkit/status.h"

namespace zmqkit::internal {

enum class FsyncMode { kAlways, kBatch, kNever };

// What a Commit must achieve. kWritten hands the records to the OS (they survive the process being
// killed, not a power cut) and leaves the sync to a later kSynced commit, which covers them too:
// for records nothing sent waits on, such as acks.
enum class Durability { kSynced, kWritten };

struct JournalOptions {
  std::filesystem::path directory;
  FsyncMode fsync = FsyncMode::kBatch;
  std::uint64_t segment_bytes = 64 * 1024 * 1024;
  bool salvage = false;  // skip damaged records instead of refusing to open
};

struct RecoveryReport {
  std::size_t segments = 0;
  std::uint64_t records = 0;
  std::uint64_t torn_bytes_dropped = 0;    // truncated from the newest segment's tail
  std::vector<std::string> corruptions;    // "segment N, offset O: reason (B bytes)", ...
  std::uint64_t segments_missing = 0;      // whole segments gone (gaps in the numbering)
  // Salvage: records skipped because they named something the damage removed (an ack of a message
  // whose publish record was lost), and the first of them with its place.
  std::uint64_t records_unapplied = 0;
  std::string first_unapplied;
  std::chrono::steady_clock::duration took{};
};

class Journal {
 public:
  using Apply = std::function<Status(std::string_view record)>;

  // Opens or creates the journal in options.directory, replaying what it holds through `apply`.
  // Errors: kFailedPrecondition (another broker holds the directory), kCorruption (damage in the
  // middle and no salvage; or `apply` refused a record), kIOError.
  static Result<std::unique_ptr<Journal>> Open(const JournalOptions& options, const Apply& apply,
                                               RecoveryReport* report);
  ~Journal();

  // Queues a record for the next Write() or Commit().
  void Append(std::string record);
  std::size_t pending() const { return pending_.size(); }

  // Hands every pending record to the OS: from then on they survive the broker being killed, not a
  // power cut. A full segment is synced and closed first (taking a sync that runs, then syncing
  // what is left, on this thread), then the records go into the next one. On failure the records
  // stay pending and the error says why (kResourceExhausted for a full disk).
  Status Write();
  // Records written (or, with fsync "never", written and so as durable as they will be) since
  // Open, and records synced. synced() <= written(); both only grow, except that a failed sync
  // takes written() back to synced().
  std::uint64_t written() const { return written_; }
  std::uint64_t synced() const { return sync_ ? synced_ : written_; }
  // Starts syncing everything written so far on the sync thread and returns at once. Does nothing
  // if a sync is running (start another after FinishSync) or everything written is synced.
  void StartSync();
  bool syncing() const { return sync_ && sync_->busy(); }
  // Readable when a started sync has finished; -1 with fsync "never" (there is no sync thread).
  int sync_event_fd() const { return sync_ ? sync_->event_fd() : -1; }
  // Takes the result of a finished sync (Ok and no change if none has finished). On failure every
  // record written since the last good sync is pending again; see the class comment.
  Status FinishSync();

  // Write(), then, unless fsync is "never" or `durability` is kWritten, sync everything written so
  // far, waiting for it (and first for a sync that runs).
  Status Commit(Durability durability = Durability::kSynced);
  // When the oldest record written but not yet synced was written, or a sync that covers only part
  // of what was written was started (nullopt: none is, or fsync is "never"). The caller bounds how
  // long such records stay unsynced.
  std::optional<std::chrono::steady_clock::time_point> unsynced_since() const {
    return unsynced_since_;
  }
  // fdatasync calls this journal has made, Open's included (segment headers and snapshots too).
  std::uint64_t syncs() const { return syncs_; }

  // Compaction. Whether the journal has grown well past what it must hold: at least two segments
  // written since the last compaction and more than twice the live bytes plus one segment on disk.
  // `live_bytes` is asked only once the first, cheap condition holds.
  bool NeedsCompaction(const std::function<std::uint64_t()>& live_bytes) const;
  // Writes `snapshot` (records that rebuild the whole state) into a new segment marked as a
  // snapshot, syncs it, and deletes every older segment. REQUIRES: nothing pending. If this fails
  // part way, the old segments stay and recovery ignores the unfinished snapshot. Waits for a sync
  // that runs; the snapshot, synced, makes everything written before it durable.
  Status Compact(const std::vector<std::string>& snapshot);
  // Bytes in all segments (kept in memory: no file system calls).
  std::uint64_t disk_bytes() const { return closed_bytes_ + (writer_ ? writer_->offset() : 0); }
  FsyncMode fsync_mode() const { return options_.fsync; }
  // The newest segment's number.
  std::uint64_t segment() const { return segment_number_; }

 private:
  Journal(JournalOptions options, int lock_fd) : options_(std::move(options)), lock_fd_(lock_fd) {}
  Status OpenSegment(std::uint64_t number, bool fresh, bool snapshot = false);
  // Waits for a sync that runs, then syncs what is still unsynced, on this thread.
  Status SyncAll();
  // Waits for a sync that runs, if one does, and books its result.
  Status AwaitRunningSync();
  // Books the result of a sync StartSync() began; see FinishSync.
  Status Settle(Status synced);
  // Cuts the segment back to `offset` and appends from there. If the file cannot be cut, nothing
  // can be appended safely any more (it would follow bytes the writer does not know about).
  void CutBackTo(std::uint64_t offset);

  JournalOptions options_;
  int lock_fd_;
  std::uint64_t segment_number_ = 0;
  std::unique_ptr<PosixWritableFile> file_;
  std::unique_ptr<JournalWriter> writer_;
  std::vector<std::string> pending_;
  std::uint64_t segments_since_compaction_ = 0;
  std::uint64_t closed_bytes_ = 0;  // bytes in every segment but the one being appended to

  // The sync thread; null with fsync "never". Declared after file_ so it stops first.
  std::unique_ptr<BackgroundSync> sync_;
  std::uint64_t written_ = 0;
  std::uint64_t synced_ = 0;
  // In the segment being appended to: where the last good write and the last good sync ended.
  std::uint64_t written_offset_ = 0;
  std::uint64_t synced_offset_ = 0;
  // Records written but not yet synced, oldest first (record synced_ + 1 at the front): what a
  // failed sync makes pending again.
  std::deque<std::string> unsynced_records_;
  // The running sync covers records up to sync_target_, ending at sync_target_offset_.
  std::uint64_t sync_target_ = 0;
  std::uint64_t sync_target_offset_ = 0;
  std::chrono::steady_clock::time_point sync_started_;
  std::optional<std::chrono::steady_clock::time_point> unsynced_since_;
  std::uint64_t syncs_ = 0;
  // Set when a failed write or sync could not be cut back: Write() refuses from then on.
  std::optional<Status> broken_;
};

std::string FsyncModeName(FsyncMode mode);
Result<FsyncMode> ParseFsyncMode(std::string_view text);

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_STORAGE_JOURNAL_H_
