#include "zmqkit/sequence_tracker.h"

namespace zmqkit {

SequenceTracker::Verdict SequenceTracker::Observe(std::string_view stream, std::uint64_t seq) {
  ++totals_.received;
  auto it = streams_.find(stream);
  if (it == streams_.end()) {
    streams_.emplace(std::string(stream), StreamState{seq, {}});
    totals_.missed_before_join += seq > 0 ? seq - 1 : 0;
    return Verdict::kFirst;
  }
  StreamState& state = it->second;
  if (seq == state.highest + 1) {
    state.highest = seq;
    return Verdict::kInOrder;
  }
  if (seq > state.highest) {
    totals_.missing += seq - state.highest - 1;
    ++totals_.gaps;
    state.missing.emplace(state.highest + 1, seq - 1);
    if (state.missing.size() > max_missing_ranges_) state.missing.erase(state.missing.begin());
    state.highest = seq;
    return Verdict::kGap;
  }
  // seq <= highest: either it fills a hole we recorded, or we have seen it.
  auto hole = state.missing.upper_bound(seq);
  if (hole != state.missing.begin()) {
    --hole;
    auto [first, last] = *hole;
    if (seq >= first && seq <= last) {
      state.missing.erase(hole);
      if (first < seq) state.missing.emplace(first, seq - 1);
      if (seq < last) state.missing.emplace(seq + 1, last);
      if (state.missing.size() > max_missing_ranges_) state.missing.erase(state.missing.begin());
      --totals_.missing;
      ++totals_.late;
      return Verdict::kLate;
    }
  }
  ++totals_.duplicates;
  return Verdict::kDuplicate;
}

}  // namespace zmqkit
