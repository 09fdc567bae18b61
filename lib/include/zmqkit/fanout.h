// Brokerless fanout: a Publisher (XPUB) sends each message to every Subscriber (SUB) whose topic
// prefix matches.
//
// What this pattern gives: one send reaches any number of subscribers at libzmq's speed, and
// publishers and subscribers come and go freely. What it loses, and how zmqkit makes that visible:
//   - messages published before a subscription reaches the publisher (the "slow joiner"): wait with
//     WaitForSubscribers() before publishing, and subscribers count missed_before_join;
//   - messages that meet a full subscriber queue: counted by the publisher as dropped_at_hwm (or
//     waited for, with hwm_wait), and seen by the subscriber as a gap in the sequence numbers;
//   - everything sent while a subscriber is down: nothing in this pattern keeps it.
#ifndef ZMQKIT_FANOUT_H_
#define ZMQKIT_FANOUT_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "zmqkit/endpoint.h"
#include "zmqkit/envelope.h"
#include "zmqkit/envelope_codec.h"
#include "zmqkit/receive_stats.h"
#include "zmqkit/sequence_tracker.h"
#include "zmqkit/socket_factory.h"
#include "zmqkit/status.h"

namespace zmqkit {

namespace internal {
class EnvelopeReceiver;
class SubscriptionSet;
}  // namespace internal

// libzmq's default HWM of 1000 makes a fast publisher drop almost everything; fanout sockets get a
// deeper queue by default.
inline constexpr int kFanoutDefaultHwm = 100000;

struct PublisherOptions {
  SocketOptions socket = [] {
    SocketOptions options;
    options.send_hwm = kFanoutDefaultHwm;
    return options;
  }();
  // When a matching subscriber's queue is full: zero drops the message at once (counted),
  // positive waits up to that long for room and then drops, negative waits for as long as it takes
  // (the slowest subscriber then paces the publisher).
  std::chrono::milliseconds hwm_wait{0};
  // Names this publisher's sequence stream; empty picks a random one. A new stream id on every
  // start keeps a restarted publisher's seq 1 from looking like a duplicate.
  std::string stream_id;
  // Send bodies of up to 1 KiB in one frame with the topic and the header, [topic+header+body+n]
  // (the topic-packed form, docs/wire-format.md section 1), larger ones as [topic][header][body]:
  // for 100-byte bodies, 1.9-2.1 times the messages per second of the three frames. Subscribers
  // of zmqkit before the topic-packed form reject it; turn this off until every subscriber reads it.
  bool pack_small_bodies = true;
};

struct PublisherStats {
  std::uint64_t published = 0;
  // Messages not sent because a matching subscriber's queue was full. libzmq's XPUB_NODROP makes
  // this all-or-nothing: such a message reaches no subscriber, and every subscriber sees the gap.
  std::uint64_t dropped_at_hwm = 0;
};

class Publisher {
 public:
  // Opens an XPUB socket and binds or connects it. Throws zmq::error_t if that fails.
  Publisher(zmq::context_t& context, const Endpoint& endpoint, PublisherOptions options = {});
  ~Publisher();
  Publisher(Publisher&&) noexcept;
  Publisher& operator=(Publisher&&) noexcept;

  void Attach(const Endpoint& endpoint);

  // Stamps `envelope` with the next sequence number and this stream id and sends it topic-packed
  // (see PublisherOptions) or as [topic][header][body].
  // kResourceExhausted if it was dropped at a subscriber's HWM (the sequence number is used up all
  // the same, so subscribers see the loss).
  Status Publish(std::string_view topic, Envelope envelope);
  // Publishes a new message (fresh id, created now) holding `body`, which is copied once, into the
  // frame that carries it.
  Status Publish(std::string_view topic, std::string_view body);

  // Waits until at least `count` subscriptions that match `topic` (their prefix is a prefix of it)
  // have reached this publisher. Each subscriber's matching filter counts once; a subscriber with
  // two matching filters counts twice. kDeadlineExceeded with the number seen on timeout.
  Status WaitForSubscribers(std::size_t count, std::string_view topic,
                            std::chrono::milliseconds timeout);
  // Subscriptions that match `topic`, as known from the notices read so far (reads pending ones).
  std::size_t MatchingSubscriptions(std::string_view topic);

  const std::string& endpoint() const { return endpoint_; }
  const std::string& stream_id() const { return stream_id_; }
  std::uint64_t last_seq() const { return last_seq_; }
  const PublisherStats& stats() const { return stats_; }
  zmq::socket_ref socket() { return socket_; }

 private:
  // Reads subscription notices, waiting up to `timeout` for the first.
  void ReadSubscriptions(std::chrono::milliseconds timeout);
  // Counts a send of message `seq` and says how it went.
  Status Sent(std::uint64_t seq, bool sent);

  zmq::socket_t socket_;
  std::string endpoint_;
  std::string stream_id_;
  std::uint64_t last_seq_ = 0;
  bool pack_small_bodies_ = true;
  // The fields of Publish(topic, body)'s messages, kept so the stream id is copied in once, not per
  // message (it is longer than a std::string holds without allocating).
  Envelope fresh_;
  std::string scratch_;
  std::unique_ptr<internal::SubscriptionSet> subscriptions_;  // as the XPUB socket reported them
  PublisherStats stats_;
};

struct SubscriberOptions {
  SocketOptions socket = [] {
    SocketOptions options;
    options.recv_hwm = kFanoutDefaultHwm;
    return options;
  }();
  DecodeLimits limits;
};

struct Publication {
  std::string topic;
  Envelope envelope;
};

class Subscriber {
 public:
  // Opens a SUB socket, binds or connects it, and subscribes to nothing yet.
  Subscriber(zmq::context_t& context, const Endpoint& endpoint, SubscriberOptions options = {});
  ~Subscriber();
  Subscriber(Subscriber&&) noexcept;
  Subscriber& operator=(Subscriber&&) noexcept;

  void Attach(const Endpoint& endpoint);
  // Receive messages whose topic starts with `prefix` ("" for everything). Takes effect
  // asynchronously: the publisher learns of it over the connection. Subscribe through these, not
  // through socket(): the Subscriber checks topic-packed messages against the prefixes it was given
  // (libzmq matches them against the header's bytes too; see ReceiveStats::not_subscribed).
  // As in libzmq, a prefix subscribed twice needs unsubscribing twice.
  void Subscribe(std::string_view prefix);
  void Unsubscribe(std::string_view prefix);

  // The next publication, waiting up to `timeout` (negative: forever). Errors as Worker::Receive.
  // Sequenced messages are also recorded in sequence().
  Result<Publication> Receive(std::chrono::milliseconds timeout);

  const SequenceTracker& sequence() const { return sequence_; }
  const ReceiveStats& stats() const;
  const std::optional<DecodeError>& last_decode_error() const;
  const std::string& endpoint() const { return endpoint_; }
  zmq::socket_ref socket() { return socket_; }

 private:
  zmq::socket_t socket_;
  std::unique_ptr<internal::EnvelopeReceiver> receiver_;
  std::unique_ptr<internal::SubscriptionSet> subscriptions_;
  SequenceTracker sequence_;
  std::string endpoint_;
};

}  // namespace zmqkit

#endif  // ZMQKIT_FANOUT_H_
