#include "net/peer_monitor.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>

#include "util/deadline.h"

namespace zmqkit::internal {
namespace {

constexpr int kWatchedEvents = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

std::string NextMonitorAddress() {
  static std::atomic<std::uint64_t> counter{0};
  return "inproc://zmqkit-peer-monitor-" + std::to_string(counter.fetch_add(1));
}

}  // namespace

PeerMonitor::PeerMonitor(zmq::context_t& context, zmq::socket_ref watched)
    : watched_(watched.handle()), events_(context, zmq::socket_type::pair) {
  std::string address = NextMonitorAddress();
  if (zmq_socket_monitor(watched_, address.c_str(), kWatchedEvents) != 0) {
    throw zmq::error_t();
  }
  events_.set(zmq::sockopt::linger, 0);
  events_.connect(address);
}

PeerMonitor::~PeerMonitor() { zmq_socket_monitor(watched_, nullptr, 0); }

std::size_t PeerMonitor::Poll(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{events_.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return peers_;
  zmq::message_t event;
  zmq::message_t address;
  while (events_.recv(event, zmq::recv_flags::dontwait)) {
    if (event.more()) (void)events_.recv(address);  // second frame: the endpoint
    if (event.size() < sizeof(std::uint16_t)) continue;
    std::uint16_t id;
    std::memcpy(&id, event.data(), sizeof id);
    // A failed handshake (a CURVE peer without the right key, say) is followed by a disconnect
    // that must not count against a real peer; and it never counts as a peer, even briefly.
    if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      ++handshakes_;
    } else if (id != ZMQ_EVENT_DISCONNECTED) {
      ++failed_handshakes_;
    } else if (failed_handshakes_ > 0) {
      --failed_handshakes_;
    } else {
      --handshakes_;
    }
    peers_ = handshakes_ > 0 ? static_cast<std::size_t>(handshakes_) : 0;
  }
  return peers_;
}

bool PeerMonitor::WaitFor(std::size_t count, std::chrono::milliseconds timeout) {
  Deadline deadline(timeout);
  while (Poll(std::chrono::milliseconds(0)) < count) {
    if (deadline.expired()) return false;
    Poll(deadline.remaining());
  }
  return true;
}

}  // namespace zmqkit::internal
