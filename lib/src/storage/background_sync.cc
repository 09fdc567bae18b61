#include "storage/background_sync.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace zmqkit::internal {

BackgroundSync::BackgroundSync() : event_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (event_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  thread_ = std::thread([this] { Loop(); });
}

BackgroundSync::~BackgroundSync() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();  // after a running sync: the loop takes no new job once stopping
  ::close(event_fd_);
}

void BackgroundSync::Start(const PosixWritableFile* file) {
  {
    std::lock_guard lock(mutex_);
    job_ = file;
    result_.reset();
  }
  busy_ = true;
  changed_.notify_all();
}

void BackgroundSync::Loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return job_ != nullptr || stopping_; });
    if (!job_) return;  // stopping, nothing to finish
    const PosixWritableFile* file = job_;
    lock.unlock();
    Status status = file->SyncWritten();
    lock.lock();
    job_ = nullptr;
    result_ = std::move(status);
    const std::uint64_t one = 1;
    // An eventfd write of 1 cannot fail short of overflowing a 64-bit counter.
    (void)!::write(event_fd_, &one, sizeof one);
    changed_.notify_all();
  }
}

void BackgroundSync::ClearEvent() {
  std::uint64_t count;
  (void)!::read(event_fd_, &count, sizeof count);  // EAGAIN when already clear: fine
}

std::optional<Status> BackgroundSync::TryTake() {
  std::lock_guard lock(mutex_);
  if (!busy_ || !result_) return std::nullopt;
  ClearEvent();
  busy_ = false;
  std::optional<Status> result = std::move(result_);
  result_.reset();
  return result;
}

Status BackgroundSync::Take() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return result_.has_value(); });
  ClearEvent();
  busy_ = false;
  Status result = std::move(*result_);
  result_.reset();
  return result;
}

}  // namespace zmqkit::internal
