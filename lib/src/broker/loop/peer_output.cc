#include "broker/loop/peer_output.h"

#include <iterator>

namespace zmqkit::internal {

PeerOutput::PeerOutput(TrySend try_send, BrokerCounters& counters,
                       std::function<void(std::string_view)> log, std::size_t max_held_per_peer)
    : try_send_(std::move(try_send)),
      counters_(counters),
      log_(std::move(log)),
      max_held_per_peer_(max_held_per_peer) {}

void PeerOutput::Send(Outgoing& out) {
  const bool answer = out.waits_for != WaitsFor::kNothing && out.tags.empty();
  if (answer && !held_.empty() && held_.contains({out.side, out.peer})) {
    return Hold(out);  // behind the ones held before it
  }
  switch (try_send_(out)) {
    case SendResult::kSent:
      return;
    case SendResult::kGone:
      // No one is left to answer; a delivery's messages go back to the queue at once.
      if (!out.tags.empty()) refused_deliveries_.push_back(std::move(out));
      return;
    case SendResult::kFull:
      if (!out.tags.empty()) {
        refused_deliveries_.push_back(std::move(out));
      } else if (answer) {
        Hold(out);
      }
      return;
  }
}

void PeerOutput::RetryHeld() {
  for (auto it = held_.begin(); it != held_.end();) {
    auto& held = it->second;
    while (!held.empty()) {
      if (try_send_(held.front()) == SendResult::kFull) break;
      held.pop_front();  // sent, or the peer is gone and no one is left to answer
    }
    it = held.empty() ? held_.erase(it) : std::next(it);
  }
}

std::vector<Outgoing> PeerOutput::TakeRefusedDeliveries() {
  std::vector<Outgoing> refused;
  refused.swap(refused_deliveries_);
  return refused;
}

void PeerOutput::Hold(Outgoing& out) {
  auto& held = held_[{out.side, out.peer}];
  if (held.size() >= max_held_per_peer_) {
    // A peer that leaves this many answers unread gets the newest; the count shows it.
    held.pop_front();
    if (counters_.answers_dropped++ == 0) {
      log_("a peer left " + std::to_string(max_held_per_peer_) +
           " answers unread: dropping its oldest (STATS answers_dropped)");
    }
  }
  ++counters_.answers_held;
  held.push_back(std::move(out));
}

}  // namespace zmqkit::internal
