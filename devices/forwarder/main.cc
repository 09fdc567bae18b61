// zmqkit-forwarder: publishers send to the frontend, subscribers subscribe at the backend.
#include "common/device_main.h"

int main(int argc, char** argv) {
  return zmqkit::devices::DeviceMain(
      argc, argv, zmqkit::DeviceKind::kForwarder, "zmqkit-forwarder",
      "Forwarder device: passes messages from publishers (frontend, XSUB) to subscribers "
      "(backend, XPUB), and subscriptions the other way.");
}
