// The one place zmqkit creates sockets.
//
// Every socket the library, the devices and the tools open comes from OpenSocket(), which applies
// SocketOptions. Settings that must hold everywhere at once — limits today, transport security later —
// are added here and nowhere else.
#ifndef ZMQKIT_SOCKET_FACTORY_H_
#define ZMQKIT_SOCKET_FACTORY_H_

#include <chrono>
#include <cstdint>
#include <zmq.hpp>

namespace zmqkit {

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
};

// Creates a socket of `type` on `context` with `options` applied. Throws zmq::error_t only if libzmq
// rejects an option value.
zmq::socket_t OpenSocket(zmq::context_t& context, zmq::socket_type type,
                         const SocketOptions& options);

// A process-wide context for programs that do not manage their own. It is never destroyed, so it
// cannot hang at exit waiting for a socket some static object still holds.
zmq::context_t& DefaultContext();

}  // namespace zmqkit

#endif  // ZMQKIT_SOCKET_FACTORY_H_
