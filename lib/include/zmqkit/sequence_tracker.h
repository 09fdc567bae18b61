// SequenceTracker: what a subscriber missed, saw twice or saw late, from publishers' sequence numbers.
//
// PUB/SUB loses messages silently: to a subscriber that joined late, to a queue at its high-water
// mark, to a reconnect. Every Publisher numbers its messages 1, 2, 3... within a stream id that is new
// each time the publisher starts, so a subscriber can count its losses exactly. This class is the
// counting, kept free of sockets so it can be tested with plain numbers.
#ifndef ZMQKIT_SEQUENCE_TRACKER_H_
#define ZMQKIT_SEQUENCE_TRACKER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace zmqkit {

struct SequenceCounters {
  std::uint64_t received = 0;            // sequenced messages observed
  std::uint64_t missed_before_join = 0;  // a stream's first message had seq N > 1: N-1 never seen
  std::uint64_t gaps = 0;                // times a seq jumped ahead
  std::uint64_t missing = 0;             // messages skipped by those jumps and not seen since
  std::uint64_t late = 0;                // arrived after being counted missing (missing went down)
  std::uint64_t duplicates = 0;          // a seq seen before
};

class SequenceTracker {
 public:
  enum class Verdict { kFirst, kInOrder, kGap, kLate, kDuplicate };

  // Remembers at most `max_missing_ranges` holes per stream, so that a late arrival can be told from
  // a duplicate; older holes are then assumed lost for good.
  explicit SequenceTracker(std::size_t max_missing_ranges = 1024)
      : max_missing_ranges_(max_missing_ranges) {}

  // Records message `seq` (>= 1) of `stream`.
  Verdict Observe(std::string_view stream, std::uint64_t seq);

  const SequenceCounters& totals() const { return totals_; }
  std::size_t streams() const { return streams_.size(); }

 private:
  struct StreamState {
    std::uint64_t highest = 0;
    std::map<std::uint64_t, std::uint64_t> missing;  // first -> last of each hole, inclusive
  };

  std::size_t max_missing_ranges_;
  std::map<std::string, StreamState, std::less<>> streams_;
  SequenceCounters totals_;
};

}  // namespace zmqkit

#endif  // ZMQKIT_SEQUENCE_TRACKER_H_
