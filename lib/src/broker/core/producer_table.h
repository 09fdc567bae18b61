// ProducerTable: what makes publishing idempotent — per producer, which of its publish sequence
// numbers the broker has stored, so that a publish sent again (its outcome was unknown: the
// connection or the broker went away before its confirm) is recognised and not stored twice
// (docs/protocol.md, "Idempotent publishing").
//
// The model is Kafka's idempotent producer (KIP-98): a producer id and a sequence number per
// message, and the broker keeps, per producer, not per message, how far the sequence goes. Here a
// producer's state is the highest sequence number stored, the gaps below it (numbers never stored:
// refused, or lost in transit and perhaps coming again), and a floor below which it no longer
// knows. Sequence numbers come mostly in order, so a producer costs a few dozen bytes however many
// messages it sends; each refusal costs one gap until it is filled or forgotten.
//
// Pure: no clock (times are the journal's wall-clock microseconds, passed in), no I/O. The broker
// core journals every stored publish with its producer and sequence number, and replay calls
// Stored() in the same order, so the table after a restart is the table before it.
#ifndef ZMQKIT_SRC_BROKER_CORE_PRODUCER_TABLE_H_
#define ZMQKIT_SRC_BROKER_CORE_PRODUCER_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace zmqkit::internal {

class ProducerTable {
 public:
  struct Limits {
    // A producer that published nothing for this long is forgotten: a publish of it sent again
    // after that is stored again.
    std::int64_t window_us = std::int64_t{24} * 3600 * 1'000'000;
    // Most producers remembered; past it the one idle longest is forgotten first.
    std::size_t max_producers = 100000;
    // Most gaps remembered per producer; past it the lowest are forgotten and the floor rises.
    std::size_t max_gaps = 4096;
  };
  enum class Verdict {
    kNew,        // never stored: store it
    kDuplicate,  // stored before: confirm it, store nothing
    kTooOld,     // at or below the floor: the table cannot tell, so it must be refused
  };
  // A producer's state, for snapshots.
  struct Entry {
    std::string producer;
    std::uint64_t highest = 0;  // the highest sequence number stored; 0: none
    std::uint64_t floor = 0;    // numbers <= floor are no longer known
    std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps;  // [first, last], ascending, < highest
    std::int64_t last_active_us = 0;
  };

  ProducerTable() = default;
  explicit ProducerTable(Limits limits) : limits_(limits) {}

  Verdict Check(std::string_view producer, std::uint64_t seq) const;
  // `seq` of `producer` was stored, at wall-clock time `at_us`. REQUIRES: Check said kNew.
  void Stored(std::string_view producer, std::uint64_t seq, std::int64_t at_us);
  // Forgets producers idle for longer than the window at `now_us`, and the idlest beyond
  // max_producers. Returns how many were forgotten.
  std::size_t Expire(std::int64_t now_us);

  void Visit(const std::function<void(const Entry&)>& visit) const;
  // Replay of a snapshot: the producer's state, as Visit gave it.
  void Restore(Entry entry);
  std::size_t size() const { return producers_.size(); }
  // Gaps across all producers (the part of the memory that grows with refusals).
  std::size_t gaps() const { return gaps_; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  struct State {
    Entry entry;
    std::list<std::string>::iterator idle_position;  // in idle_order_
  };
  State& Touch(std::string_view producer, std::int64_t at_us);
  // The state Check or Stored found last: a producer's publishes come in runs, and each is checked
  // and then stored, so most lookups are of the one before (a compare instead of a hash).
  State* Find(std::string_view producer) const;
  void Forget(std::unordered_map<std::string, State, Hash, std::equal_to<>>::iterator it);

  Limits limits_;
  std::unordered_map<std::string, State, Hash, std::equal_to<>> producers_;
  // Producers by last activity, idlest first.
  std::list<std::string> idle_order_;
  std::size_t gaps_ = 0;
  mutable State* last_found_ = nullptr;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_CORE_PRODUCER_TABLE_H_
