// DedupWindow: publishes recognised by a message id the producer chose, for producers that keep no
// state of their own across restarts (a stateless web handler, a batch job that starts again), as
// NATS JetStream's Nats-Msg-Id duplicate window and SQS FIFO's deduplication id do. A message whose
// headers hold "dedup-id" is stored once per (exchange, routing key, id) within the window; a copy
// within it is confirmed and not stored (docs/protocol.md, "Deduplication by message id").
//
// Bounded in time and in count: an id is forgotten when its window has passed, or, past max_ids,
// oldest first — the effective window then shrinks to max_ids divided by the rate of ids, and the
// count of ids forgotten before their time (evicted_early) says so.
//
// Pure: times are the journal's wall-clock microseconds, passed in. The broker journals each id
// with its publish and replays them in the same order, so the window after a restart is the window
// before it.
#ifndef ZMQKIT_SRC_BROKER_CORE_DEDUP_WINDOW_H_
#define ZMQKIT_SRC_BROKER_CORE_DEDUP_WINDOW_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace zmqkit::internal {

class DedupWindow {
 public:
  struct Limits {
    std::int64_t window_us = std::int64_t{120} * 1'000'000;  // NATS JetStream's default
    std::size_t max_ids = 100000;
  };
  // One remembered id, for snapshots.
  struct Entry {
    std::string_view exchange;
    std::string_view key;
    std::string_view id;
    std::int64_t at_us;
  };
  // The longest id: longer ones are refused (invalid-argument), so one id costs a bounded amount.
  static constexpr std::size_t kMaxIdBytes = 255;

  DedupWindow() = default;
  explicit DedupWindow(Limits limits) : limits_(limits) {}

  // A zero window or count turns deduplication off: the header is then an ordinary header.
  bool enabled() const { return limits_.window_us > 0 && limits_.max_ids > 0; }
  // Whether a message with this id was stored for this exchange and key within the window before
  // `now_us`. Forgets what the window has passed first.
  bool Seen(std::string_view exchange, std::string_view key, std::string_view id,
            std::int64_t now_us);
  // A message with this id was stored at `at_us`. REQUIRES: Seen() said false (or replay).
  void Stored(std::string_view exchange, std::string_view key, std::string_view id,
              std::int64_t at_us);
  // Forgets ids older than the window at `now_us`; returns how many.
  std::size_t Expire(std::int64_t now_us);

  // Oldest first, as Stored() must be given them again.
  void Visit(const std::function<void(const Entry&)>& visit) const;
  std::size_t size() const { return index_.size(); }
  // Ids forgotten because of max_ids while still inside their window.
  std::uint64_t evicted_early() const { return evicted_early_; }

 private:
  struct Remembered {
    std::string scoped_id;  // Scope(exchange, key, id)
    std::int64_t at_us;
    // Replaced by a later entry of the same scope (only replay stores a scope twice: a journal
    // written under a longer window); it waits in order_ to be popped, and counts for nothing.
    bool replaced = false;
  };
  // exchange and key are length-prefixed, so no name can make two scopes meet.
  static std::string Scope(std::string_view exchange, std::string_view key, std::string_view id);
  void ForgetOldest();

  Limits limits_;
  // Oldest first. A deque never moves its elements, so index_ can view their strings.
  std::deque<Remembered> order_;
  // Each live entry, by its scoped id (viewing the entry's own string).
  std::unordered_map<std::string_view, Remembered*> index_;
  std::uint64_t evicted_early_ = 0;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_CORE_DEDUP_WINDOW_H_
