#include "storage/background_sync.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <system_error>

namespace zmqkit::internal {

BackgroundSync::BackgroundSync() : event_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (event_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  thread_ = std::thread([this] { Loop(); });
}

BackgroundSync::~BackgroundSync() {
  stopping_.store(true);
  start_.release();  // a running sync ends first; the thread then sees stopping_
  thread_.join();
  ::close(event_fd_);
}

void BackgroundSync::Start(const PosixWritableFile* file) {
  job_ = file;
  result_.reset();
  busy_ = true;
  start_.release();  // orders the writes above before the thread's acquire
}

void BackgroundSync::Loop() {
  for (;;) {
    start_.acquire();
    if (stopping_.load()) return;
    result_ = job_->SyncWritten();
    done_.store(true, std::memory_order_release);
    const std::uint64_t one = 1;
    // An eventfd write of 1 cannot fail short of overflowing a 64-bit counter.
    (void)!::write(event_fd_, &one, sizeof one);
  }
}

std::optional<Status> BackgroundSync::TryTake() {
  if (!busy_ || !done_.load(std::memory_order_acquire)) return std::nullopt;
  done_.store(false, std::memory_order_relaxed);
  // The thread writes the eventfd after setting done_: wait for that write, so the event does
  // not fire again for this sync, then clear it.
  pollfd event{event_fd_, POLLIN, 0};
  while (::poll(&event, 1, -1) < 0 && errno == EINTR) {
  }
  std::uint64_t count;
  (void)!::read(event_fd_, &count, sizeof count);
  busy_ = false;
  std::optional<Status> result = std::move(result_);
  result_.reset();
  return result;
}

Status BackgroundSync::Take() {
  for (;;) {
    if (std::optional<Status> result = TryTake()) return std::move(*result);
    pollfd event{event_fd_, POLLIN, 0};
    if (::poll(&event, 1, -1) < 0 && errno != EINTR) {
      return Status::IOError(std::string("waiting for a sync: ") + std::strerror(errno));
    }
  }
}

}  // namespace zmqkit::internal
