#include "storage/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <cstring>
#include <msgpack.hpp>

#include "storage/journal_reader.h"

namespace zmqkit::internal {
namespace {

constexpr std::string_view kMagic = "zmqkit-journal";
constexpr std::uint64_t kVersion = 1;

std::filesystem::path SegmentPath(const std::filesystem::path& directory, std::uint64_t number) {
  std::string name = std::to_string(number);
  if (name.size() < 6) name.insert(0, 6 - name.size(), '0');
  return directory / "journal" / (name + ".zkj");
}

std::string SegmentHeader(std::uint64_t number, bool snapshot) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(4);
  packer.pack(std::string("snapshot"));
  packer.pack(snapshot);
  packer.pack(std::string("magic"));
  packer.pack(std::string(kMagic));
  packer.pack(std::string("version"));
  packer.pack_uint64(kVersion);
  packer.pack(std::string("segment"));
  packer.pack_uint64(number);
  return std::string(buffer.data(), buffer.size());
}

// The marker that ends a complete snapshot (section 7 of the format document).
std::string SnapshotEnd() {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(1);
  packer.pack(std::string("snapshot_end"));
  packer.pack(true);
  return std::string(buffer.data(), buffer.size());
}

Status CheckSegmentHeader(std::string_view record, const std::filesystem::path& path,
                          bool* snapshot, std::uint64_t* number = nullptr) {
  try {
    auto handle = msgpack::unpack(record.data(), record.size());
    auto fields = handle.get().as<std::map<std::string, msgpack::object>>();
    if (fields.at("magic").as<std::string>() != kMagic) throw std::runtime_error("magic");
    auto marked = fields.find("snapshot");
    *snapshot = marked != fields.end() && marked->second.type == msgpack::type::BOOLEAN &&
                marked->second.via.boolean;
    if (number) *number = fields.at("segment").as<std::uint64_t>();
    if (fields.at("version").as<std::uint64_t>() != kVersion) {
      return Status::FailedPrecondition(path.string() + " is journal version " +
                                        std::to_string(fields.at("version").as<std::uint64_t>()) +
                                        "; this broker reads version 1");
    }
  } catch (const std::exception&) {
    return Status::Corruption(path.string() + " does not start with a zmqkit journal header");
  }
  return Status::Ok();
}

// A snapshot segment is usable if its end marker was written: then every record of the snapshot is
// there. Returns nullopt for a segment that is not a snapshot.
std::optional<bool> SnapshotComplete(const std::filesystem::path& path) {
  auto source = PosixSequentialFile::Open(path);
  if (!source.ok()) return std::nullopt;
  JournalReader reader(source->get(), nullptr);
  std::string record;
  std::uint64_t offset = 0;
  if (!reader.ReadRecord(&record, &offset)) return std::nullopt;
  bool snapshot = false;
  if (!CheckSegmentHeader(record, path, &snapshot).ok() || !snapshot) return std::nullopt;
  const std::string end = SnapshotEnd();
  while (reader.ReadRecord(&record, &offset)) {
    if (record == end) return true;
  }
  return false;
}

// Makes the creation, renaming or deletion of files in `directory` durable (their names live in
// the directory, which fdatasync of a file does not cover).
void SyncDirectory(const std::filesystem::path& directory) {
  int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::vector<std::uint64_t> ListSegments(const std::filesystem::path& directory) {
  std::vector<std::uint64_t> numbers;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory / "journal", error)) {
    const std::string name = entry.path().filename().string();
    if (!name.ends_with(".zkj")) continue;
    const std::string stem = name.substr(0, name.size() - 4);
    if (stem.empty() || !std::all_of(stem.begin(), stem.end(), ::isdigit)) continue;
    numbers.push_back(std::stoull(stem));
  }
  std::sort(numbers.begin(), numbers.end());
  return numbers;
}

// journal/NEWEST names the newest segment ever started, so that recovery notices when the newest
// segments are gone (a restore that missed them, a deletion): nothing else in the directory would
// say they ever existed. Rewritten, atomically, each time a segment is started.
std::filesystem::path NewestPath(const std::filesystem::path& directory) {
  return directory / "journal" / "NEWEST";
}

std::optional<std::uint64_t> ReadNewest(const std::filesystem::path& directory) {
  std::FILE* file = std::fopen(NewestPath(directory).c_str(), "r");
  if (file == nullptr) return std::nullopt;
  unsigned long long number = 0;
  const bool read = std::fscanf(file, "%llu", &number) == 1;
  std::fclose(file);
  if (!read) return std::nullopt;
  return static_cast<std::uint64_t>(number);
}

