#include "zmqkit/curve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

namespace zmqkit {
namespace {

// czmq's zcert layout: a comment header, an empty metadata section, then the curve section.
std::string CertificateText(const CurveKeyPair& keys, bool with_secret) {
  char when[64] = "";
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &utc);
  std::ostringstream out;
  out << "#   ****  Generated on " << when << " by zmqkit  ****\n"
      << "#   ZeroMQ CURVE " << (with_secret ? "**Secret** Certificate" : "Public Certificate") << "\n"
      << (with_secret ? "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
                      : "#   Exchange securely, or use a secure mechanism to verify the contents\n"
                        "#   of this file after exchange. Store public certificates in your home\n"
                        "#   directory, in the .curve subdirectory.\n")
      << "\nmetadata\ncurve\n    public-key = \"" << keys.public_key << "\"\n";
  if (with_secret) out << "    secret-key = \"" << keys.secret_key << "\"\n";
  return out.str();
}

Status WriteFile(const std::string& path, const std::string& text, mode_t mode, bool exclusive) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == EEXIST) {
      return Status::FailedPrecondition(path + " exists; not overwriting a secret key");
    }
    return Status::IOError("cannot write " + path + ": " + std::strerror(errno));
  }
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!written || !synced) return Status::IOError("cannot write " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

// The value of `name = "value"` on a line of the curve section, or empty.
std::string QuotedValue(const std::string& line, std::string_view name) {
  const auto start = line.find_first_not_of(" \t");
  if (start == std::string::npos || line.compare(start, name.size(), name) != 0) return {};
  const auto open = line.find('"', start + name.size());
  const auto close = open == std::string::npos ? open : line.find('"', open + 1);
  if (close == std::string::npos) return {};
  const std::string between = line.substr(start + name.size(), open - start - name.size());
  if (between.find_first_not_of(" \t=") != std::string::npos) return {};
  return line.substr(open + 1, close - open - 1);
}

}  // namespace

Result<CurveKeyPair> ReadSecretCertificate(const std::string& path) {
  auto keys = ReadCertificate(path);
  if (keys.ok() && keys->secret_key.empty()) {
    return Status::InvalidArgument(path + " holds no secret key (give the NAME_secret file)");
  }
  return keys;
}

bool IsZ85Key(const std::string& key) {
  if (key.size() != 40) return false;
  std::uint8_t bytes[32];
  return zmq_z85_decode(bytes, key.c_str()) != nullptr;
}

Result<CurveKeyPair> GenerateCurveKeyPair() {
  char public_key[41] = {};
  char secret_key[41] = {};
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    return Status::Unavailable(std::string("cannot make a CURVE key pair: ") + zmq_strerror(zmq_errno()) +
                               " (libzmq built without CURVE?)");
  }
  return CurveKeyPair{public_key, secret_key};
}

Status WriteCertificate(const std::string& path, const CurveKeyPair& keys) {
  if (!IsZ85Key(keys.public_key) || !IsZ85Key(keys.secret_key)) {
    return Status::InvalidArgument("not a CURVE key pair (40 Z85 characters each)");
  }
  // The secret first and exclusively: if it exists, nothing is touched.
  if (Status status = WriteFile(path + "_secret", CertificateText(keys, true), 0600, true); !status.ok()) {
    return status;
  }
  return WriteFile(path, CertificateText(keys, false), 0644, false);
}

Result<CurveKeyPair> ReadCertificate(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read certificate " + path + ": " + std::strerror(errno));
  CurveKeyPair keys;
  bool in_curve = false;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] != ' ' && line[0] != '\t') {  // a section name
      in_curve = line.rfind("curve", 0) == 0;
      continue;
    }
    if (!in_curve) continue;
    if (auto value = QuotedValue(line, "public-key"); !value.empty()) keys.public_key = value;
    if (auto value = QuotedValue(line, "secret-key"); !value.empty()) keys.secret_key = value;
  }
  if (keys.public_key.empty()) {
    return Status::InvalidArgument(path + " is not a CURVE certificate: no curve/public-key");
  }
  if (!IsZ85Key(keys.public_key) || (!keys.secret_key.empty() && !IsZ85Key(keys.secret_key))) {
    return Status::InvalidArgument(path + ": a key is not 40 characters of Z85");
  }
  return keys;
}

}  // namespace zmqkit
