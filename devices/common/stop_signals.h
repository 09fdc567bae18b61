// StopSignals: SIGINT/SIGTERM as a clean stop for a program whose main thread sits in a socket loop.
//
// The signals are blocked in every thread (create this before the zmq context, so libzmq's I/O
// threads inherit the mask) and taken synchronously by one waiter thread, which calls `stop`. No
// handler runs inside zmq_poll, and no signal can arrive between a flag check and a blocking call.
#ifndef ZMQKIT_DEVICES_COMMON_STOP_SIGNALS_H_
#define ZMQKIT_DEVICES_COMMON_STOP_SIGNALS_H_

#include <signal.h>

#include <functional>
#include <string>

namespace zmqkit::devices {

class StopSignals {
 public:
  StopSignals();

  // Runs `run` on this thread; a SIGINT or SIGTERM meanwhile calls `stop` (from another thread),
  // which must make `run` return. Returns once `run` has returned.
  void RunUntilStopped(const std::string& program, const std::function<void()>& run,
                       const std::function<void()>& stop);

 private:
  sigset_t signals_;
};

}  // namespace zmqkit::devices

#endif  // ZMQKIT_DEVICES_COMMON_STOP_SIGNALS_H_