Status WriteNewest(const std::filesystem::path& directory, std::uint64_t number) {
  const auto path = NewestPath(directory);
  const auto temporary = path.string() + ".tmp";
  auto file = PosixWritableFile::Open(temporary);
  if (!file.ok()) return file.error();
  if (Status truncated = (*file)->Truncate(0); !truncated.ok()) return truncated;
  if (Status appended = (*file)->Append(std::to_string(number) + "\n"); !appended.ok()) return appended;
  if (Status flushed = (*file)->Flush(); !flushed.ok()) return flushed;
  if (Status synced = (*file)->Sync(); !synced.ok()) return synced;
  file->reset();
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    return Status::IOError("cannot rename " + temporary + ": " + std::strerror(errno));
  }
  SyncDirectory(directory / "journal");
  return Status::Ok();
}

// "segment 7" or "segments 7 to 9".
std::string SegmentRange(std::uint64_t first, std::uint64_t last) {
  return first == last ? "segment " + std::to_string(first)
                       : "segments " + std::to_string(first) + " to " + std::to_string(last);
}

class CollectingReporter : public JournalReader::Reporter {
 public:
  explicit CollectingReporter(std::uint64_t segment) : segment_(segment) {}
  void Corruption(std::uint64_t offset, std::uint64_t bytes, const std::string& reason) override {
    found.push_back("segment " + std::to_string(segment_) + ", offset " + std::to_string(offset) +
                    ": " + reason + " (" + std::to_string(bytes) + " bytes skipped)");
  }
  std::vector<std::string> found;

 private:
  std::uint64_t segment_;
};

}  // namespace

std::string FsyncModeName(FsyncMode mode) {
  switch (mode) {
    case FsyncMode::kAlways: return "always";
    case FsyncMode::kBatch: return "batch";
    case FsyncMode::kNever: return "never";
  }
  return "?";
}

Result<FsyncMode> ParseFsyncMode(std::string_view text) {
  if (text == "always") return FsyncMode::kAlways;
  if (text == "batch") return FsyncMode::kBatch;
  if (text == "never") return FsyncMode::kNever;
  return Status::InvalidArgument("--fsync must be always, batch or never");
}

