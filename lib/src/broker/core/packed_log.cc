#include "broker/core/packed_log.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "util/coding.h"

namespace zmqkit::internal {
namespace {

enum Flag : std::uint8_t {
  kErased = 1,
  kGap = 2,
  kNewIdTime = 4,  // absent: the id's time field is the previous entry's (most are, at any rate
                   // over a thousand a second)
  kIdRest = 8,     // absent: the id's last 10 bytes are the previous entry's successor
  kMore = 16,      // a second flags byte follows, with the More bits
};

// Fields most messages do not have, flagged in a second byte so that the first has room for the
// ones that save bytes on every message.
enum More : std::uint8_t {
  kSeq = 1,
  kAttempt = 2,
  kStream = 4,
  kReplyTo = 8,
  kHeaders = 16,
};

// Chunks double from the first size up to the largest, so a lane holding a few messages costs a
// small chunk and a deep one a chunk per few hundred messages (an entry that does not fit wastes
// the chunk's tail: under 1% at the largest size for 100-byte bodies).
constexpr std::size_t kFirstChunkBytes = 1024;
constexpr std::size_t kLargestChunkBytes = 64 * 1024;
constexpr std::size_t kMaxVarint = 10;
constexpr std::size_t kIdTimeBytes = 6;
constexpr std::size_t kIdRestBytes = MessageId::kSize - kIdTimeBytes;

std::uint64_t ZigZag(std::uint64_t difference) {
  const auto value = static_cast<std::int64_t>(difference);
  return (difference << 1) ^ static_cast<std::uint64_t>(value >> 63);
}

std::uint64_t UnZigZag(std::uint64_t encoded) {
  return (encoded >> 1) ^ (~(encoded & 1) + 1);
}

char* PutVarint(char* out, std::uint64_t value) {
  while (value >= 0x80) {
    *out++ = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<char>(value);
  return out;
}

// The log decodes only what it wrote, so a varint is always complete.
std::uint64_t GetVarint(const char*& in) {
  std::uint64_t value = 0;
  for (int shift = 0;; shift += 7) {
    const auto byte = static_cast<std::uint8_t>(*in++);
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if (byte < 0x80) return value;
  }
}

char* PutBytes(char* out, std::string_view bytes) {
  out = PutVarint(out, bytes.size());
  std::memcpy(out, bytes.data(), bytes.size());
  return out + bytes.size();
}

std::string_view GetBytes(const char*& in) {
  const std::size_t size = GetVarint(in);
  std::string_view bytes(in, size);
  in += size;
  return bytes;
}

std::size_t VarintSize(std::uint64_t value) {
  std::size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

std::uint64_t IdTime(const MessageId& id) {
  return DecodeBigEndian(id.bytes().data(), kIdTimeBytes);
}

// The id generator (message_id.cc) keeps the first 6 of these 10 bytes for a thread and counts in
// the last 4, so an id from the same producer as the one before is that one's successor.
using IdRest = std::array<std::uint8_t, kIdRestBytes>;

std::uint32_t IdCounter(const std::uint8_t* rest) {
  return static_cast<std::uint32_t>(DecodeBigEndian(rest + 6, 4));
}

void SetIdCounter(std::uint8_t* rest, std::uint32_t counter) {
  EncodeBigEndian(rest + 6, counter, 4);
}

bool IsSuccessor(const std::uint8_t* rest, const IdRest& previous) {
  return std::memcmp(rest, previous.data(), 6) == 0 &&
         IdCounter(rest) == static_cast<std::uint32_t>(IdCounter(previous.data()) + 1);
}

IdRest Successor(const IdRest& previous) {
  IdRest next = previous;
  SetIdCounter(next.data(), IdCounter(previous.data()) + 1);
  return next;
}

std::size_t HeadersSize(const Headers& headers) {
  std::size_t size = 0;
  for (const auto& [key, value] : headers) {
    size += VarintSize(key.size()) + key.size() + VarintSize(value.size()) + value.size();
  }
  return size;
}

// Calls fn(key, value) for each header of a packed headers section.
template <typename Fn>
void ForEachHeader(std::string_view packed, Fn&& fn) {
  const char* in = packed.data();
  const char* end = packed.data() + packed.size();
  while (in < end) {
    const std::string_view key = GetBytes(in);
    const std::string_view value = GetBytes(in);
    fn(key, value);
  }
}

}  // namespace

Headers PackedMessage::DecodeHeaders() const {
  Headers headers;
  ForEachHeader(packed_headers, [&](std::string_view key, std::string_view value) {
    headers.emplace(std::string(key), std::string(value));
  });
  return headers;
}

std::size_t PackedMessage::Bytes() const {
  std::size_t bytes = body.size() + stream.size() + reply_to.size();
  ForEachHeader(packed_headers,
                [&](std::string_view key, std::string_view value) { bytes += key.size() + value.size(); });
  return bytes;
}

void PackedLog::Append(std::uint64_t number, const Envelope& envelope, std::string_view reply_to) {
  const std::string_view body = envelope.body_view();
  const std::size_t headers_size = HeadersSize(envelope.headers);
  const std::size_t most = 2 + 4 * kMaxVarint + kIdRestBytes + 2 * kMaxVarint +
                           kMaxVarint + envelope.stream.size() + kMaxVarint + reply_to.size() +
                           kMaxVarint + headers_size + kMaxVarint + body.size();
  const std::uint64_t id_time = IdTime(envelope.id);
  const auto created = static_cast<std::uint64_t>(envelope.created_us);
  const std::uint8_t* const id_rest = envelope.id.bytes().data() + kIdTimeBytes;
  if (chunks_.empty() || chunks_.back().capacity - chunks_.back().used < most) {
    if (chunks_.empty()) next_capacity_ = kFirstChunkBytes;
    Chunk chunk;
    chunk.capacity = std::max(next_capacity_, most);
    chunk.bytes = std::make_unique_for_overwrite<char[]>(chunk.capacity);
    // A chunk starts from its first entry's own values, so that entry encodes as small as the rest.
    chunk.start = {number - 1, id_time, created, {}};
    std::memcpy(chunk.start.id_rest.data(), id_rest, kIdRestBytes);
    SetIdCounter(chunk.start.id_rest.data(), IdCounter(id_rest) - 1);
    chunk.end = chunk.start;
    chunk.first_number = number;
    allocated_ += chunk.capacity;
    next_capacity_ = std::min(next_capacity_ * 2, kLargestChunkBytes);
    chunks_.push_back(std::move(chunk));
    if (chunks_.size() == 1) {
      front_offset_ = 0;
      front_state_ = chunks_.front().start;
    }
  }
  Chunk& chunk = chunks_.back();
  DecodeState& state = chunk.end;
  char* const start = chunk.bytes.get() + chunk.used;
  std::uint8_t more = 0;
  if (envelope.seq != 0) more |= kSeq;
  if (envelope.attempt != 0) more |= kAttempt;
  if (!envelope.stream.empty()) more |= kStream;
  if (!reply_to.empty()) more |= kReplyTo;
  if (!envelope.headers.empty()) more |= kHeaders;
  std::uint8_t flags = more != 0 ? kMore : 0;
  char* out = start + 1;
  if (more != 0) *out++ = static_cast<char>(more);
  if (number != state.number + 1) {
    flags |= kGap;
    out = PutVarint(out, number - state.number);
  }
  if (id_time != state.id_time) {
    flags |= kNewIdTime;
    out = PutVarint(out, ZigZag(id_time - state.id_time));
  }
  if (!IsSuccessor(id_rest, state.id_rest)) {
    flags |= kIdRest;
    std::memcpy(out, id_rest, kIdRestBytes);
    out += kIdRestBytes;
  }
  out = PutVarint(out, ZigZag(created - state.created_us));
  if ((more & kSeq) != 0) out = PutVarint(out, envelope.seq);
  if ((more & kAttempt) != 0) out = PutVarint(out, envelope.attempt);
  if ((more & kStream) != 0) out = PutBytes(out, envelope.stream);
  if ((more & kReplyTo) != 0) out = PutBytes(out, reply_to);
  if ((more & kHeaders) != 0) {
    out = PutVarint(out, headers_size);
    for (const auto& [key, value] : envelope.headers) {
      out = PutBytes(out, key);
      out = PutBytes(out, value);
    }
  }
  out = PutBytes(out, body);
  *start = static_cast<char>(flags);
  chunk.used = static_cast<std::size_t>(out - chunk.bytes.get());
  state.number = number;
  state.id_time = id_time;
  state.created_us = created;
  std::memcpy(state.id_rest.data(), id_rest, kIdRestBytes);
  chunk.last_number = number;
  ++chunk.live;
  if (live_++ == 0) SettleFront();
}

std::size_t PackedLog::Decode(const Chunk& chunk, std::size_t at, DecodeState& state,
                              PackedMessage& out, std::uint8_t& flags) {
  const char* in = chunk.bytes.get() + at;
  flags = static_cast<std::uint8_t>(*in++);
  const std::uint8_t more = (flags & kMore) != 0 ? static_cast<std::uint8_t>(*in++) : 0;
  state.number += (flags & kGap) != 0 ? GetVarint(in) : 1;
  if ((flags & kNewIdTime) != 0) state.id_time += UnZigZag(GetVarint(in));
  std::array<std::uint8_t, MessageId::kSize> id{};
  EncodeBigEndian(id.data(), state.id_time, kIdTimeBytes);
  if ((flags & kIdRest) != 0) {
    std::memcpy(state.id_rest.data(), in, kIdRestBytes);
    in += kIdRestBytes;
  } else {
    state.id_rest = Successor(state.id_rest);
  }
  std::memcpy(id.data() + kIdTimeBytes, state.id_rest.data(), kIdRestBytes);
  state.created_us += UnZigZag(GetVarint(in));
  out.number = state.number;
  out.id = *MessageId::FromBytes({reinterpret_cast<const char*>(id.data()), id.size()});
  out.created_us = static_cast<std::int64_t>(state.created_us);
  out.seq = (more & kSeq) != 0 ? GetVarint(in) : 0;
  out.attempt = (more & kAttempt) != 0 ? static_cast<std::uint32_t>(GetVarint(in)) : 0;
  out.stream = (more & kStream) != 0 ? GetBytes(in) : std::string_view();
  out.reply_to = (more & kReplyTo) != 0 ? GetBytes(in) : std::string_view();
  out.packed_headers = (more & kHeaders) != 0 ? GetBytes(in) : std::string_view();
  out.body = GetBytes(in);
  return static_cast<std::size_t>(in - chunk.bytes.get());
}

void PackedLog::SettleFront() {
  while (!chunks_.empty()) {
    Chunk& chunk = chunks_.front();
    if (chunk.live == 0) {
      allocated_ -= chunk.capacity;
      chunks_.pop_front();
      front_offset_ = 0;
      if (!chunks_.empty()) front_state_ = chunks_.front().start;
      continue;
    }
    // A chunk with a live entry has one at or after the front (the ones before it were taken).
    if (NextLive(chunk, front_offset_, front_state_, front_, front_next_offset_, front_next_state_)) {
      return;
    }
  }
}

bool PackedLog::NextLive(const Chunk& chunk, std::size_t& at, DecodeState& state, PackedMessage& out,
                         std::size_t& next, DecodeState& next_state) {
  while (at < chunk.used) {
    next_state = state;
    std::uint8_t flags = 0;
    next = Decode(chunk, at, next_state, out, flags);
    if ((flags & kErased) == 0) return true;
    at = next;
    state = next_state;
  }
  return false;
}

void PackedLog::MarkErased(const Position& position) {
  Chunk& chunk = chunks_[position.chunk];
  chunk.bytes[position.offset] = static_cast<char>(chunk.bytes[position.offset] | kErased);
  --chunk.live;
  --live_;
  // A chunk past the front with nothing live goes now; the front one goes in SettleFront.
  if (chunk.live == 0 && position.chunk > 0) {
    allocated_ -= chunk.capacity;
    chunks_.erase(chunks_.begin() + static_cast<std::ptrdiff_t>(position.chunk));
  }
}

void PackedLog::PopFront() {
  MarkErased({0, front_offset_});
  front_offset_ = front_next_offset_;
  front_state_ = front_next_state_;
  SettleFront();
}

std::optional<PackedLog::Position> PackedLog::Locate(std::uint64_t number, PackedMessage* out) const {
  auto chunk = std::partition_point(chunks_.begin(), chunks_.end(),
                                    [&](const Chunk& c) { return c.last_number < number; });
  if (chunk == chunks_.end() || chunk->first_number > number) return std::nullopt;
  const bool is_front = chunk == chunks_.begin();
  // Entries before the front were taken: they are marked erased, but need not be decoded again.
  std::size_t at = is_front ? front_offset_ : 0;
  DecodeState state = is_front ? front_state_ : chunk->start;
  PackedMessage message;
  while (at < chunk->used) {
    std::uint8_t flags = 0;
    const std::size_t next = Decode(*chunk, at, state, message, flags);
    if (message.number == number) {
      if ((flags & kErased) != 0) return std::nullopt;
      if (out != nullptr) *out = message;
      return Position{static_cast<std::size_t>(chunk - chunks_.begin()), at};
    }
    if (message.number > number) return std::nullopt;
    at = next;
  }
  return std::nullopt;
}

bool PackedLog::Erase(std::uint64_t number) {
  auto position = Locate(number, nullptr);
  if (!position) return false;
  MarkErased(*position);
  if (position->chunk == 0) SettleFront();
  return true;
}

std::optional<PackedMessage> PackedLog::Find(std::uint64_t number) const {
  PackedMessage message;
  if (!Locate(number, &message)) return std::nullopt;
  return message;
}

void PackedLog::Clear() {
  chunks_.clear();
  front_offset_ = 0;
  front_state_ = {};
  front_ = {};
  live_ = 0;
  allocated_ = 0;
}

PackedLog::Cursor PackedLog::Begin() const {
  Cursor cursor;
  cursor.log_ = this;
  cursor.offset_ = front_offset_;
  cursor.state_ = front_state_;
  cursor.Settle();
  return cursor;
}

void PackedLog::Cursor::Settle() {
  const auto& chunks = log_->chunks_;
  while (chunk_ < chunks.size()) {
    if (NextLive(chunks[chunk_], offset_, state_, message_, next_offset_, next_state_)) {
      done_ = false;
      return;
    }
    if (++chunk_ < chunks.size()) {
      offset_ = 0;
      state_ = chunks[chunk_].start;
    }
  }
  done_ = true;
}

void PackedLog::Cursor::Next() {
  offset_ = next_offset_;
  state_ = next_state_;
  Settle();
}

}  // namespace zmqkit::internal
