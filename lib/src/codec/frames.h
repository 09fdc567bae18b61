// Multipart I/O shared by every socket wrapper: whole messages in, whole envelopes out.
#ifndef ZMQKIT_SRC_CODEC_FRAMES_H_
#define ZMQKIT_SRC_CODEC_FRAMES_H_

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "zmqkit/envelope.h"

namespace zmqkit::internal {

// Reads every frame of the next message into frames[0..n), reusing the vector's elements, and
// returns n; returns 0 if nothing is waiting (with recv_flags::dontwait). libzmq delivers a
// multipart message whole, so once the first frame is read the rest are already here; reading all
// of them keeps the socket in step however malformed the message is.
// Throws zmq::error_t as zmq::socket_t::recv does (ETERM, EINTR).
std::size_t RecvAll(zmq::socket_ref socket, std::vector<zmq::message_t>& frames,
                    zmq::recv_flags flags);

// RecvAll keeping at most `max_frames` (>= 1) frames; the rest of the message is read and dropped,
// and `dropped` says how many. For input from untrusted peers.
std::size_t RecvAllCapped(zmq::socket_ref socket, std::vector<zmq::message_t>& frames,
                          zmq::recv_flags flags, std::size_t max_frames, std::size_t& dropped);

// RecvAll waiting up to `timeout` (negative: forever; zero: not at all) for the first frame, with a
// blocking receive under ZMQ_RCVTIMEO. Cheaper than "try, poll, try again": an idle socket costs one
// wait in libzmq instead of three polls, which is most of what a message costs when the reader is
// faster than the writer. Leaves ZMQ_RCVTIMEO set on the socket (every read of such a socket goes
// through here or uses dontwait).
std::size_t RecvAllWithin(zmq::socket_ref socket, std::vector<zmq::message_t>& frames,
                          std::chrono::milliseconds timeout);

// The largest body a writer that packs puts in one frame with its header. Measured on this
// project's machine (docs/performance.md): packing a 100-byte body gains 40-60%, a 1000-byte one
// about 10%, a 4000-byte one nothing, as the copies on both sides catch up with what the frame
// saved.
inline constexpr std::size_t kPackedBodyLimit = 1024;

enum class EnvelopeForm {
  kFrames,           // [topic][header][body] or [header][body], always
  kPackSmallBodies,  // [topic+header+body+n] or [header+body] for bodies up to kPackedBodyLimit
};

inline EnvelopeForm FormFor(bool pack_small_bodies) {
  return pack_small_bodies ? EnvelopeForm::kPackSmallBodies : EnvelopeForm::kFrames;
}

// Sends `envelope` with a topic (PUB) or without one (PUSH), in the frame form or, if `form` says so
// and the body is small, packed: [header+body] without a topic, topic-packed [topic+header+body+n]
// with one (docs/wire-format.md section 1). In the frame form the body's bytes are shared with
// `envelope`, not copied. `scratch` is a buffer the caller keeps between calls so encoding does not
// allocate.
// Returns false if the first frame could not be queued (EAGAIN: dontwait, or the send timeout
// passed); nothing was sent then. Throws zmq::error_t on other errors.
bool SendEnvelope(zmq::socket_ref socket, std::optional<std::string_view> topic,
                  const Envelope& envelope, std::string& scratch, zmq::send_flags flags,
                  EnvelopeForm form);

// The same with `body` in place of envelope.body (not read): a body the caller holds as bytes is
// copied once, into the frame that carries it, instead of into the envelope first.
bool SendEnvelope(zmq::socket_ref socket, std::optional<std::string_view> topic,
                  const Envelope& envelope, std::string_view body, std::string& scratch,
                  zmq::send_flags flags, EnvelopeForm form);

// Sends `frames` as one multipart message (the frames are consumed). Returns false if the first
// frame could not be queued (EAGAIN: the socket's send timeout passed); nothing was sent then —
// once the first frame is queued, libzmq takes the rest of the message whole. `first` adds flags
// to the first frame (dontwait: give up at once instead of after the send timeout).
bool SendAll(zmq::socket_ref socket, std::span<zmq::message_t> frames,
             zmq::send_flags first = zmq::send_flags::none);

// Waits up to `timeout` for `socket` to become readable. Throws zmq::error_t (EINTR, ETERM).
bool WaitReadable(zmq::socket_ref socket, std::chrono::milliseconds timeout);

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_CODEC_FRAMES_H_