Result<std::unique_ptr<Journal>> Journal::Open(const JournalOptions& options, const Apply& apply,
                                               RecoveryReport* report) {
  const auto started = std::chrono::steady_clock::now();
  std::error_code error;
  std::filesystem::create_directories(options.directory / "journal", error);
  if (error) {
    return Status::IOError("cannot create " + (options.directory / "journal").string() + ": " +
                           error.message());
  }
  const auto lock_path = options.directory / "LOCK";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return Status::IOError("cannot open " + lock_path.string() + ": " + std::strerror(errno));
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd);
    return Status::FailedPrecondition("another broker is using " + options.directory.string());
  }
  std::unique_ptr<Journal> journal(new Journal(options, lock_fd));

  RecoveryReport local;
  RecoveryReport& out = report ? *report : local;
  std::vector<std::uint64_t> segments = ListSegments(options.directory);
  // Start from the newest complete snapshot: it holds the whole state, so older segments are not
  // read (and are deleted — a crash may have come between the snapshot and their deletion). An
  // unfinished snapshot is discarded: nothing was ever written after it.
  bool from_snapshot = false;
  std::uint64_t discarded_snapshot = 0;
  for (std::size_t i = segments.size(); i-- > 0;) {
    auto complete = SnapshotComplete(SegmentPath(options.directory, segments[i]));
    if (!complete) continue;
    if (!*complete) {
      discarded_snapshot = std::max(discarded_snapshot, segments[i]);
      std::filesystem::remove(SegmentPath(options.directory, segments[i]), error);
      segments.erase(segments.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    for (std::size_t j = 0; j < i; ++j) {
      std::filesystem::remove(SegmentPath(options.directory, segments[j]), error);
    }
    segments.erase(segments.begin(), segments.begin() + static_cast<std::ptrdiff_t>(i));
    from_snapshot = true;
    break;
  }
  // A whole segment that vanished leaves no damaged bytes to find: only the numbering shows it.
  // Segments are numbered one after another from 1, or from the snapshot that replaced the ones
  // before it, up to the newest one ever started (journal/NEWEST).
  auto missing = [&](std::uint64_t first, std::uint64_t last, const std::string& why) {
    out.segments_missing += last - first + 1;
    out.corruptions.push_back(SegmentRange(first, last) + " of the journal " +
                              (first == last ? "is" : "are") + " missing (" + why +
                              "): every record in it is lost");
  };
  if (!segments.empty() && !from_snapshot && segments.front() != 1) {
    missing(1, segments.front() - 1, "the journal starts at segment 1 unless a snapshot replaced "
                                     "the segments before it, and segment " +
                                         std::to_string(segments.front()) + " is no snapshot");
  }
  for (std::size_t i = 1; i < segments.size(); ++i) {
    if (segments[i] != segments[i - 1] + 1) {
      missing(segments[i - 1] + 1, segments[i] - 1, "segments are numbered one after another");
    }
  }
  const std::uint64_t newest_found = std::max(segments.empty() ? 0 : segments.back(), discarded_snapshot);
  const std::optional<std::uint64_t> noted_newest = ReadNewest(options.directory);
  if (noted_newest && *noted_newest > newest_found) {
    missing(newest_found + 1, *noted_newest,
            "journal/NEWEST says segment " + std::to_string(*noted_newest) + " was started");
  }
  auto refuse_unless_salvaging = [&]() -> std::optional<Status> {
    if (out.corruptions.empty() || options.salvage) return std::nullopt;
    return Status::Corruption("the journal is damaged: " + out.corruptions.front() +
                              (out.corruptions.size() > 1
                                   ? " (and " + std::to_string(out.corruptions.size() - 1) + " more)"
                                   : "") +
                              ". Start with --salvage to skip what is damaged and keep the rest.");
  };
  if (auto refused = refuse_unless_salvaging()) return *refused;
  const std::string snapshot_end = SnapshotEnd();
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const bool newest = i + 1 == segments.size();
    const auto path = SegmentPath(options.directory, segments[i]);
    auto source = PosixSequentialFile::Open(path);
    if (!source.ok()) return source.error();
    CollectingReporter reporter(segments[i]);
    JournalReader reader(source->get(), &reporter);
    std::string record;
    std::uint64_t offset = 0;
    bool first = true;
    while (reader.ReadRecord(&record, &offset)) {
      if (first) {
        first = false;
        if (offset == 0) {
          bool snapshot = false;
          std::uint64_t number = 0;
          if (Status header = CheckSegmentHeader(record, path, &snapshot, &number); !header.ok()) {
            return header;
          }
          if (number != segments[i]) {
            reporter.found.push_back("segment " + std::to_string(segments[i]) +
                                     ": its header says it is segment " + std::to_string(number) +
                                     " (a file copied or renamed into the journal?)");
          }
          continue;
        }
        // The header's bytes are damaged (the reader reported them): this is the segment's first
        // whole record after them, an ordinary one.
        reporter.found.push_back("segment " + std::to_string(segments[i]) +
                                 ": its header is damaged; its records are read from offset " +
                                 std::to_string(offset));
      }
      if (record == snapshot_end) continue;
      if (Status applied = apply(record); !applied.ok()) {
        const std::string where = "segment " + std::to_string(segments[i]) + ", offset " +
                                  std::to_string(offset) + ": " + applied.message();
        // After damage, a record may name a message or queue whose own record was lost: then the
        // damage is what to report (and salvage the way out), not this record.
        if (!options.salvage) {
          if (reporter.found.empty()) return Status::Corruption(where);
          for (std::string& corruption : reporter.found) out.corruptions.push_back(std::move(corruption));
          return *refuse_unless_salvaging();
        }
        if (out.records_unapplied++ == 0) out.first_unapplied = where;
        continue;
      }
      ++out.records;
    }
    if (!reader.status().ok()) return reader.status();
    for (std::string& corruption : reporter.found) out.corruptions.push_back(std::move(corruption));
    const auto& tail = reader.tail();
    if (first && tail.dropped > 0) {
      // Not one whole record, not even the header: this is not a torn journal but a foreign or
      // wrecked file, and cutting it back would destroy it.
      out.corruptions.push_back("segment " + std::to_string(segments[i]) +
                                " holds no journal header (" + std::to_string(tail.dropped) +
                                " bytes): a foreign or damaged file");
    }
    if (tail.torn && !newest) {
      out.corruptions.push_back("segment " + std::to_string(segments[i]) + ", offset " +
                                std::to_string(tail.valid_end) + ": " + tail.reason + " (" +
                                std::to_string(tail.dropped) + " bytes) in a segment that is not the newest");
    }
    if (auto refused = refuse_unless_salvaging()) return *refused;
    if (tail.torn && newest) {
      // What a crash leaves: cut back to the last whole record.
      auto file = PosixWritableFile::Open(path);
      if (!file.ok()) return file.error();
      if (Status cut = (*file)->Truncate(tail.valid_end); !cut.ok()) return cut;
      if (Status synced = (*file)->Sync(); !synced.ok()) return synced;
      ++journal->syncs_;
      out.torn_bytes_dropped += tail.dropped;
    }
    ++out.segments;
  }
  // What is on disk counts toward compaction: a broker that restarts more often than it fills two
  // segments must still compact (the count cannot live only in memory).
  journal->segments_since_compaction_ = segments.size();
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    journal->closed_bytes_ += std::filesystem::file_size(SegmentPath(options.directory, segments[i]), error);
  }
  if (options.fsync != FsyncMode::kNever) journal->sync_ = std::make_unique<BackgroundSync>();
  // Continue the newest segment, or start the first.
  if (segments.empty()) {
    if (Status opened = journal->OpenSegment(1, /*fresh=*/true); !opened.ok()) return opened;
  } else {
    if (Status opened = journal->OpenSegment(segments.back(), /*fresh=*/false); !opened.ok()) return opened;
    // A journal from before NEWEST, or one salvaged past missing segments, says what is true now.
    if (noted_newest != segments.back()) {
      if (Status noted = WriteNewest(options.directory, segments.back()); !noted.ok()) return noted;
    }
  }
  out.took = std::chrono::steady_clock::now() - started;
  return journal;
}

