// ZapServer: the ZAP handler (ZeroMQ RFC 27) of one context, applying an AccessPolicy.
//
// libzmq asks the handler bound at inproc://zeromq.zap.01 about every new connection to a socket
// that runs CURVE, or that has a ZAP domain (SocketOptions::zap_domain) set. This class binds that
// address, answers on a thread of its own, counts what it allowed and refused, and logs refusals
// at a bounded rate: a client retrying with a wrong key every 100 ms gives a line now and then
// with a count, not a line per attempt. A refused peer's connection is closed by libzmq before any
// message of it reaches a socket.
//
// Create it before the sockets it guards bind or accept connections. One per context: a second
// one fails to bind (zmq::error_t, EADDRINUSE).
#ifndef ZMQKIT_ZAP_SERVER_H_
#define ZMQKIT_ZAP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <zmq.hpp>

#include "zmqkit/access_policy.h"

namespace zmqkit {

// The ZAP domain zmqkit's server sockets use when a policy is active.
inline constexpr std::string_view kZapDomain = "zmqkit";

class ZapServer {
 public:
  // `log` is called on the ZapServer's own thread (stderr if null).
  ZapServer(zmq::context_t& context, AccessPolicy policy,
            std::function<void(std::string_view)> log = nullptr);
  // Stops the thread. Connections attempted afterwards on this context get no answer.
  ~ZapServer();
  ZapServer(const ZapServer&) = delete;
  ZapServer& operator=(const ZapServer&) = delete;

  std::uint64_t allowed() const { return allowed_.load(std::memory_order_relaxed); }
  std::uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }
  // ZAP requests that did not follow RFC 27 (never sent by libzmq itself).
  std::uint64_t malformed() const { return malformed_.load(std::memory_order_relaxed); }

 private:
  void Serve(zmq::socket_t handler, zmq::socket_t control);

  zmq::context_t& context_;
  AccessPolicy policy_;
  std::function<void(std::string_view)> log_;
  std::string control_address_;
  std::atomic<std::uint64_t> allowed_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> malformed_{0};
  std::thread thread_;
};

}  // namespace zmqkit

#endif  // ZMQKIT_ZAP_SERVER_H_
