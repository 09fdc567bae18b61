#include "zmqkit/access_policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <system_error>

#include "zmqkit/curve.h"

namespace zmqkit {
namespace {

// The address as 16 bytes; IPv4 is stored as an IPv4-mapped IPv6 address (::ffff:a.b.c.d) so one
// comparison serves both families.
struct Address {
  bool v4 = false;
  std::array<std::uint8_t, 16> bytes{};
};

std::optional<Address> ParseAddress(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  const std::string copy(text);
  Address address;
  unsigned char buffer[16];
  if (::inet_pton(AF_INET, copy.c_str(), buffer) == 1) {
    address.v4 = true;
    address.bytes[10] = address.bytes[11] = 0xff;
    std::copy(buffer, buffer + 4, address.bytes.begin() + 12);
    return address;
  }
  if (::inet_pton(AF_INET6, copy.c_str(), buffer) == 1) {
    std::copy(buffer, buffer + 16, address.bytes.begin());
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    address.v4 = std::equal(kMapped, kMapped + 12, address.bytes.begin());
    return address;
  }
  return std::nullopt;
}

// Built with append: g++ 12's -Wrestrict misfires on "\"" + std::string(...) chains.
std::string Quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  out.append(text);
  out.push_back('"');
  return out;
}

}  // namespace

Result<IpNetwork> IpNetwork::Parse(std::string_view text) {
  const auto slash = text.find('/');
  auto address = ParseAddress(text.substr(0, slash));
  if (!address) {
    return Status::InvalidArgument(Quoted(text) +
                                   " is not an IP address or network (e.g. 10.0.0.0/8, ::1)");
  }
  const int max_bits = address->v4 ? 32 : 128;
  int bits = max_bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() || bits < 0 ||
        bits > max_bits) {
      return Status::InvalidArgument(Quoted(text) + ": the prefix must be 0 to " +
                                     std::to_string(max_bits));
    }
  }
  IpNetwork network;
  network.v4_ = address->v4;
  network.bytes_ = address->bytes;
  network.prefix_bits_ = address->v4 ? bits + 96 : bits;  // over the 16-byte form
  network.text_ = std::string(text);
  return network;
}

bool IpNetwork::Contains(std::string_view text) const {
  auto address = ParseAddress(text);
  if (!address || address->v4 != v4_) return false;
  int bits = prefix_bits_;
  for (std::size_t i = 0; bits > 0; ++i, bits -= 8) {
    const std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
    if ((address->bytes[i] & mask) != (bytes_[i] & mask)) return false;
  }
  return true;
}

AccessDecision Decide(const AccessPolicy& policy, const ConnectionAttempt& attempt) {
  AccessDecision decision;
  for (const IpNetwork& network : policy.denied_networks) {
    if (network.Contains(attempt.address)) {
      decision.reason = "address " + attempt.address + " is denied (" + network.text() + ")";
      return decision;
    }
  }
  if (!policy.allowed_networks.empty() &&
      std::none_of(policy.allowed_networks.begin(), policy.allowed_networks.end(),
                   [&](const IpNetwork& network) { return network.Contains(attempt.address); })) {
    decision.reason = "address " + attempt.address + " is not in an allowed network";
    return decision;
  }
  if (policy.allowed_keys) {
    if (attempt.mechanism != "CURVE") {
      decision.reason = "a client key is required (CURVE), and this connection from " +
                        attempt.address + " uses " + attempt.mechanism;
      return decision;
    }
    if (!policy.allowed_keys->contains(attempt.public_key)) {
      decision.reason = "key " + attempt.public_key + " from " + attempt.address + " is not allowed";
      return decision;
    }
  }
  decision.allowed = true;
  decision.user_id = attempt.public_key;
  return decision;
}

Result<std::set<std::string>> ReadPublicKeys(const std::string& directory) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::directory_iterator it(directory, error);
  if (error) return Status::NotFound("cannot read the key directory " + directory + ": " + error.message());
  std::vector<fs::path> files;
  for (; it != fs::directory_iterator(); it.increment(error)) {
    if (error) return Status::NotFound("cannot read the key directory " + directory + ": " + error.message());
    const std::string name = it->path().filename().string();
    if (name.starts_with(".") || it->is_directory(error)) continue;
    files.push_back(it->path());
  }
  std::set<std::string> keys;
  for (const fs::path& file : files) {
    auto certificate = ReadCertificate(file.string());
    if (!certificate.ok()) {
      return Status::InvalidArgument("in the key directory " + directory + ": " +
                                     certificate.error().message());
    }
    keys.insert(certificate->public_key);
  }
  return keys;
}

}  // namespace zmqkit
