// Brokerless work queue: a Producer (PUSH) hands each message to one Worker (PULL), round robin.
//
// What this pattern gives: no process in the middle, libzmq's speed, fair distribution over the
// workers connected at the time of each send. What it does not: a message sent to a worker that then
// dies is gone, and nothing waits for a worker that is not running. TaskVentilator (reliable_tasks.h)
// adds resends; the broker adds both.
//
// Thread model (libzmq's): each object owns one socket and is used from one thread at a time.
#ifndef ZMQKIT_WORK_QUEUE_H_
#define ZMQKIT_WORK_QUEUE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "zmqkit/endpoint.h"
#include "zmqkit/envelope.h"
#include "zmqkit/envelope_codec.h"
#include "zmqkit/receive_stats.h"
#include "zmqkit/socket_factory.h"
#include "zmqkit/status.h"

namespace zmqkit {

namespace internal {
class EnvelopeReceiver;
class PeerMonitor;
}  // namespace internal

struct ProducerOptions {
  SocketOptions socket;
  // How long Send() waits when no worker can take the message (none connected, or every worker's
  // queue at its HWM) before it gives up with kUnavailable. Zero: never wait.
  std::chrono::milliseconds send_timeout{1000};
  // Send bodies of up to 1 KiB in one frame with the header (the packed form,
  // docs/wire-format.md section 1), which saves libzmq a frame per message. Workers of zmqkit
  // before the packed form reject it ("missing frames"); turn this off until every worker reads it.
  bool pack_small_bodies = true;
};

struct ProducerStats {
  std::uint64_t sent = 0;
  std::uint64_t timed_out = 0;  // sends that found no worker within send_timeout
};

class Producer {
 public:
  // Opens a PUSH socket and binds or connects it. Throws zmq::error_t if that fails.
  Producer(zmq::context_t& context, const Endpoint& endpoint, ProducerOptions options = {});
  ~Producer();
  Producer(Producer&&) noexcept;
  Producer& operator=(Producer&&) noexcept;

  // Also binds or connects to `endpoint` (a producer may feed several worker pools).
  void Attach(const Endpoint& endpoint);

  // Queues `envelope` for the next worker in turn. kUnavailable if no worker took it within
  // send_timeout; the message was not sent then.
  Status Send(const Envelope& envelope);
  // Sends a new envelope (fresh id, created now) holding `body`, which is copied once, into the
  // frame that carries it.
  Status Send(std::string_view body);

  // Waits until `count` workers have connected (tcp/ipc; see PeerMonitor). Returns kDeadlineExceeded
  // with the number seen if fewer arrived within `timeout`.
  Status WaitForWorkers(std::size_t count, std::chrono::milliseconds timeout);

  // The address in use for the first endpoint (the real port after binding to port *).
  const std::string& endpoint() const { return endpoint_; }
  zmq::socket_ref socket() { return socket_; }
  const ProducerStats& stats() const { return stats_; }

 private:
  // Counts a send and says how it went.
  Status Sent(bool sent);

  zmq::socket_t socket_;
  std::unique_ptr<internal::PeerMonitor> monitor_;
  std::string endpoint_;
  bool pack_small_bodies_ = true;
  std::string scratch_;
  ProducerStats stats_;
};

struct WorkerOptions {
  SocketOptions socket;
  DecodeLimits limits;
};

class Worker {
 public:
  // Opens a PULL socket and binds or connects it. Throws zmq::error_t if that fails.
  Worker(zmq::context_t& context, const Endpoint& endpoint, WorkerOptions options = {});
  ~Worker();
  Worker(Worker&&) noexcept;
  Worker& operator=(Worker&&) noexcept;

  void Attach(const Endpoint& endpoint);

  // The next message, waiting up to `timeout` (negative: forever). Errors:
  //   kDeadlineExceeded  nothing arrived
  //   kInvalidArgument   a malformed message arrived and was dropped (see last_decode_error())
  //   kUnavailable       interrupted by a signal
  // Never throws for anything a peer sends; after an error the next call works normally.
  Result<Envelope> Receive(std::chrono::milliseconds timeout);

  const std::string& endpoint() const { return endpoint_; }
  zmq::socket_ref socket() { return socket_; }
  const ReceiveStats& stats() const;
  const std::optional<DecodeError>& last_decode_error() const;

 private:
  zmq::socket_t socket_;
  std::unique_ptr<internal::EnvelopeReceiver> receiver_;
  std::string endpoint_;
};

}  // namespace zmqkit

#endif  // ZMQKIT_WORK_QUEUE_H_
