// The shared main of zmqkit-streamer and zmqkit-forwarder: flags, signals, exit codes.
#ifndef ZMQKIT_DEVICES_COMMON_DEVICE_MAIN_H_
#define ZMQKIT_DEVICES_COMMON_DEVICE_MAIN_H_

#include <zmqkit/device.h>

namespace zmqkit::devices {

// Exit codes: 0 stopped by SIGINT/SIGTERM (or --help), 1 runtime failure (an address in use),
// 2 usage error (bad flag, bad endpoint).
int DeviceMain(int argc, char** argv, DeviceKind kind, const char* name, const char* description);

}  // namespace zmqkit::devices

#endif  // ZMQKIT_DEVICES_COMMON_DEVICE_MAIN_H_
