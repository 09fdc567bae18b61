// PackedLog: one priority lane's untouched ready messages, stored back to back in byte chunks
// instead of as an object each, the way Redis keeps a stream's entries in listpacks.
//
// A deep backlog is mostly messages nobody has touched yet: published, waiting, never leased. Here
// each costs its body plus about 4 bytes. Numbers, the time field of the id (its first 6 bytes)
// and creation times are stored as differences from the entry before, a byte or none at a steady
// rate; the rest of the id not at all when it is the previous entry's successor (as ids from one
// producer thread are: see message_id.h), else as it is; anything else only when set. Entries are
// read by decoding from the start of their chunk, so the log suits what a queue does with its
// backlog: append at the back, take from the front one at a time. Finding one by number (journal
// replay, an operator removing a message) is a binary search over chunks and a scan of one.
//
// An entry, after the chunk's starting state (number, id time, id rest and creation time before
// it):
//   flags            u8: 1 erased, 2 number gap, 4 new id time, 8 id rest, 16 more
//   [more]           u8: 1 seq, 2 attempt, 4 stream, 8 reply_to, 16 headers
//   [gap]            varint: number - previous number (absent: the next number)
//   [id time]        zigzag varint: difference from the previous entry's (absent: the same)
//   [id rest]        10 bytes (absent: the previous entry's, its last 4 bytes as a big-endian
//                    counter plus one, wrapping)
//   created_us       zigzag varint: difference from the previous entry's (wrapping)
//   [seq] [attempt]  varints
//   [stream] [reply_to]  varint length, bytes
//   [headers]        varint length of what follows, then per header: varint length, key,
//                    varint length, value
//   body             varint length, bytes
// Erasing sets the erased flag and leaves the bytes, so the entries after it still decode; a chunk
// is freed once none of its entries is live.
#ifndef ZMQKIT_SRC_BROKER_CORE_PACKED_LOG_H_
#define ZMQKIT_SRC_BROKER_CORE_PACKED_LOG_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string_view>

#include "zmqkit/envelope.h"
#include "zmqkit/message_id.h"

namespace zmqkit::internal {

// One message as the log holds it. The views point into the log and stay valid until the message
// is erased or taken.
struct PackedMessage {
  std::uint64_t number = 0;
  MessageId id;
  std::int64_t created_us = 0;
  std::uint64_t seq = 0;
  std::uint32_t attempt = 0;
  std::string_view stream;
  std::string_view reply_to;
  std::string_view packed_headers;  // in the log's encoding; see DecodeHeaders
  std::string_view body;

  Headers DecodeHeaders() const;
  // What the message counts against a queue's max_bytes: body, stream, reply_to, header keys
  // and values.
  std::size_t Bytes() const;
};

class PackedLog {
  struct DecodeState {
    std::uint64_t number = 0;
    std::uint64_t id_time = 0;
    std::uint64_t created_us = 0;  // unsigned: differences wrap rather than overflow
    std::array<std::uint8_t, MessageId::kSize - 6> id_rest{};  // the id after its time field
  };
  struct Chunk {
    std::unique_ptr<char[]> bytes;
    std::size_t capacity = 0;
    std::size_t used = 0;
    std::size_t live = 0;
    DecodeState start;  // before the first entry
    DecodeState end;    // after the last entry
    std::uint64_t first_number = 0;
    std::uint64_t last_number = 0;
  };

 public:
  // Appends a message: the envelope's id, created_us, seq, attempt, stream, headers and body.
  // REQUIRES: number > back_number().
  void Append(std::uint64_t number, const Envelope& envelope, std::string_view reply_to);
  bool empty() const { return live_ == 0; }
  std::size_t size() const { return live_; }
  // The highest number the log holds or held in a chunk it still has; 0 if it has none.
  std::uint64_t back_number() const { return chunks_.empty() ? 0 : chunks_.back().last_number; }
  // The first live message. REQUIRES: !empty().
  const PackedMessage& front() const { return front_; }
  void PopFront();
  // Marks message `number` erased; false if the log does not hold it.
  bool Erase(std::uint64_t number);
  std::optional<PackedMessage> Find(std::uint64_t number) const;
  void Clear();
  // Bytes of chunks allocated.
  std::size_t allocated_bytes() const { return allocated_; }

  // Walks the live messages in number order. Invalidated by any change to the log.
  class Cursor {
   public:
    bool done() const { return done_; }
    const PackedMessage& message() const { return message_; }
    void Next();

   private:
    friend class PackedLog;
    void Settle();  // moves onto the first live entry from here on
    const PackedLog* log_ = nullptr;
    std::size_t chunk_ = 0;
    std::size_t offset_ = 0;
    DecodeState state_;
    // Where the entry after message_ starts, and the state there (so Next need not decode again).
    std::size_t next_offset_ = 0;
    DecodeState next_state_;
    PackedMessage message_;
    bool done_ = true;
  };
  Cursor Begin() const;

 private:
  struct Position {
    std::size_t chunk;
    std::size_t offset;  // of the entry's flags byte
  };
  // Decodes the entry at `at`, advancing `state` past it; returns the offset after it.
  static std::size_t Decode(const Chunk& chunk, std::size_t at, DecodeState& state,
                            PackedMessage& out, std::uint8_t& flags);
  // From the entry at `at` (with `state` before it), the first live one in `chunk`: moves `at` and
  // `state` onto it, decodes it into `out`, and sets `next` and `next_state` to just after it.
  // False if the chunk has none from `at` on.
  static bool NextLive(const Chunk& chunk, std::size_t& at, DecodeState& state, PackedMessage& out,
                       std::size_t& next, DecodeState& next_state);
  std::optional<Position> Locate(std::uint64_t number, PackedMessage* out) const;
  void MarkErased(const Position& position);
  // Moves the front past erased entries and frees chunks with nothing live.
  void SettleFront();

  std::deque<Chunk> chunks_;
  // Where the front entry is in chunks_.front(), and the decoding state before it.
  std::size_t front_offset_ = 0;
  DecodeState front_state_;
  PackedMessage front_;
  // Where the entry after front_ starts, and the state there (so PopFront need not decode again).
  std::size_t front_next_offset_ = 0;
  DecodeState front_next_state_;
  std::size_t live_ = 0;
  std::size_t allocated_ = 0;
  std::size_t next_capacity_ = 0;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_CORE_PACKED_LOG_H_
