#include "codec/envelope_receiver.h"

#include <span>

#include "util/deadline.h"
#include "codec/frames.h"

namespace zmqkit::internal {

Status StatusFromZmqError(const zmq::error_t& error) {
  if (error.num() == EINTR) return Status::Unavailable("interrupted by a signal");
  if (error.num() == ETERM) return Status::FailedPrecondition("the zmq context was terminated");
  throw error;
}

Status EnvelopeReceiver::Reject(DecodeError error) {
  ++stats_.rejected;
  ++stats_.rejected_by_reason[static_cast<std::size_t>(error.code)];
  Status status = error.ToStatus();
  last_error_ = std::move(error);
  return status;
}

Result<Envelope> EnvelopeReceiver::Receive(zmq::socket_ref socket,
                                           std::chrono::milliseconds timeout, std::string* topic,
                                           const SubscriptionSet* subscriptions) {
  bool not_subscribed = false;
  auto received = ReceiveOnce(socket, timeout, topic, subscriptions, not_subscribed);
  if (!not_subscribed) return received;
  // Rare (a subscription longer than a topic, matching header bytes): only now pay for a deadline.
  Deadline deadline(timeout);
  while (not_subscribed) {
    received = ReceiveOnce(socket, deadline.remaining(), topic, subscriptions, not_subscribed);
  }
  return received;
}

Result<Envelope> EnvelopeReceiver::ReceiveOnce(zmq::socket_ref socket,
                                               std::chrono::milliseconds timeout,
                                               std::string* topic,
                                               const SubscriptionSet* subscriptions,
                                               bool& not_subscribed) {
  not_subscribed = false;
  std::size_t count = 0;
  try {
    count = RecvAllWithin(socket, frames_, timeout);
  } catch (const zmq::error_t& error) {
    return StatusFromZmqError(error);
  }
  if (count == 0) {
    return Status::DeadlineExceeded(timeout == std::chrono::milliseconds(0)
                                        ? std::string("no message waiting")
                                        : "no message within " + std::to_string(timeout.count()) + " ms");
  }

  std::span<zmq::message_t> frames(frames_.data(), count);
  if (topic != nullptr && count == 1) {
    auto decoded = DecodeTopicPacked(frames[0], limits_, *topic);
    if (!decoded.ok()) return Reject(std::move(decoded).error());
    if (subscriptions != nullptr && !subscriptions->Admits(*topic)) {
      ++stats_.not_subscribed;
      not_subscribed = true;
      return Status::NotFound("not subscribed");  // Receive drops it and reads on
    }
    ++stats_.received;
    return std::move(decoded).value();
  }
  if (topic != nullptr) {
    if (frames[0].size() > limits_.max_topic_bytes) {
      return Reject({DecodeErrc::kFrameTooLarge,
                     "topic frame is " + std::to_string(frames[0].size()) + " bytes, limit is " +
                         std::to_string(limits_.max_topic_bytes)});
    }
    topic->assign(frames[0].data<char>(), frames[0].size());
    frames = frames.subspan(1);
  }
  // One frame left is the packed form, [header+body]; two are [header][body].
  auto decoded =
      frames.size() == 1 ? DecodePacked(frames[0], limits_) : DecodeFrames(frames, limits_);
  if (!decoded.ok()) return Reject(std::move(decoded).error());
  ++stats_.received;
  return std::move(decoded).value();
}

}  // namespace zmqkit::internal