Journal::~Journal() {
  sync_.reset();  // waits for a sync that runs: its file must stay open until then
  writer_.reset();
  file_.reset();
  ::close(lock_fd_);  // releases the flock
}

Status Journal::OpenSegment(std::uint64_t number, bool fresh, bool snapshot) {
  const auto path = SegmentPath(options_.directory, number);
  auto file = PosixWritableFile::Open(path);
  if (!file.ok()) return file.error();
  writer_.reset();
  file_ = std::move(*file);
  writer_ = std::make_unique<JournalWriter>(file_.get(), file_->size());
  segment_number_ = number;
  if (fresh || file_->size() == 0) {
    if (Status added = writer_->AddRecord(SegmentHeader(number, snapshot)); !added.ok()) return added;
    if (Status synced = writer_->Sync(); !synced.ok()) return synced;
    ++syncs_;
    SyncDirectory(options_.directory / "journal");  // the new file's name must survive a crash
    // After the segment exists: a crash in between leaves NEWEST one behind, which is harmless.
    if (Status noted = WriteNewest(options_.directory, number); !noted.ok()) return noted;
  }
  written_offset_ = synced_offset_ = writer_->offset();
  return Status::Ok();
}

void Journal::Append(std::string record) { pending_.push_back(std::move(record)); }

bool Journal::NeedsCompaction(const std::function<std::uint64_t()>& live_bytes) const {
  if (segments_since_compaction_ < 2) return false;
  return disk_bytes() > 2 * live_bytes() + options_.segment_bytes;
}

Status Journal::Compact(const std::vector<std::string>& snapshot) {
  // The running sync's file is about to be replaced. If it failed, its records are pending again
  // and the caller must write them before compacting.
  if (Status settled = AwaitRunningSync(); !settled.ok()) return settled;
  const std::uint64_t previous = segment_number_;
  const std::uint64_t previous_written_offset = written_offset_;
  const std::uint64_t previous_synced_offset = synced_offset_;
  // On failure the unfinished snapshot is removed and appending goes back to the previous segment:
  // records written after an unfinished snapshot would be discarded with it at recovery.
  auto abandon = [&](Status failure) {
    writer_.reset();
    file_.reset();
    std::error_code ignored;
    std::filesystem::remove(SegmentPath(options_.directory, previous + 1), ignored);
    if (Status reopened = OpenSegment(previous, /*fresh=*/false); !reopened.ok()) return reopened;
    // NEWEST named the abandoned snapshot; left so, the next recovery would look for it.
    if (Status noted = WriteNewest(options_.directory, previous); !noted.ok()) return noted;
    written_offset_ = previous_written_offset;
    synced_offset_ = previous_synced_offset;
    return failure;
  };
  if (Status opened = OpenSegment(previous + 1, /*fresh=*/true, /*snapshot=*/true); !opened.ok()) {
    return abandon(opened);
  }
  for (const std::string& record : snapshot) {
    if (Status added = writer_->AddRecord(record); !added.ok()) return abandon(added);
  }
  if (Status added = writer_->AddRecord(SnapshotEnd()); !added.ok()) return abandon(added);
  if (Status synced = writer_->Sync(); !synced.ok()) return abandon(synced);
  ++syncs_;
  // The snapshot holds the whole state, so what earlier segments left unsynced no longer matters:
  // everything written so far counts as synced.
  written_offset_ = synced_offset_ = writer_->offset();
  synced_ = written_;
  unsynced_records_.clear();
  unsynced_since_.reset();
  std::error_code error;
  for (std::uint64_t number : ListSegments(options_.directory)) {
    if (number < segment_number_) std::filesystem::remove(SegmentPath(options_.directory, number), error);
  }
  SyncDirectory(options_.directory / "journal");  // the deletions too
  segments_since_compaction_ = 0;
  closed_bytes_ = 0;
  return Status::Ok();
}

