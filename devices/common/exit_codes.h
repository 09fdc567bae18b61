// Exit codes shared by every zmqkit program: 0 ok, 1 runtime failure, 2 usage error.
#ifndef ZMQKIT_DEVICES_COMMON_EXIT_CODES_H_
#define ZMQKIT_DEVICES_COMMON_EXIT_CODES_H_

#include <cerrno>

namespace zmqkit::devices {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;
inline constexpr int kExitUsage = 2;

// Whether libzmq refused an endpoint because of how it is written (a usage error) rather than
// because of the machine's state (a port in use, a permission: runtime).
inline bool IsEndpointError(int error) {
  return error == EINVAL || error == EPROTONOSUPPORT || error == ENODEV || error == ENOENT ||
         error == ENAMETOOLONG;
}

}  // namespace zmqkit::devices

#endif  // ZMQKIT_DEVICES_COMMON_EXIT_CODES_H_
