// zmqkit keygen: writes a CURVE key pair as two certificate files.
#include <iostream>

#include "cli.h"

namespace zmqkit::cli {
namespace {

class Keygen final : public Subcommand {
 public:
  explicit Keygen(CLI::App& parent) {
    app_ = parent.add_subcommand("keygen", "write a CURVE key pair: NAME (public) and NAME_secret");
    app_->add_option("name", name_, "file name for the public part; the secret goes to NAME_secret")->required();
  }

  int Run(const Common&) override {
    auto keys = GenerateCurveKeyPair();
    if (!keys.ok()) return Fail(keys.error().message());
    if (Status written = WriteCertificate(name_, *keys); !written.ok()) return Fail(written.message());
    std::cout << "wrote " << name_ << " (public, share it) and " << name_
              << "_secret (keep it; mode 0600)\n"
              << "public key: " << keys->public_key << "\n";
    return 0;
  }

 private:
  std::string name_;
};

}  // namespace

std::unique_ptr<Subcommand> MakeKeygen(CLI::App& parent) { return std::make_unique<Keygen>(parent); }

}  // namespace zmqkit::cli
