// Fuzz target: the envelope decoder (docs/wire-format.md) on arbitrary frames, as a reader takes
// them: one frame is the packed form (or, as a Subscriber reads it, the topic-packed form), more go
// to DecodeFrames. It must never crash or read out of bounds, must report every bad input as a
// DecodeError, and whatever it accepts must encode back to a header that decodes to the same thing,
// in every form.
#include <cstdlib>
#include <vector>
#include <zmq.hpp>

#include "fuzz/fuzz_input.h"
#include "zmqkit/envelope_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  zmqkit::fuzz::FuzzReader input(data, size);
  zmqkit::DecodeLimits limits;
  limits.max_headers = 1 + input.Byte() % 8;  // small limits too, so the limit paths are reached
  const std::uint8_t form = input.Byte();
  limits.max_header_bytes = form % 2 == 0 ? 64 * 1024 : 64;
  const bool topic_packed = (form & 2) != 0;
  std::vector<zmq::message_t> frames;
  for (std::string_view frame : input.Frames(4)) frames.emplace_back(frame.data(), frame.size());
  std::string topic;
  auto decoded = frames.size() != 1 ? zmqkit::DecodeFrames(frames, limits)
                 : topic_packed     ? zmqkit::DecodeTopicPacked(frames[0], limits, topic)
                                    : zmqkit::DecodePacked(frames[0], limits);
  if (!decoded.ok()) {
    if (decoded.error().ToString().empty()) std::abort();  // every refusal says why
    return 0;
  }
  std::string once;
  zmqkit::EncodeHeader(*decoded, once);
  zmqkit::Envelope again;
  zmqkit::DecodeError error;
  zmqkit::DecodeLimits roomy;
  roomy.max_headers = 1 << 20;
  if (!zmqkit::DecodeHeader(once, roomy, again, error)) std::abort();  // we cannot read our own
  std::string twice;
  zmqkit::EncodeHeader(again, twice);
  if (once != twice) std::abort();  // a field changed on the way through
  std::string scratch;
  auto unpacked = zmqkit::DecodePacked(zmqkit::EncodePacked(*decoded, scratch), roomy);
  if (!unpacked.ok() || unpacked->body_view() != decoded->body_view()) std::abort();
  if (topic_packed) {
    std::string topic_again;
    auto again_topic_packed = zmqkit::DecodeTopicPacked(
        zmqkit::EncodeTopicPacked(topic, *decoded, decoded->body_view(), scratch), roomy,
        topic_again);
    if (!again_topic_packed.ok() || topic_again != topic ||
        again_topic_packed->body_view() != decoded->body_view()) {
      std::abort();
    }
  }
  return 0;
}
