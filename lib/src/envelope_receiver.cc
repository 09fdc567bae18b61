#include "envelope_receiver.h"

#include <span>

#include "frames.h"

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
                                           std::chrono::milliseconds timeout,
                                           std::string* topic) {
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
  if (topic != nullptr) {
    if (count == 1) {
      return Reject({DecodeErrc::kMissingFrames, "1 frame, expected [topic][header][body]"});
    }
    if (frames[0].size() > limits_.max_topic_bytes) {
      return Reject({DecodeErrc::kFrameTooLarge,
                     "topic frame is " + std::to_string(frames[0].size()) + " bytes, limit is " +
                         std::to_string(limits_.max_topic_bytes)});
    }
    topic->assign(frames[0].data<char>(), frames[0].size());
    frames = frames.subspan(1);
  }
  // One frame left is the packed form, [header and body]; two are [header][body].
  auto decoded =
      frames.size() == 1 ? DecodePacked(frames[0], limits_) : DecodeFrames(frames, limits_);
  if (!decoded.ok()) return Reject(std::move(decoded).error());
  ++stats_.received;
  return std::move(decoded).value();
}

}  // namespace zmqkit::internal
