#include "zmqkit/zap_server.h"

#include <zmq.h>

#include <array>
#include <chrono>
#include <iostream>
#include <vector>

#include "codec/frames.h"
#include "zmqkit/socket_factory.h"

namespace zmqkit {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
// Refusals logged per window; the rest are counted and summed up in the next line logged.
constexpr int kLogLinesPerWindow = 5;
constexpr auto kLogWindow = std::chrono::seconds(10);

std::string NextControlAddress() {
  static std::atomic<std::uint64_t> counter{0};
  return "inproc://zmqkit-zap-control-" + std::to_string(counter.fetch_add(1));
}

std::string Text(const zmq::message_t& frame) { return frame.to_string(); }

// A CURVE credential is the client's 32-byte public key; its Z85 form is what key files hold.
std::string Z85(const zmq::message_t& key) {
  if (key.size() != 32) return {};
  std::array<char, 41> text{};
  if (zmq_z85_encode(text.data(), key.data<std::uint8_t>(), key.size()) == nullptr) return {};
  return std::string(text.data(), 40);
}

}  // namespace

ZapServer::ZapServer(zmq::context_t& context, AccessPolicy policy,
                     std::function<void(std::string_view)> log)
    : context_(context),
      policy_(std::move(policy)),
      log_(log ? std::move(log)
               : [](std::string_view line) { std::cerr << "zmqkit: " << line << std::endl; }),
      control_address_(NextControlAddress()) {
  SocketOptions options;
  options.linger = std::chrono::milliseconds(0);
  zmq::socket_t handler = OpenSocket(context_, zmq::socket_type::rep, options);
  handler.bind(kZapEndpoint);  // throws EADDRINUSE if the context already has a handler
  zmq::socket_t control = OpenSocket(context_, zmq::socket_type::pull, options);
  control.bind(control_address_);
  thread_ = std::thread(&ZapServer::Serve, this, std::move(handler), std::move(control));
}

ZapServer::~ZapServer() {
  try {
    SocketOptions options;
    zmq::socket_t stop = OpenSocket(context_, zmq::socket_type::push, options);
    stop.connect(control_address_);
    stop.send(zmq::str_buffer("STOP"), zmq::send_flags::none);
  } catch (const zmq::error_t&) {
    // The context is shutting down (ETERM); the thread sees that too and returns.
  }
  if (thread_.joinable()) thread_.join();
}

void ZapServer::Serve(zmq::socket_t handler, zmq::socket_t control) {
  std::vector<zmq::message_t> request;
  auto window_start = std::chrono::steady_clock::now();
  int lines_in_window = 0;
  std::uint64_t unlogged = 0;
  auto log_refusal = [&](const std::string& reason) {
    const auto now = std::chrono::steady_clock::now();
    if (now - window_start >= kLogWindow) {
      window_start = now;
      lines_in_window = 0;
    }
    if (lines_in_window >= kLogLinesPerWindow) {
      ++unlogged;
      return;
    }
    ++lines_in_window;
    std::string line = "connection refused: " + reason;
    if (unlogged > 0) {
      line += " (and " + std::to_string(unlogged) + " more refusal(s) not logged)";
      unlogged = 0;
    }
    log_(line);
  };
  try {
    for (;;) {
      zmq::pollitem_t items[] = {{handler.handle(), 0, ZMQ_POLLIN, 0},
                                 {control.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, std::chrono::milliseconds(-1));
      if (items[1].revents & ZMQ_POLLIN) {
        // At once, not when libzmq reaps the socket later: a new handler (a broker restarted in
        // the same context) may bind the address right after this one stops.
        handler.unbind(kZapEndpoint);
        return;
      }
      if (!(items[0].revents & ZMQ_POLLIN)) continue;
      const std::size_t count = internal::RecvAll(handler, request, zmq::recv_flags::dontwait);
      if (count == 0) continue;
      // RFC 27: version, request id, domain, address, identity, mechanism, credentials...
      const bool well_formed = count >= 6 && Text(request[0]) == "1.0";
      std::string status = "400";
      std::string reason;
      std::string user_id;
      if (!well_formed) {
        malformed_.fetch_add(1, std::memory_order_relaxed);
        status = "500";
        reason = "malformed ZAP request";
      } else {
        ConnectionAttempt attempt;
        attempt.address = Text(request[3]);
        attempt.mechanism = Text(request[5]);
        if (attempt.mechanism == "CURVE" && count >= 7) attempt.public_key = Z85(request[6]);
        const AccessDecision decision = Decide(policy_, attempt);
        if (decision.allowed) {
          allowed_.fetch_add(1, std::memory_order_relaxed);
          status = "200";
          reason = "OK";
          user_id = decision.user_id;
        } else {
          refused_.fetch_add(1, std::memory_order_relaxed);
          reason = decision.reason;
          log_refusal(reason);
        }
      }
      // A REP socket must answer every request; the reply echoes the request id.
      std::vector<zmq::message_t> reply;
      reply.emplace_back("1.0", 3);
      reply.emplace_back(count >= 2 ? request[1].data() : nullptr, count >= 2 ? request[1].size() : 0);
      reply.emplace_back(status.data(), status.size());
      reply.emplace_back(reason.data(), reason.size());
      reply.emplace_back(user_id.data(), user_id.size());
      reply.emplace_back();  // metadata: none
      internal::SendAll(handler, reply);
    }
  } catch (const zmq::error_t& error) {
    if (error.num() != ETERM) log_(std::string("ZAP handler stopped: ") + error.what());
  }
}

}  // namespace zmqkit
