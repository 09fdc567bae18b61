// The security flags every zmqkit device takes (docs/security.md): CURVE on the bound endpoints,
// and who may connect. One definition, so the broker, the streamer and the forwarder spell and
// check them alike.
#ifndef ZMQKIT_DEVICES_COMMON_SECURITY_FLAGS_H_
#define ZMQKIT_DEVICES_COMMON_SECURITY_FLAGS_H_

#include <zmqkit/access_policy.h>
#include <zmqkit/socket_factory.h>

#include <CLI/CLI.hpp>
#include <set>
#include <string>
#include <vector>

namespace zmqkit::devices {

struct SecurityFlags {
  std::string curve_secret;  // NAME_secret certificate
  std::string allow_keys;    // directory of public certificates
  std::string admin_keys;    // directory of public certificates (broker only)
  std::vector<std::string> allow_ips;
  std::vector<std::string> deny_ips;
};

// Adds --curve-secret, --allow-keys, --allow-ip, --deny-ip and, if `with_admin`, --admin-keys.
void AddSecurityFlags(CLI::App& app, SecurityFlags& flags, bool with_admin);

// Reads the key files and networks the flags name into `socket` (CURVE server key), `access` and
// `admin_keys` (may be null if not offered). An error names the flag and what is wrong.
Status ApplySecurityFlags(const SecurityFlags& flags, SocketOptions& socket, AccessPolicy& access,
                          std::set<std::string>* admin_keys);

}  // namespace zmqkit::devices

#endif  // ZMQKIT_DEVICES_COMMON_SECURITY_FLAGS_H_
