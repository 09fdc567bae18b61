#include "storage/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zmqkit::internal {
namespace {

constexpr std::size_t kFlushAt = 1 << 20;  // bytes buffered before Append writes them out

Status ErrnoStatus(const std::string& what, const std::filesystem::path& path, int error) {
  std::string message = what + " " + path.string() + ": " + std::strerror(error);
  if (error == ENOSPC || error == EDQUOT) return Status::ResourceExhausted(message);
  return Status::IOError(message);
}

}  // namespace

Result<std::unique_ptr<PosixWritableFile>> PosixWritableFile::Open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("cannot open", path, errno);
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    int error = errno;
    ::close(fd);
    return ErrnoStatus("cannot stat", path, error);
  }
  return std::unique_ptr<PosixWritableFile>(
      new PosixWritableFile(fd, path, static_cast<std::uint64_t>(info.st_size)));
}

PosixWritableFile::~PosixWritableFile() {
  (void)Flush();
  ::close(fd_);
}

Status PosixWritableFile::Append(std::string_view data) {
  buffer_.append(data);
  if (buffer_.size() >= kFlushAt) return Flush();
  return Status::Ok();
}

Status PosixWritableFile::Flush() {
  std::size_t written = 0;
  while (written < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + written, buffer_.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      // Leave no partial record in the file: a later append after space returns must not follow
      // half a record.
      if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
        return ErrnoStatus("write failed and could not be undone on", path_, error);
      }
      buffer_.clear();
      return ErrnoStatus("cannot write", path_, error);
    }
    written += static_cast<std::size_t>(n);
  }
  size_ += buffer_.size();
  buffer_.clear();
  return Status::Ok();
}

Status PosixWritableFile::Sync() {
  if (Status flushed = Flush(); !flushed.ok()) return flushed;
  if (::fdatasync(fd_) != 0) return ErrnoStatus("cannot sync", path_, errno);
  return Status::Ok();
}

Status PosixWritableFile::SyncWritten() const {
  if (::fdatasync(fd_) != 0) return ErrnoStatus("cannot sync", path_, errno);
  return Status::Ok();
}

Status PosixWritableFile::Truncate(std::uint64_t length) {
  buffer_.clear();
  if (::ftruncate(fd_, static_cast<off_t>(length)) != 0) {
    return ErrnoStatus("cannot truncate", path_, errno);
  }
  size_ = length;
  return Status::Ok();
}

Result<std::unique_ptr<PosixSequentialFile>> PosixSequentialFile::Open(
    const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open", path, errno);
  return std::unique_ptr<PosixSequentialFile>(new PosixSequentialFile(fd, path));
}

PosixSequentialFile::~PosixSequentialFile() { ::close(fd_); }

Status PosixSequentialFile::Read(std::size_t n, std::string_view* result, char* scratch) {
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd_, scratch + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot read", path_, errno);
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  *result = std::string_view(scratch, got);
  return Status::Ok();
}

}  // namespace zmqkit::internal
