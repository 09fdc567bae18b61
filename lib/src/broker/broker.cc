// zmqkit::Broker: the broker's socket loop — the only part of the broker that polls, reads the clock
// or touches sockets. Each turn: do what time has made due, sleep until the next deadline or input,
// hand a burst of input to the core, flush confirms, send what the core produced.
#include "zmqkit/broker.h"

#include <algorithm>
#include <atomic>
#include <iostream>

#include "broker/broker_core.h"
#include "frames.h"

namespace zmqkit {
namespace {

// Messages read from one socket per turn before the other gets a look (fairness) and before
// confirms are flushed (batching).
constexpr int kBurst = 1024;

std::string NextControlAddress() {
  static std::atomic<std::uint64_t> counter{0};
  return "inproc://zmqkit-broker-control-" + std::to_string(counter.fetch_add(1));
}

}  // namespace

Broker::Broker(zmq::context_t& context, BrokerOptions options, const Clock* clock)
    : context_(context),
      options_(std::move(options)),
      clock_(clock ? *clock : steady_clock_),
      core_(std::make_unique<internal::BrokerCore>(options_)),
      clients_(OpenSocket(context, zmq::socket_type::router, options_.socket)),
      workers_(OpenSocket(context, zmq::socket_type::router, options_.socket)),
      control_(OpenSocket(context, zmq::socket_type::pull, SocketOptions{})),
      control_address_(NextControlAddress()) {
  clients_endpoint_ = AttachSocket(clients_, options_.clients);
  workers_endpoint_ = AttachSocket(workers_, options_.workers);
  control_.bind(control_address_);
  log_ = [](std::string_view line) { std::cerr << "zmqkit-broker: " << line << std::endl; };
}

Broker::~Broker() = default;

const BrokerCounters& Broker::counters() const { return core_->counters(); }

void Broker::Stop() {
  zmq::socket_t stop = OpenSocket(context_, zmq::socket_type::push, SocketOptions{});
  stop.connect(control_address_);
  stop.send(zmq::str_buffer("STOP"), zmq::send_flags::dontwait);
}

void Broker::Run() {
  std::vector<zmq::message_t> frames;
  auto send_outbox = [&] {
    for (internal::Outgoing& out : core_->outbox()) {
      zmq::socket_t& socket = out.side == internal::Side::kClients ? clients_ : workers_;
      // ROUTER drops what it cannot route (the peer is gone) instead of blocking: a vanished peer
      // must not stall everyone else. The core's liveness check then forgets it.
      socket.send(zmq::buffer(out.peer), zmq::send_flags::sndmore);
      for (std::size_t i = 0; i < out.frames.size(); ++i) {
        socket.send(out.frames[i], i + 1 < out.frames.size() ? zmq::send_flags::sndmore
                                                             : zmq::send_flags::none);
      }
    }
    core_->outbox().clear();
    for (const std::string& line : core_->TakeLog()) log_(line);
  };
  auto drain = [&](zmq::socket_t& socket, internal::Side side) {
    for (int i = 0; i < kBurst; ++i) {
      std::size_t count = internal::RecvAll(socket, frames, zmq::recv_flags::dontwait);
      if (count == 0) return;
      const TimePoint now = clock_.Now();
      std::string_view peer(frames[0].data<char>(), frames[0].size());
      std::span<zmq::message_t> rest(frames.data() + 1, count - 1);
      if (side == internal::Side::kClients) {
        core_->OnClientMessage(peer, rest, now);
      } else {
        core_->OnWorkerMessage(peer, rest, now);
      }
    }
  };

  for (;;) {
    try {
      const TimePoint now = clock_.Now();
      core_->Tick(now);
      send_outbox();
      std::chrono::milliseconds timeout(-1);
      if (auto deadline = core_->NextDeadline()) {
        timeout = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(*deadline - now),
                             std::chrono::milliseconds(0), std::chrono::milliseconds(60000));
      }
      zmq::pollitem_t items[] = {{clients_.handle(), 0, ZMQ_POLLIN, 0},
                                 {workers_.handle(), 0, ZMQ_POLLIN, 0},
                                 {control_.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 3, timeout);
      if (items[2].revents & ZMQ_POLLIN) return;
      if (items[0].revents & ZMQ_POLLIN) drain(clients_, internal::Side::kClients);
      if (items[1].revents & ZMQ_POLLIN) drain(workers_, internal::Side::kWorkers);
      core_->Flush();
      send_outbox();
    } catch (const zmq::error_t& error) {
      if (error.num() == EINTR) continue;
      if (error.num() == ETERM) return;
      throw;
    }
  }
}

}  // namespace zmqkit
