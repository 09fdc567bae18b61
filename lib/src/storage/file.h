// Small file interfaces for the journal, so the writer and reader are tested on in-memory files with
// injected failures (as LevelDB's log tests are) and run on POSIX files in the broker.
#ifndef ZMQKIT_SRC_STORAGE_FILE_H_
#define ZMQKIT_SRC_STORAGE_FILE_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "zmqkit/status.h"

namespace zmqkit::internal {

// An append-only file. Appended bytes may sit in a buffer until Flush() or Sync().
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  // Hands buffered bytes to the operating system (write).
  virtual Status Flush() = 0;
  // Flush, then make everything written durable (fdatasync).
  virtual Status Sync() = 0;
  // Discards buffered bytes and cuts the file to `length`.
  virtual Status Truncate(std::uint64_t length) = 0;
};

// A file read from start to end.
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  // Reads up to `n` bytes into `scratch` (which must hold n) and points `*result` at them; fewer
  // than `n` only at the end of the file. REQUIRES: one thread at a time.
  virtual Status Read(std::size_t n, std::string_view* result, char* scratch) = 0;
};

class PosixWritableFile final : public WritableFile {
 public:
  // Opens (creating if needed) `path` for appending.
  static Result<std::unique_ptr<PosixWritableFile>> Open(const std::filesystem::path& path);
  ~PosixWritableFile() override;

  Status Append(std::string_view data) override;
  // A failed write leaves no partial data behind: the file is cut back to what it held before.
  Status Flush() override;
  Status Sync() override;
  Status Truncate(std::uint64_t length) override;
  // fdatasync alone: makes what earlier Flush calls wrote durable, without touching the buffer, so
  // it may run on another thread while this one appends and flushes.
  Status SyncWritten() const;
  // Bytes in the file, not counting the buffer.
  std::uint64_t size() const { return size_; }

 private:
  PosixWritableFile(int fd, std::filesystem::path path, std::uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}

  int fd_;
  std::filesystem::path path_;
  std::uint64_t size_;
  std::string buffer_;
};

class PosixSequentialFile final : public SequentialFile {
 public:
  static Result<std::unique_ptr<PosixSequentialFile>> Open(const std::filesystem::path& path);
  ~PosixSequentialFile() override;
  Status Read(std::size_t n, std::string_view* result, char* scratch) override;

 private:
  PosixSequentialFile(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::filesystem::path path_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_STORAGE_FILE_H_
