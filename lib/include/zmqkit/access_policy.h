// Who may connect: the rules a ZAP handler (ZeroMQ RFC 27) applies to each new connection.
//
// A decision needs the client's CURVE public key (when the socket runs CURVE) and its IP address,
// nothing else, so the rules are a pure function here and the socket side is ZapServer
// (zap_server.h). Rules, in the order they are checked:
//   1. an address in a denied network is refused;
//   2. if allowed networks are given, an address outside all of them is refused;
//   3. if allowed keys are given, a connection must run CURVE with one of those keys.
// An allowed connection gets the client's Z85 public key as its ZAP User-Id, which the broker reads
// from each message to decide what the client may do (admin or not).
#ifndef ZMQKIT_ACCESS_POLICY_H_
#define ZMQKIT_ACCESS_POLICY_H_

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "zmqkit/status.h"

namespace zmqkit {

// An IPv4 or IPv6 network in CIDR form: "10.0.0.0/8", "127.0.0.1" (a /32), "::1", "fd00::/8".
class IpNetwork {
 public:
  // kInvalidArgument, naming the text, if it is not an address with an optional /prefix.
  static Result<IpNetwork> Parse(std::string_view text);
  // True if `address` (as libzmq reports a peer: "127.0.0.1", "::1", "::ffff:10.1.2.3") is in the
  // network. An IPv4-mapped IPv6 address matches IPv4 networks. Unparsable addresses match nothing.
  bool Contains(std::string_view address) const;
  const std::string& text() const { return text_; }

 private:
  bool v4_ = true;
  std::array<std::uint8_t, 16> bytes_{};
  int prefix_bits_ = 0;
  std::string text_;
};

struct AccessPolicy {
  // Z85 public keys allowed to connect. nullopt: any key (CURVE still demands the server's key).
  std::optional<std::set<std::string>> allowed_keys;
  std::vector<IpNetwork> allowed_networks;  // empty: any address not denied
  std::vector<IpNetwork> denied_networks;
  // True if any rule is set, i.e. a ZAP handler is needed.
  bool active() const {
    return allowed_keys.has_value() || !allowed_networks.empty() || !denied_networks.empty();
  }
};

// What a ZAP request tells us about a connecting peer.
struct ConnectionAttempt {
  std::string address;     // the peer's IP address
  std::string mechanism;   // "NULL", "PLAIN" or "CURVE"
  std::string public_key;  // CURVE: the client's key, Z85; empty otherwise
};

struct AccessDecision {
  bool allowed = false;
  std::string reason;   // why it was refused (sent to libzmq as the ZAP status text, and logged)
  std::string user_id;  // for an allowed CURVE client: its Z85 public key
};

AccessDecision Decide(const AccessPolicy& policy, const ConnectionAttempt& attempt);

// Public keys from every certificate file in `directory` (curve.h's format; only the public part is
// read, so either half of a pair works, but the public half is what belongs there). Files whose
// names start with '.' are skipped. kNotFound if the directory cannot be read; kInvalidArgument,
// naming the file, if a file is not a certificate — a typo must not silently shrink the list.
Result<std::set<std::string>> ReadPublicKeys(const std::string& directory);

}  // namespace zmqkit

#endif  // ZMQKIT_ACCESS_POLICY_H_
