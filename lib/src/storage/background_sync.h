// BackgroundSync: runs a file's fdatasync on a thread of its own, one at a time, so the thread that
// writes the file (the broker's loop) goes on serving while the disk works. The end of each sync is
// signalled on an eventfd the writer polls beside its sockets.
//
// The hand-over takes no lock: a thread preempted while holding one would stall the other for a
// scheduler slice (milliseconds on a busy machine), which is what this class exists to avoid.
#ifndef ZMQKIT_SRC_STORAGE_BACKGROUND_SYNC_H_
#define ZMQKIT_SRC_STORAGE_BACKGROUND_SYNC_H_

#include <atomic>
#include <optional>
#include <semaphore>
#include <thread>

#include "storage/file.h"
#include "zmqkit/status.h"

namespace zmqkit::internal {

class BackgroundSync {
 public:
  // Throws std::system_error if the eventfd or the thread cannot be made.
  BackgroundSync();
  // Waits for a sync that is running.
  ~BackgroundSync();
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;

  // Starts `file->SyncWritten()` on the thread. REQUIRES: !busy(); `file` stays open until the
  // result is taken.
  void Start(const PosixWritableFile* file);
  // A sync was started and its result not yet taken.
  bool busy() const { return busy_; }
  // Readable once the running sync has finished.
  int event_fd() const { return event_fd_; }
  // The finished sync's result, or nullopt while it still runs (or none was started).
  std::optional<Status> TryTake();
  // Waits for the running sync and returns its result. REQUIRES: busy().
  Status Take();

 private:
  void Loop();

  int event_fd_;
  bool busy_ = false;  // the writer's thread's alone
  // Start() sets job_ and releases start_; the thread syncs, sets result_ and then done_ (release),
  // which the writer reads (acquire) before result_.
  std::binary_semaphore start_{0};
  const PosixWritableFile* job_ = nullptr;
  std::optional<Status> result_;
  std::atomic<bool> done_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_STORAGE_BACKGROUND_SYNC_H_
