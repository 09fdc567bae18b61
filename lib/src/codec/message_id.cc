#include "zmqkit/message_id.h"

#include <pthread.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>

#include "util/coding.h"

namespace zmqkit {
namespace {

std::mt19937_64 SeededGenerator() {
  std::random_device device;
  std::seed_seq seed{device(), device(), device(), device()};
  return std::mt19937_64(seed);
}

// Bumped in a forked child, so that its threads draw new random bits instead of repeating the
// ids their parent goes on generating.
std::atomic<std::uint64_t> fork_generation{0};

// One thread's id state: 42 random bits (with the version and variant bits, bytes 6 to 11) drawn
// once, and a 32-bit counter in bytes 12 to 15 that starts at a random value below 2^31. Ids from
// one thread therefore sort in the order they were made within a millisecond, and each is its
// predecessor's successor, which the broker's packed backlog stores in no bytes at all.
struct IdGenerator {
  std::mt19937_64 random = SeededGenerator();
  std::uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  std::array<std::uint8_t, 6> fixed{};
  std::uint32_t counter = 0;

  IdGenerator() {
    static const bool fork_handler_installed = [] {
      pthread_atfork(nullptr, nullptr,
                     [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
      return true;
    }();
    (void)fork_handler_installed;
    Redraw();
  }

  void Redraw() {
    const std::uint64_t bits = random();
    std::memcpy(fixed.data(), &bits, fixed.size());
    fixed[0] = static_cast<std::uint8_t>((fixed[0] & 0x0F) | 0x70);  // version 7
    fixed[2] = static_cast<std::uint8_t>((fixed[2] & 0x3F) | 0x80);  // variant 0b10
    counter = static_cast<std::uint32_t>(random() >> 33);
  }

  void Next(std::uint8_t* rest) {
    const std::uint64_t now_generation = fork_generation.load(std::memory_order_relaxed);
    if (now_generation != generation) {
      generation = now_generation;
      random = SeededGenerator();
      Redraw();
    } else if (++counter == 0) {
      // After 2^31 ids or more: new random bits keep the ids unique.
      Redraw();
    }
    std::memcpy(rest, fixed.data(), fixed.size());
    internal::EncodeBigEndian(rest + 6, counter, 4);
  }
};

IdGenerator& ThreadIdGenerator() {
  thread_local IdGenerator generator;
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
  internal::EncodeBigEndian(id.bytes_.data(), unix_ms, 6);
  ThreadIdGenerator().Next(&id.bytes_[6]);
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
  return internal::DecodeBigEndian(bytes_.data(), 6);
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
  // Ids from one thread differ only in their time field and their last four bytes, so all
  // sixteen bytes are mixed (a multiply and xor-shifts, as in splitmix64's finaliser).
  std::uint64_t head;
  std::uint64_t tail;
  std::memcpy(&head, id.bytes().data(), sizeof head);
  std::memcpy(&tail, id.bytes().data() + 8, sizeof tail);
  std::uint64_t hash = head ^ (tail * 0x9E3779B97F4A7C15ULL);
  hash ^= hash >> 31;
  hash *= 0xBF58476D1CE4E5B9ULL;
  hash ^= hash >> 29;
  return static_cast<std::size_t>(hash);
}

}  // namespace zmqkit
