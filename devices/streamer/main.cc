// zmqkit-streamer: producers PUSH to the frontend, workers PULL from the backend.
#include "common/device_main.h"

int main(int argc, char** argv) {
  return zmqkit::devices::DeviceMain(
      argc, argv, zmqkit::DeviceKind::kStreamer, "zmqkit-streamer",
      "Streamer device: load-balances messages from producers (frontend, PULL) to workers "
      "(backend, PUSH).");
}
