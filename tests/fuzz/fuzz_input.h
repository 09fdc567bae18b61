// How a fuzz input is cut into messages and frames, so one byte string can stand for a whole
// conversation: [message]... where a message is [tag byte][frame count byte][frame]... and a frame
// is [length: 1 byte, or 0xff then 2 bytes big-endian][bytes]. Whatever the fuzzer writes reads as
// something: lengths past the end are cut short. FuzzWriter builds the seed corpus in this form.
#ifndef ZMQKIT_TESTS_FUZZ_FUZZ_INPUT_H_
#define ZMQKIT_TESTS_FUZZ_FUZZ_INPUT_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::fuzz {

class FuzzReader {
 public:
  FuzzReader(const std::uint8_t* data, std::size_t size)
      : bytes_(reinterpret_cast<const char*>(data), size) {}

  bool done() const { return position_ >= bytes_.size(); }
  std::uint8_t Byte() { return done() ? 0 : static_cast<std::uint8_t>(bytes_[position_++]); }
  std::string_view Take(std::size_t n) {
    n = std::min(n, bytes_.size() - std::min(position_, bytes_.size()));
    std::string_view out = bytes_.substr(position_, n);
    position_ += n;
    return out;
  }
  std::string_view Frame() {
    std::size_t length = Byte();
    if (length == 0xff) length = static_cast<std::size_t>(Byte()) << 8 | Byte();
    return Take(length);
  }
  // Up to `max_frames` frames (the count byte is taken modulo max_frames + 1).
  std::vector<std::string_view> Frames(std::size_t max_frames) {
    const std::size_t count = Byte() % (max_frames + 1);
    std::vector<std::string_view> frames;
    for (std::size_t i = 0; i < count && !done(); ++i) frames.push_back(Frame());
    return frames;
  }
  std::string_view Rest() { return Take(bytes_.size()); }

 private:
  std::string_view bytes_;
  std::size_t position_ = 0;
};

class FuzzWriter {
 public:
  FuzzWriter& Byte(std::uint8_t value) {
    out_.push_back(static_cast<char>(value));
    return *this;
  }
  FuzzWriter& Frame(std::string_view frame) {
    if (frame.size() < 0xff) {
      Byte(static_cast<std::uint8_t>(frame.size()));
    } else {
      const std::size_t length = std::min<std::size_t>(frame.size(), 0xffff);
      Byte(0xff).Byte(static_cast<std::uint8_t>(length >> 8)).Byte(static_cast<std::uint8_t>(length));
      frame = frame.substr(0, length);
    }
    out_.append(frame);
    return *this;
  }
  FuzzWriter& Frames(const std::vector<std::string>& frames) {
    Byte(static_cast<std::uint8_t>(frames.size()));
    for (const std::string& frame : frames) Frame(frame);
    return *this;
  }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

}  // namespace zmqkit::fuzz

#endif  // ZMQKIT_TESTS_FUZZ_FUZZ_INPUT_H_
