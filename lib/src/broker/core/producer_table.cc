#include "broker/core/producer_table.h"

#include <algorithm>

namespace zmqkit::internal {

namespace {

using Gaps = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

// The gap holding `seq`, or gaps.end().
Gaps::const_iterator FindGap(const Gaps& gaps, std::uint64_t seq) {
  auto it = std::upper_bound(gaps.begin(), gaps.end(), seq,
                             [](std::uint64_t value, const auto& gap) { return value < gap.first; });
  if (it == gaps.begin()) return gaps.end();
  --it;
  return it->second >= seq ? it : gaps.end();
}

}  // namespace

ProducerTable::State* ProducerTable::Find(std::string_view producer) const {
  if (last_found_ != nullptr && last_found_->entry.producer == producer) return last_found_;
  auto it = producers_.find(producer);
  if (it == producers_.end()) return nullptr;
  last_found_ = const_cast<State*>(&it->second);
  return last_found_;
}

ProducerTable::Verdict ProducerTable::Check(std::string_view producer, std::uint64_t seq) const {
  const State* state = Find(producer);
  if (state == nullptr) return Verdict::kNew;
  const Entry& entry = state->entry;
  if (seq > entry.highest) return Verdict::kNew;
  if (seq <= entry.floor) return Verdict::kTooOld;
  return FindGap(entry.gaps, seq) != entry.gaps.end() ? Verdict::kNew : Verdict::kDuplicate;
}

ProducerTable::State& ProducerTable::Touch(std::string_view producer, std::int64_t at_us) {
  State* state = Find(producer);
  if (state == nullptr) {
    auto it = producers_.emplace(std::string(producer), State{}).first;
    it->second.entry.producer = it->first;
    it->second.idle_position = idle_order_.insert(idle_order_.end(), it->first);
    state = &it->second;
    last_found_ = state;
  } else if (std::next(state->idle_position) != idle_order_.end()) {
    idle_order_.splice(idle_order_.end(), idle_order_, state->idle_position);
  }
  state->entry.last_active_us = std::max(state->entry.last_active_us, at_us);
  return *state;
}

void ProducerTable::Stored(std::string_view producer, std::uint64_t seq, std::int64_t at_us) {
  Entry& entry = Touch(producer, at_us).entry;
  Gaps& gaps = entry.gaps;
  if (seq > entry.highest) {
    // What it skipped was not stored (refused, or still on its way): those may come yet.
    if (seq > entry.highest + 1) {
      gaps.emplace_back(entry.highest + 1, seq - 1);
      ++gaps_;
    }
    entry.highest = seq;
    if (gaps.size() > limits_.max_gaps) {
      entry.floor = std::max(entry.floor, gaps.front().second);
      gaps.erase(gaps.begin());
      --gaps_;
    }
    return;
  }
  auto found = FindGap(gaps, seq);
  if (found == gaps.end()) return;  // REQUIRES said kNew; nothing to do if not
  auto gap = gaps.begin() + (found - gaps.cbegin());
  if (gap->first == gap->second) {
    gaps.erase(gap);
    --gaps_;
  } else if (seq == gap->first) {
    ++gap->first;
  } else if (seq == gap->second) {
    --gap->second;
  } else {
    const std::uint64_t last = gap->second;
    gap->second = seq - 1;
    gaps.insert(gap + 1, {seq + 1, last});
    ++gaps_;
  }
}

void ProducerTable::Forget(std::unordered_map<std::string, State, Hash, std::equal_to<>>::iterator it) {
  gaps_ -= it->second.entry.gaps.size();
  idle_order_.erase(it->second.idle_position);
  if (last_found_ == &it->second) last_found_ = nullptr;
  producers_.erase(it);
}

std::size_t ProducerTable::Expire(std::int64_t now_us) {
  std::size_t forgotten = 0;
  while (!idle_order_.empty()) {
    auto it = producers_.find(idle_order_.front());
    const bool idle = now_us - it->second.entry.last_active_us > limits_.window_us;
    if (!idle && producers_.size() <= limits_.max_producers) break;
    Forget(it);
    ++forgotten;
  }
  return forgotten;
}

void ProducerTable::Visit(const std::function<void(const Entry&)>& visit) const {
  // Idlest first, so that restoring them in this order rebuilds the same idle order.
  for (const std::string& producer : idle_order_) visit(producers_.find(producer)->second.entry);
}

void ProducerTable::Restore(Entry entry) {
  State& state = Touch(entry.producer, entry.last_active_us);
  gaps_ -= state.entry.gaps.size();
  gaps_ += entry.gaps.size();
  entry.producer = state.entry.producer;
  state.entry = std::move(entry);
}

}  // namespace zmqkit::internal
