// Journal: a data directory of journal segments — recovery at open, then appends and group commits.
//
// Open() takes a lock on the directory (one broker per directory), reads every segment in number
// order and hands each logical record to the caller's `apply` (the broker core's Replay), truncates a
// torn tail of the newest segment, and refuses to open on corruption anywhere else unless
// `salvage` is set (docs/journal-format.md, section 6). Then records are appended with Append() and
// made durable with Commit().
//
// A Commit that fails (disk full, I/O error) keeps its records pending: the segment is cut back to
// its last durable end and the next Commit writes them again first, so the journal's order is never
// broken by a failed write. The caller must not confirm anything until a Commit succeeds.
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
  std::vector<std::string> corruptions;    // "segment N, offset O: reason (B bytes)"
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

  // Queues a record for the next Commit.
  void Append(std::string record);
  // Writes every pending record and, unless fsync is "never" or `durability` is kWritten, syncs
  // it together with every record an earlier kWritten commit left unsynced. On failure the records
  // stay pending (see the class comment) and the error says why (kResourceExhausted for a full
  // disk).
  Status Commit(Durability durability = Durability::kSynced);
  std::size_t pending() const { return pending_.size(); }
  // When the oldest record written but not yet synced was written (nullopt: none is, or fsync is
  // "never"). The caller bounds how long such records stay unsynced.
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
  // part way, the old segments stay and recovery ignores the unfinished snapshot.
  Status Compact(const std::vector<std::string>& snapshot);
  // Bytes in all segments (kept in memory: no file system calls).
  std::uint64_t disk_bytes() const { return closed_bytes_ + (writer_ ? writer_->offset() : 0); }
  FsyncMode fsync_mode() const { return options_.fsync; }
  // The newest segment's number.
  std::uint64_t segment() const { return segment_number_; }

 private:
  Journal(JournalOptions options, int lock_fd) : options_(std::move(options)), lock_fd_(lock_fd) {}
  Status OpenSegment(std::uint64_t number, bool fresh, bool snapshot = false);
  Status SyncUnsynced();
  // After a failed write: drops what was written since the writer's last durable end, so the
  // records, still pending, are written again whole.
  void CutBackToSynced();

  JournalOptions options_;
  int lock_fd_;
  std::uint64_t segment_number_ = 0;
  std::unique_ptr<PosixWritableFile> file_;
  std::unique_ptr<JournalWriter> writer_;
  std::vector<std::string> pending_;
  std::uint64_t segments_since_compaction_ = 0;
  std::uint64_t closed_bytes_ = 0;  // bytes in every segment but the one being appended to
  std::optional<std::chrono::steady_clock::time_point> unsynced_since_;
  std::uint64_t syncs_ = 0;
};

std::string FsyncModeName(FsyncMode mode);
Result<FsyncMode> ParseFsyncMode(std::string_view text);

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_STORAGE_JOURNAL_H_
