#include "zmqkit/message_id.h"

#include <chrono>
#include <cstring>
#include <random>

namespace zmqkit {
namespace {

std::mt19937_64& ThreadGenerator() {
  thread_local std::mt19937_64 generator = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }();
  return generator;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

MessageId MessageId::Generate(std::uint64_t unix_ms) {
  MessageId id;
  for (int i = 0; i < 6; ++i) {
    id.bytes_[i] = static_cast<std::uint8_t>(unix_ms >> (40 - 8 * i));
  }
  std::uint64_t random_a = ThreadGenerator()();
  std::uint64_t random_b = ThreadGenerator()();
  std::memcpy(&id.bytes_[6], &random_a, 2);
  std::memcpy(&id.bytes_[8], &random_b, 8);
  id.bytes_[6] = static_cast<std::uint8_t>((id.bytes_[6] & 0x0F) | 0x70);  // version 7
  id.bytes_[8] = static_cast<std::uint8_t>((id.bytes_[8] & 0x3F) | 0x80);  // variant 0b10
  return id;
}

MessageId MessageId::Generate() {
  auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return Generate(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count()));
}

std::optional<MessageId> MessageId::FromBytes(std::string_view bytes) {
  if (bytes.size() != kSize) return std::nullopt;
  MessageId id;
  std::memcpy(id.bytes_.data(), bytes.data(), kSize);
  return id;
}

std::optional<MessageId> MessageId::FromString(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  MessageId id;
  std::size_t out = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int high = HexValue(text[i]);
    int low = HexValue(text[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    id.bytes_[out++] = static_cast<std::uint8_t>(high << 4 | low);
    i += 2;
  }
  return id;
}

std::uint64_t MessageId::unix_ms() const {
  std::uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = ms << 8 | bytes_[i];
  return ms;
}

std::string MessageId::ToString() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(36);
  for (std::size_t i = 0; i < kSize; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text += '-';
    text += kDigits[bytes_[i] >> 4];
    text += kDigits[bytes_[i] & 0x0F];
  }
  return text;
}

std::size_t MessageIdHash::operator()(const MessageId& id) const noexcept {
  // The last eight bytes are random, which is all a hash table needs.
  std::uint64_t tail;
  std::memcpy(&tail, id.bytes().data() + 8, sizeof tail);
  return static_cast<std::size_t>(tail);
}

}  // namespace zmqkit
