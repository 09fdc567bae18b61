#include "codec/frames.h"

#include <algorithm>

#include "zmqkit/envelope_codec.h"

namespace zmqkit::internal {

std::size_t RecvAll(zmq::socket_ref socket, std::vector<zmq::message_t>& frames,
                    zmq::recv_flags flags) {
  std::size_t count = 0;
  do {
    if (count == frames.size()) frames.emplace_back();
    auto received = socket.recv(frames[count], count == 0 ? flags : zmq::recv_flags::none);
    if (!received) return 0;  // only possible for the first frame
    ++count;
  } while (frames[count - 1].more());
  return count;
}

std::size_t RecvAllCapped(zmq::socket_ref socket, std::vector<zmq::message_t>& frames,
                          zmq::recv_flags flags, std::size_t max_frames, std::size_t& dropped) {
  dropped = 0;
  std::size_t count = 0;
  for (bool more = true; more;) {
    const bool keep = count < max_frames;
    // Past the cap every frame goes to one scratch slot: the socket stays in step and the vector
    // does not grow with what a peer chose to send.
    const std::size_t slot = keep ? count : max_frames;
    while (frames.size() <= slot) frames.emplace_back();
    auto received = socket.recv(frames[slot], count == 0 ? flags : zmq::recv_flags::none);
    if (!received) return 0;  // only possible for the first frame
    more = frames[slot].more();
    if (keep) {
      ++count;
    } else {
      ++dropped;
    }
  }
  return count;
}

std::size_t RecvAllWithin(zmq::socket_ref socket, std::vector<zmq::message_t>& frames,
                          std::chrono::milliseconds timeout) {
  if (timeout == std::chrono::milliseconds(0)) return RecvAll(socket, frames, zmq::recv_flags::dontwait);
  const int wanted = timeout.count() < 0 ? -1
                     : static_cast<int>(std::min<std::int64_t>(timeout.count(), 1 << 30));
  // Reading an option is a userspace call; setting it only when it changes keeps it that way.
  if (socket.get(zmq::sockopt::rcvtimeo) != wanted) socket.set(zmq::sockopt::rcvtimeo, wanted);
  return RecvAll(socket, frames, zmq::recv_flags::none);
}

namespace {

// `body_message`, when given, holds the body's bytes and is shared instead of copied.
bool SendEnvelopeWith(zmq::socket_ref socket, std::optional<std::string_view> topic,
                      const Envelope& envelope, const zmq::message_t* body_message,
                      std::string_view body, std::string& scratch, zmq::send_flags flags,
                      EnvelopeForm form) {
  bool first = true;
  // Only the first frame can block or fail with EAGAIN: once it is queued, libzmq accepts the rest
  // of the message whole.
  auto send = [&](zmq::message_t&& frame, bool more) {
    zmq::send_flags frame_flags = more ? zmq::send_flags::sndmore : zmq::send_flags::none;
    if (first) frame_flags = frame_flags | flags;
    first = false;
    return socket.send(frame, frame_flags).has_value();
  };
  if (form == EnvelopeForm::kPackSmallBodies && body.size() <= kPackedBodyLimit) {
    if (!topic) return send(EncodePacked(envelope, body, scratch), false);
    if (topic->size() <= kTopicPackedMaxTopic) {
      return send(EncodeTopicPacked(*topic, envelope, body, scratch), false);
    }
  }
  if (topic && !send(zmq::message_t(topic->data(), topic->size()), true)) return false;
  scratch.clear();
  EncodeHeader(envelope, scratch);
  if (!send(zmq::message_t(scratch.data(), scratch.size()), true)) return false;
  zmq::message_t body_frame;
  if (body_message != nullptr) {
    body_frame.copy(const_cast<zmq::message_t&>(*body_message));  // shares the bytes (refcount)
  } else {
    body_frame.rebuild(body.data(), body.size());
  }
  return send(std::move(body_frame), false);
}

}  // namespace

bool SendEnvelope(zmq::socket_ref socket, std::optional<std::string_view> topic,
                  const Envelope& envelope, std::string& scratch, zmq::send_flags flags,
                  EnvelopeForm form) {
  return SendEnvelopeWith(socket, topic, envelope, &envelope.body, envelope.body_view(), scratch,
                          flags, form);
}

bool SendEnvelope(zmq::socket_ref socket, std::optional<std::string_view> topic,
                  const Envelope& envelope, std::string_view body, std::string& scratch,
                  zmq::send_flags flags, EnvelopeForm form) {
  return SendEnvelopeWith(socket, topic, envelope, nullptr, body, scratch, flags, form);
}

bool SendAll(zmq::socket_ref socket, std::span<zmq::message_t> frames, zmq::send_flags first) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    zmq::send_flags flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    if (i == 0) flags = flags | first;
    auto sent = socket.send(frames[i], flags);
    if (!sent) return false;
  }
  return true;
}

bool WaitReadable(zmq::socket_ref socket, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  return zmq::poll(&item, 1, timeout) > 0;
}

}  // namespace zmqkit::internal
