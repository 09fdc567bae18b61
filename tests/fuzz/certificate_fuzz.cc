// Fuzz target: the certificate reader the broker, the devices and the CLI use on key files
// (--curve-secret, --server-key, --curve-key, --allow-keys, --admin-keys). Arbitrary file contents
// must give a key pair or a clear error, never a crash; a key it returns is valid Z85.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "zmqkit/curve.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = [] {
    char name[] = "/tmp/zmqkit-fuzz-certificate-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd >= 0) ::close(fd);
    return std::string(name);
  }();
  {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto keys = zmqkit::ReadCertificate(path);
  if (!keys.ok()) {
    if (keys.error().message().empty()) std::abort();
    return 0;
  }
  if (!zmqkit::IsZ85Key(keys->public_key)) std::abort();
  if (!keys->secret_key.empty() && !zmqkit::IsZ85Key(keys->secret_key)) std::abort();
  return 0;
}
