#include "common/security_flags.h"

#include <zmqkit/curve.h>

namespace zmqkit::devices {

void AddSecurityFlags(CLI::App& app, SecurityFlags& flags, bool with_admin) {
  app.add_option("--curve-secret", flags.curve_secret,
                 "CURVE: encrypt the bound endpoints with this secret certificate (zmqkit keygen "
                 "NAME writes NAME_secret); clients then need its public part");
  app.add_option("--allow-keys", flags.allow_keys,
                 "only clients whose public certificate is in this directory may connect "
                 "(needs --curve-secret)");
  if (with_admin) {
    app.add_option("--admin-keys", flags.admin_keys,
                   "clients whose public certificate is in this directory may declare, bind, "
                   "purge, redrive, peek and read stats; others only publish, consume and settle "
                   "(needs --curve-secret)");
  }
  app.add_option("--allow-ip", flags.allow_ips,
                 "only clients from this address or network may connect, e.g. 10.0.0.0/8 "
                 "(repeatable)");
  app.add_option("--deny-ip", flags.deny_ips,
                 "clients from this address or network may not connect (repeatable; checked "
                 "first)");
}

Status ApplySecurityFlags(const SecurityFlags& flags, SocketOptions& socket, AccessPolicy& access,
                          std::set<std::string>* admin_keys) {
  if (!flags.curve_secret.empty()) {
    auto keys = ReadSecretCertificate(flags.curve_secret);
    if (!keys.ok()) return Status::InvalidArgument("--curve-secret: " + keys.error().message());
    socket.curve.server_secret_key = keys->secret_key;
  }
  const bool curve = socket.curve.server();
  if (!flags.allow_keys.empty()) {
    if (!curve) return Status::InvalidArgument("--allow-keys needs --curve-secret");
    auto keys = ReadPublicKeys(flags.allow_keys);
    if (!keys.ok()) return Status::InvalidArgument("--allow-keys: " + keys.error().message());
    access.allowed_keys = std::move(*keys);
  }
  if (admin_keys != nullptr && !flags.admin_keys.empty()) {
    if (!curve) return Status::InvalidArgument("--admin-keys needs --curve-secret");
    auto keys = ReadPublicKeys(flags.admin_keys);
    if (!keys.ok()) return Status::InvalidArgument("--admin-keys: " + keys.error().message());
    if (keys->empty()) {
      return Status::InvalidArgument("--admin-keys: " + flags.admin_keys +
                                     " holds no certificate; nobody could administer");
    }
    *admin_keys = std::move(*keys);
  }
  for (auto [texts, target, flag] :
       {std::tuple{&flags.allow_ips, &access.allowed_networks, "--allow-ip"},
        std::tuple{&flags.deny_ips, &access.denied_networks, "--deny-ip"}}) {
    for (const std::string& text : *texts) {
      auto network = IpNetwork::Parse(text);
      if (!network.ok()) return Status::InvalidArgument(std::string(flag) + ": " + network.error().message());
      target->push_back(std::move(*network));
    }
  }
  return Status::Ok();
}

}  // namespace zmqkit::devices
