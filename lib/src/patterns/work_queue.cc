#include "zmqkit/work_queue.h"

#include "codec/envelope_receiver.h"
#include "codec/frames.h"
#include "net/peer_monitor.h"

namespace zmqkit {

Producer::Producer(zmq::context_t& context, const Endpoint& endpoint, ProducerOptions options)
    : socket_(OpenSocket(context, zmq::socket_type::push, options.socket)),
      monitor_(std::make_unique<internal::PeerMonitor>(context, socket_)),
      pack_small_bodies_(options.pack_small_bodies) {
  socket_.set(zmq::sockopt::sndtimeo, static_cast<int>(options.send_timeout.count()));
  endpoint_ = AttachSocket(socket_, endpoint);
}

Producer::~Producer() = default;
Producer::Producer(Producer&&) noexcept = default;
Producer& Producer::operator=(Producer&&) noexcept = default;

void Producer::Attach(const Endpoint& endpoint) { AttachSocket(socket_, endpoint); }

Status Producer::Send(const Envelope& envelope) {
  return Sent(internal::SendEnvelope(socket_, {}, envelope, scratch_, zmq::send_flags::none,
                                     internal::FormFor(pack_small_bodies_)));
}

Status Producer::Send(std::string_view body) {
  // A fresh envelope with an empty body allocates nothing; the body is copied once, into the frame
  // that carries it.
  return Sent(internal::SendEnvelope(socket_, {}, Envelope::New(), body, scratch_,
                                     zmq::send_flags::none,
                                     internal::FormFor(pack_small_bodies_)));
}

Status Producer::Sent(bool sent) {
  if (!sent) {
    ++stats_.timed_out;
    return Status::Unavailable("no worker took the message within the send timeout (" +
                               std::to_string(socket_.get(zmq::sockopt::sndtimeo)) + " ms)");
  }
  ++stats_.sent;
  return Status::Ok();
}


Status Producer::WaitForWorkers(std::size_t count, std::chrono::milliseconds timeout) {
  if (monitor_->WaitFor(count, timeout)) return Status::Ok();
  return Status::DeadlineExceeded(std::to_string(monitor_->peers()) + " of " +
                                  std::to_string(count) + " workers connected within " +
                                  std::to_string(timeout.count()) + " ms");
}

Worker::Worker(zmq::context_t& context, const Endpoint& endpoint, WorkerOptions options)
    : socket_(OpenSocket(context, zmq::socket_type::pull, options.socket)),
      receiver_(std::make_unique<internal::EnvelopeReceiver>(options.limits)) {
  endpoint_ = AttachSocket(socket_, endpoint);
}

Worker::~Worker() = default;
Worker::Worker(Worker&&) noexcept = default;
Worker& Worker::operator=(Worker&&) noexcept = default;

void Worker::Attach(const Endpoint& endpoint) { AttachSocket(socket_, endpoint); }

Result<Envelope> Worker::Receive(std::chrono::milliseconds timeout) {
  return receiver_->Receive(socket_, timeout);
}

const ReceiveStats& Worker::stats() const { return receiver_->stats(); }
const std::optional<DecodeError>& Worker::last_decode_error() const {
  return receiver_->last_error();
}

}  // namespace zmqkit
