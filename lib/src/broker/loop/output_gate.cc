#include "broker/loop/output_gate.h"

#include <algorithm>

namespace zmqkit::internal {

std::string OutputGate::PeerKey(const Outgoing& out) {
  std::string key(1, out.side == Side::kClients ? 'c' : 'w');
  key += out.peer;
  return key;
}

bool OutputGate::Pass(Outgoing& out, std::uint64_t needs, std::uint64_t synced, bool keep_order) {
  if (held_.empty() && needs <= synced) return true;  // the common case: no lookup, no copy
  std::string key = PeerKey(out);
  if (keep_order) {
    if (auto newest = newest_need_.find(key); newest != newest_need_.end()) {
      needs = std::max(needs, newest->second);
      // Behind the held one even if that one's need was met since and Release() is still to come.
      needs = std::max(needs, synced + 1);
    }
  }
  if (needs <= synced) return true;
  std::uint64_t& newest = newest_need_[std::move(key)];
  newest = std::max(newest, needs);
  highest_need_ = std::max(highest_need_, needs);
  held_.push_back(Held{needs, std::move(out)});
  return false;
}

void OutputGate::Release(std::uint64_t synced, std::vector<Outgoing>& ready) {
  if (held_.empty()) return;
  std::size_t kept = 0;
  bool released = false;
  for (Held& held : held_) {
    if (held.needs <= synced) {
      ready.push_back(std::move(held.out));
      released = true;
    } else {
      if (&held_[kept] != &held) held_[kept] = std::move(held);
      ++kept;
    }
  }
  if (!released) return;
  held_.resize(kept);
  newest_need_.clear();
  highest_need_ = 0;
  for (const Held& held : held_) {
    std::uint64_t& newest = newest_need_[PeerKey(held.out)];
    newest = std::max(newest, held.needs);
    highest_need_ = std::max(highest_need_, held.needs);
  }
}

}  // namespace zmqkit::internal
