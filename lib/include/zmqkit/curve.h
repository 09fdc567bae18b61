// CURVE keys (ZeroMQ RFC 26): generating them, and keeping them in certificate files.
//
// The file format is czmq's `zcert` ("ZeroMQ's usual certificate format"), so keys made here work
// with czmq tools and the other way round. A pair is two files:
//   NAME         the public part, safe to share:   curve / public-key = "<40 Z85 chars>"
//   NAME_secret  both parts, mode 0600:             curve / public-key, secret-key
// Keys are Z85 text, 40 characters each (32 bytes).
//
// Which socket uses which key is set in SocketOptions::curve (socket_factory.h); a server needs its
// secret key, a client its key pair and the server's public key.
#ifndef ZMQKIT_CURVE_H_
#define ZMQKIT_CURVE_H_

#include <string>

#include "zmqkit/status.h"

namespace zmqkit {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters; empty when only the public part was read
};

// A fresh key pair from libzmq (zmq_curve_keypair). kUnavailable if libzmq was built without CURVE.
Result<CurveKeyPair> GenerateCurveKeyPair();

// Writes `path` (public part, 0644) and `path`_secret (both parts, 0600). Refuses to overwrite an
// existing secret file (kFailedPrecondition): losing a secret key cannot be undone.
Status WriteCertificate(const std::string& path, const CurveKeyPair& keys);

// Reads a certificate file: the public key, and the secret key if the file has one. Errors name
// the file and what is wrong with it (kNotFound, kInvalidArgument).
Result<CurveKeyPair> ReadCertificate(const std::string& path);

// ReadCertificate for a file that must hold the secret key too (the NAME_secret half): the public
// half given by mistake is kInvalidArgument, "… holds no secret key (give the NAME_secret file)".
Result<CurveKeyPair> ReadSecretCertificate(const std::string& path);

// True if `key` is 40 characters of Z85 that decode to 32 bytes.
bool IsZ85Key(const std::string& key);

}  // namespace zmqkit

#endif  // ZMQKIT_CURVE_H_
