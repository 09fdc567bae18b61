#include "zmqkit/device.h"

#include <atomic>
#include <stdexcept>

#include "zmqkit/zap_server.h"

namespace zmqkit {
namespace {

std::string NextControlAddress() {
  static std::atomic<std::uint64_t> counter{0};
  return "inproc://zmqkit-device-control-" + std::to_string(counter.fetch_add(1));
}

// Starts the access policy's ZAP handler, if there is a policy, and marks the sockets for it.
std::unique_ptr<ZapServer> StartZap(zmq::context_t& context, DeviceOptions& options) {
  if (!options.access.active()) return nullptr;
  if (options.access.allowed_keys && !options.socket.curve.server()) {
    throw std::invalid_argument("allowed keys need CURVE: give the device its secret key");
  }
  options.socket.zap_domain = std::string(kZapDomain);
  return std::make_unique<ZapServer>(context, options.access);
}

}  // namespace

Device::Device(zmq::context_t& context, DeviceOptions options)
    : context_(context),
      zap_(StartZap(context, options)),
      frontend_(OpenSocket(context, options.kind == DeviceKind::kStreamer ? zmq::socket_type::pull
                                                                          : zmq::socket_type::xsub,
                           options.socket)),
      backend_(OpenSocket(context, options.kind == DeviceKind::kStreamer ? zmq::socket_type::push
                                                                         : zmq::socket_type::xpub,
                          options.socket)),
      control_(OpenSocket(context, zmq::socket_type::pull, SocketOptions{})),
      control_address_(NextControlAddress()) {
  frontend_endpoint_ = AttachSocket(frontend_, options.frontend);
  backend_endpoint_ = AttachSocket(backend_, options.backend);
  if (options.capture) {
    capture_ = OpenSocket(context, zmq::socket_type::pub, options.socket);
    capture_endpoint_ = AttachSocket(capture_, *options.capture);
  }
  control_.bind(control_address_);
}

Device::~Device() = default;

std::uint64_t Device::connections_refused() const { return zap_ ? zap_->refused() : 0; }

void Device::Run() {
  // Returns normally on TERMINATE. Other errors (ETERM when the context is shut down) propagate.
  zmq::proxy_steerable(zmq::socket_ref(frontend_), zmq::socket_ref(backend_),
                       zmq::socket_ref(capture_), zmq::socket_ref(control_));
}

void Device::Stop() {
  // A socket of this thread's own; the control PULL socket belongs to Run()'s thread.
  SocketOptions options;
  options.linger = std::chrono::milliseconds(1000);
  zmq::socket_t stop = OpenSocket(context_, zmq::socket_type::push, options);
  stop.connect(control_address_);
  stop.send(zmq::str_buffer("TERMINATE"), zmq::send_flags::dontwait);
}

}  // namespace zmqkit
