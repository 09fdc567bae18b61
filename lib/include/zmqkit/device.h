// Device: the classic ZeroMQ devices, a streamer (PULL in, PUSH out) and a forwarder (XSUB in,
// XPUB out), on zmq_proxy_steerable.
//
// A streamer lets any number of producers and workers meet at two well-known addresses instead of
// knowing each other; a forwarder does the same for publishers and subscribers, passing subscriptions
// upstream. Both forward multipart messages whole and keep no state, so they add a hop but no
// reliability: what they hold when they stop is lost. The zmqkit-streamer and zmqkit-forwarder
// binaries are thin mains around this class.
#ifndef ZMQKIT_DEVICE_H_
#define ZMQKIT_DEVICE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "zmqkit/access_policy.h"
#include "zmqkit/endpoint.h"
#include "zmqkit/socket_factory.h"

namespace zmqkit {

class ZapServer;

enum class DeviceKind { kStreamer, kForwarder };

struct DeviceOptions {
  DeviceKind kind = DeviceKind::kStreamer;
  Endpoint frontend;  // where messages come in
  Endpoint backend;   // where they go out
  // If set, a PUB socket here gets a copy of every message passing through.
  std::optional<Endpoint> capture;
  SocketOptions socket;
  // Who may connect to the bound endpoints (access_policy.h). When a rule is set the device runs
  // a ZAP handler on its context. Allowed keys need CURVE (socket.curve.server_secret_key).
  AccessPolicy access;
};

class Device {
 public:
  // Opens and binds/connects every socket. Throws zmq::error_t if an endpoint is refused.
  Device(zmq::context_t& context, DeviceOptions options);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // Forwards messages until Stop() is called. Call from one thread, once.
  void Run();
  // Makes Run() return. Safe to call from any thread, any number of times, before or during Run().
  void Stop();

  const std::string& frontend_endpoint() const { return frontend_endpoint_; }
  const std::string& backend_endpoint() const { return backend_endpoint_; }
  const std::string& capture_endpoint() const { return capture_endpoint_; }
  // Connections the access policy refused (0 without one).
  std::uint64_t connections_refused() const;

 private:
  zmq::context_t& context_;
  std::unique_ptr<ZapServer> zap_;  // before the sockets: it must outlive them
  zmq::socket_t frontend_;
  zmq::socket_t backend_;
  zmq::socket_t capture_;
  zmq::socket_t control_;  // PULL; Stop() sends TERMINATE here
  std::string control_address_;
  std::string frontend_endpoint_;
  std::string backend_endpoint_;
  std::string capture_endpoint_;
};

}  // namespace zmqkit

#endif  // ZMQKIT_DEVICE_H_
