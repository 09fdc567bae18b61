#include "common/stop_signals.h"

#include <pthread.h>

#include <cstring>
#include <iostream>
#include <thread>

namespace zmqkit::devices {

StopSignals::StopSignals() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  // SIGUSR2 is how this process releases the waiter when `run` ends for another reason.
  sigaddset(&signals_, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
}

void StopSignals::RunUntilStopped(const std::string& program, const std::function<void()>& run,
                                  const std::function<void()>& stop) {
  std::thread waiter([&] {
    int received = 0;
    sigwait(&signals_, &received);
    if (received == SIGUSR2) return;
    std::cerr << program << ": " << strsignal(received) << ", stopping" << std::endl;
    stop();
  });
  struct Release {
    std::thread& waiter;
    ~Release() {
      pthread_kill(waiter.native_handle(), SIGUSR2);  // harmless if it already left
      waiter.join();
    }
  } release{waiter};
  run();
}

}  // namespace zmqkit::devices
