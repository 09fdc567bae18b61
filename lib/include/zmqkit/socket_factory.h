// The one place zmqkit creates sockets.
//
// Every socket the library, the devices and the tools open comes from OpenSocket(), which applies
// SocketOptions. Settings that must hold everywhere at once — limits today, transport security later —
// are added here and nowhere else. CURVE (RFC 26) is switched on here for everything at once.
#ifndef ZMQKIT_SOCKET_FACTORY_H_
#define ZMQKIT_SOCKET_FACTORY_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <zmq.hpp>

#include "zmqkit/status.h"

namespace zmqkit {

// CURVE encryption and authentication. All empty (the default): plain TCP. Keys are Z85 (curve.h
// reads them from certificate files).
//   server side (binds, usually):  server_secret_key
//   client side (connects):        client_public_key + client_secret_key + server_public_key
// Setting both sides on one socket is an error (kInvalidArgument from ValidateCurve).
struct CurveOptions {
  std::string server_secret_key;
  std::string client_public_key;
  std::string client_secret_key;
  std::string server_public_key;
  bool server() const { return !server_secret_key.empty(); }
  bool client() const {
    return !client_public_key.empty() || !client_secret_key.empty() || !server_public_key.empty();
  }
};

// OK if `curve` is off, a complete server side, or a complete client side, each key valid Z85.
Status ValidateCurve(const CurveOptions& curve);

struct SocketOptions {
  // Messages queued per peer before the socket blocks (PUSH, DEALER) or drops (PUB) — libzmq's
  // ZMQ_SNDHWM / ZMQ_RCVHWM. 0 means no limit.
  int send_hwm = 1000;
  int recv_hwm = 1000;
  // How long close waits to flush queued messages. Finite, so a process with an unreachable peer
  // still exits; never proof of delivery (see docs/patterns.md).
  std::chrono::milliseconds linger{1000};
  // ZMQ_MAXMSGSIZE: libzmq disconnects a peer that sends a larger frame, before allocating it.
  // -1 (default) leaves the check to the envelope decoder, which reports kFrameTooLarge.
  std::int64_t max_frame_bytes = -1;
  CurveOptions curve;
  // ZMQ_ZAP_DOMAIN: set on a binding socket to have the context's ZAP handler (zap_server.h) vet
  // every connection, including plain (NULL mechanism) ones. CURVE connections are always vetted
  // when a handler is running.
  std::string zap_domain;
};

// Creates a socket of `type` on `context` with `options` applied. Throws zmq::error_t if libzmq
// rejects an option value, and std::invalid_argument if options.curve is not valid (ValidateCurve).
zmq::socket_t OpenSocket(zmq::context_t& context, zmq::socket_type type,
                         const SocketOptions& options);

// A process-wide context for programs that do not manage their own. It is never destroyed, so it
// cannot hang at exit waiting for a socket some static object still holds.
zmq::context_t& DefaultContext();

}  // namespace zmqkit

#endif  // ZMQKIT_SOCKET_FACTORY_H_
