#include "zmqkit/fanout.h"

#include "util/deadline.h"
#include "codec/envelope_receiver.h"
#include "codec/frames.h"
#include "patterns/subscription_set.h"

namespace zmqkit {
namespace {

std::string RandomStreamId() {
  // A UUIDv7's text is unique and shows when the publisher started.
  return MessageId::Generate().ToString();
}

}  // namespace

Publisher::Publisher(zmq::context_t& context, const Endpoint& endpoint, PublisherOptions options)
    : socket_(OpenSocket(context, zmq::socket_type::xpub, options.socket)),
      stream_id_(options.stream_id.empty() ? RandomStreamId() : options.stream_id),
      pack_small_bodies_(options.pack_small_bodies),
      subscriptions_(std::make_unique<internal::SubscriptionSet>()) {
  fresh_.stream = stream_id_;
  // Every subscribe and unsubscribe notice, duplicates included, so subscribers can be counted.
  socket_.set(zmq::sockopt::xpub_verboser, 1);
  // Report a full subscriber queue as EAGAIN instead of dropping silently.
  socket_.set(zmq::sockopt::xpub_nodrop, 1);
  socket_.set(zmq::sockopt::sndtimeo, static_cast<int>(options.hwm_wait.count() < 0
                                                           ? -1
                                                           : options.hwm_wait.count()));
  endpoint_ = AttachSocket(socket_, endpoint);
}

Publisher::~Publisher() = default;
Publisher::Publisher(Publisher&&) noexcept = default;
Publisher& Publisher::operator=(Publisher&&) noexcept = default;

void Publisher::Attach(const Endpoint& endpoint) { AttachSocket(socket_, endpoint); }

Status Publisher::Publish(std::string_view topic, Envelope envelope) {
  envelope.seq = ++last_seq_;
  envelope.stream = stream_id_;
  const bool sent = internal::SendEnvelope(socket_, topic, envelope, scratch_,
                                           zmq::send_flags::none,
                                           internal::FormFor(pack_small_bodies_));
  return Sent(envelope.seq, sent);
}

Status Publisher::Publish(std::string_view topic, std::string_view body) {
  const Envelope stamp = Envelope::New();  // a fresh id and time; an empty body allocates nothing
  fresh_.id = stamp.id;
  fresh_.created_us = stamp.created_us;
  fresh_.seq = ++last_seq_;
  const bool sent = internal::SendEnvelope(socket_, topic, fresh_, body, scratch_,
                                           zmq::send_flags::none,
                                           internal::FormFor(pack_small_bodies_));
  return Sent(fresh_.seq, sent);
}

Status Publisher::Sent(std::uint64_t seq, bool sent) {
  // Notices queue up on an XPUB until read; read them now and then so they never pile up.
  if ((seq & 1023) == 0) ReadSubscriptions(std::chrono::milliseconds(0));
  if (!sent) {
    ++stats_.dropped_at_hwm;
    return Status::ResourceExhausted("a subscriber's queue is full; message " +
                                     std::to_string(seq) + " dropped");
  }
  ++stats_.published;
  return Status::Ok();
}

void Publisher::ReadSubscriptions(std::chrono::milliseconds timeout) {
  if (!internal::WaitReadable(socket_, timeout)) return;
  zmq::message_t notice;
  while (socket_.recv(notice, zmq::recv_flags::dontwait)) {
    if (notice.size() == 0) continue;
    const auto* bytes = notice.data<char>();
    const std::string_view filter(bytes + 1, notice.size() - 1);
    if (bytes[0] == 1) {
      subscriptions_->Add(filter);
    } else if (bytes[0] == 0) {
      subscriptions_->Remove(filter);
    }
  }
}

std::size_t Publisher::MatchingSubscriptions(std::string_view topic) {
  ReadSubscriptions(std::chrono::milliseconds(0));
  return subscriptions_->Matching(topic);
}

Status Publisher::WaitForSubscribers(std::size_t count, std::string_view topic,
                                     std::chrono::milliseconds timeout) {
  internal::Deadline deadline(timeout);
  while (MatchingSubscriptions(topic) < count) {
    if (deadline.expired()) {
      return Status::DeadlineExceeded(std::to_string(MatchingSubscriptions(topic)) + " of " +
                                      std::to_string(count) + " subscribers for \"" +
                                      std::string(topic) + "\" within " +
                                      std::to_string(timeout.count()) + " ms");
    }
    ReadSubscriptions(deadline.remaining());
  }
  return Status::Ok();
}

Subscriber::Subscriber(zmq::context_t& context, const Endpoint& endpoint, SubscriberOptions options)
    : socket_(OpenSocket(context, zmq::socket_type::sub, options.socket)),
      receiver_(std::make_unique<internal::EnvelopeReceiver>(options.limits)),
      subscriptions_(std::make_unique<internal::SubscriptionSet>()) {
  endpoint_ = AttachSocket(socket_, endpoint);
}

Subscriber::~Subscriber() = default;
Subscriber::Subscriber(Subscriber&&) noexcept = default;
Subscriber& Subscriber::operator=(Subscriber&&) noexcept = default;

void Subscriber::Attach(const Endpoint& endpoint) { AttachSocket(socket_, endpoint); }

void Subscriber::Subscribe(std::string_view prefix) {
  socket_.set(zmq::sockopt::subscribe, prefix);
  subscriptions_->Add(prefix);
}

void Subscriber::Unsubscribe(std::string_view prefix) {
  socket_.set(zmq::sockopt::unsubscribe, prefix);
  subscriptions_->Remove(prefix);
}

Result<Publication> Subscriber::Receive(std::chrono::milliseconds timeout) {
  Publication publication;
  auto received = receiver_->Receive(socket_, timeout, &publication.topic, subscriptions_.get());
  if (!received.ok()) return std::move(received).error();
  publication.envelope = std::move(received).value();
  if (publication.envelope.seq != 0) {
    sequence_.Observe(publication.envelope.stream, publication.envelope.seq);
  }
  return publication;
}

const ReceiveStats& Subscriber::stats() const { return receiver_->stats(); }
const std::optional<DecodeError>& Subscriber::last_decode_error() const {
  return receiver_->last_error();
}

}  // namespace zmqkit
