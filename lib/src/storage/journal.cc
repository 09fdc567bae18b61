#include "storage/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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
                          bool* snapshot) {
  try {
    auto handle = msgpack::unpack(record.data(), record.size());
    auto fields = handle.get().as<std::map<std::string, msgpack::object>>();
    if (fields.at("magic").as<std::string>() != kMagic) throw std::runtime_error("magic");
    auto marked = fields.find("snapshot");
    *snapshot = marked != fields.end() && marked->second.type == msgpack::type::BOOLEAN &&
                marked->second.via.boolean;
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
  for (std::size_t i = segments.size(); i-- > 0;) {
    auto complete = SnapshotComplete(SegmentPath(options.directory, segments[i]));
    if (!complete) continue;
    if (!*complete) {
      std::filesystem::remove(SegmentPath(options.directory, segments[i]), error);
      segments.erase(segments.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    for (std::size_t j = 0; j < i; ++j) {
      std::filesystem::remove(SegmentPath(options.directory, segments[j]), error);
    }
    segments.erase(segments.begin(), segments.begin() + static_cast<std::ptrdiff_t>(i));
    break;
  }
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
        bool snapshot = false;
        if (Status header = CheckSegmentHeader(record, path, &snapshot); !header.ok()) return header;
        continue;
      }
      if (record == snapshot_end) continue;
      if (Status applied = apply(record); !applied.ok()) {
        return Status::Corruption("segment " + std::to_string(segments[i]) + ", offset " +
                                  std::to_string(offset) + ": " + applied.message());
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
    if (!out.corruptions.empty() && !options.salvage) {
      return Status::Corruption("the journal is damaged in the middle: " + out.corruptions.front() +
                                (out.corruptions.size() > 1
                                     ? " (and " + std::to_string(out.corruptions.size() - 1) + " more)"
                                     : "") +
                                ". Start with --salvage to skip the damaged records and keep the rest.");
    }
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