void Journal::CutBackTo(std::uint64_t offset) {
  if (Status cut = file_->Truncate(offset); !cut.ok()) {
    broken_ = Status::IOError(cut.message() +
                              " after a failed write or sync; restart the broker to recover the journal");
  }
  writer_ = std::make_unique<JournalWriter>(file_.get(), offset);
  written_offset_ = offset;
}

Status Journal::Write() {
  if (broken_) return *broken_;
  if (pending_.empty()) return Status::Ok();
  if (writer_->offset() >= options_.segment_bytes) {
    // The closing segment's records must be durable before any in the next one is: recovery
    // reads segments in order and treats damage in an older one as corruption, not a torn tail.
    if (Status synced = SyncAll(); !synced.ok()) return synced;
    const std::uint64_t closing = writer_->offset();
    if (Status next = OpenSegment(segment_number_ + 1, /*fresh=*/true); !next.ok()) return next;
    closed_bytes_ += closing;
    ++segments_since_compaction_;
  }
  for (const std::string& record : pending_) {
    if (Status added = writer_->AddRecord(record); !added.ok()) {
      CutBackTo(written_offset_);
      return added;
    }
  }
  if (Status flushed = file_->Flush(); !flushed.ok()) {
    CutBackTo(written_offset_);
    return flushed;
  }
  written_offset_ = writer_->offset();
  written_ += pending_.size();
  if (sync_) {
    if (!unsynced_since_) unsynced_since_ = std::chrono::steady_clock::now();
    for (std::string& record : pending_) unsynced_records_.push_back(std::move(record));
  }
  pending_.clear();
  return Status::Ok();
}

void Journal::StartSync() {
  if (!sync_ || sync_->busy() || synced_ == written_) return;
  sync_target_ = written_;
  sync_target_offset_ = written_offset_;
  sync_started_ = std::chrono::steady_clock::now();
  sync_->Start(file_.get());
}

Status Journal::FinishSync() {
  if (!sync_) return Status::Ok();
  std::optional<Status> result = sync_->TryTake();
  if (!result) return Status::Ok();
  return Settle(std::move(*result));
}

Status Journal::Settle(Status synced) {
  if (synced.ok()) {
    ++syncs_;
    // fdatasync covers every byte written to the file before it began: the records up to the
    // target. Those written while it ran wait for the next one.
    unsynced_records_.erase(unsynced_records_.begin(),
                            unsynced_records_.begin() +
                                static_cast<std::ptrdiff_t>(sync_target_ - synced_));
    synced_ = sync_target_;
    synced_offset_ = sync_target_offset_;
    if (synced_ == written_) {
      unsynced_since_.reset();
    } else {
      unsynced_since_ = sync_started_;  // the rest were written after it started
    }
    return Status::Ok();
  }
  // After a failed fdatasync the kernel may have dropped the dirty pages: nothing written since
  // the last good sync can be trusted to be in the file. Write it all again.
  CutBackTo(synced_offset_);
  pending_.insert(pending_.begin(), std::make_move_iterator(unsynced_records_.begin()),
                  std::make_move_iterator(unsynced_records_.end()));
  unsynced_records_.clear();
  written_ = synced_;
  unsynced_since_.reset();
  return synced;
}

Status Journal::AwaitRunningSync() {
  return syncing() ? Settle(sync_->Take()) : Status::Ok();
}

Status Journal::SyncAll() {
  if (!sync_) return Status::Ok();
  if (Status settled = AwaitRunningSync(); !settled.ok()) return settled;
  if (synced_ == written_) return Status::Ok();
  StartSync();
  return Settle(sync_->Take());
}

Status Journal::Commit(Durability durability) {
  if (Status written = Write(); !written.ok()) return written;
  if (durability == Durability::kWritten) return Status::Ok();
  return SyncAll();
}

}  // namespace zmqkit::internal
