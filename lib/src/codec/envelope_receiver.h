// EnvelopeReceiver: the receive path every consuming socket shares — wait, read a whole message,
// decode it, count what was rejected — so that "nothing a peer sends escapes a receive loop" is
// written once.
#ifndef ZMQKIT_SRC_CODEC_ENVELOPE_RECEIVER_H_
#define ZMQKIT_SRC_CODEC_ENVELOPE_RECEIVER_H_

#include <chrono>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "patterns/subscription_set.h"
#include "zmqkit/envelope_codec.h"
#include "zmqkit/receive_stats.h"

namespace zmqkit::internal {

class EnvelopeReceiver {
 public:
  explicit EnvelopeReceiver(const DecodeLimits& limits) : limits_(limits) {}

  // Receives one message from `socket`, waiting up to `timeout` (negative: forever, zero: don't
  // wait). Without `topic` the message must be [header][body] or [header+body] (packed); with it,
  // [topic][header][body], [topic][header+body] or [topic+header+body+n] (topic-packed), and the
  // topic is stored there (docs/wire-format.md section 1). A topic-packed message whose topic
  // `subscriptions` does not admit is dropped, counted as not_subscribed, and the wait goes on.
  // Returns the envelope, or:
  //   kDeadlineExceeded    nothing arrived in time
  //   kInvalidArgument     a malformed message arrived; it was read whole, dropped and counted, and
  //                        last_error() says why. The socket is ready for the next message.
  //   kUnavailable         a signal interrupted the wait (EINTR)
  //   kFailedPrecondition  the context was terminated
  // Never throws for anything a peer sends.
  Result<Envelope> Receive(zmq::socket_ref socket, std::chrono::milliseconds timeout,
                           std::string* topic = nullptr,
                           const SubscriptionSet* subscriptions = nullptr);

  const ReceiveStats& stats() const { return stats_; }
  const std::optional<DecodeError>& last_error() const { return last_error_; }
  const DecodeLimits& limits() const { return limits_; }

 private:
  Status Reject(DecodeError error);
  Result<Envelope> ReceiveOnce(zmq::socket_ref socket, std::chrono::milliseconds timeout,
                               std::string* topic, const SubscriptionSet* subscriptions,
                               bool& not_subscribed);

  DecodeLimits limits_;
  std::vector<zmq::message_t> frames_;  // reused between calls; holds the last message's frames
  ReceiveStats stats_;
  std::optional<DecodeError> last_error_;
};

// Maps the zmq::error_t a receive or poll can throw to a Status (EINTR, ETERM); rethrows others.
Status StatusFromZmqError(const zmq::error_t& error);

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_CODEC_ENVELOPE_RECEIVER_H_
