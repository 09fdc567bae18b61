// OutputGate: what the broker has produced but may not send yet because the journal has not synced
// the records it depends on (a confirm, say, depends on its publishes), kept in order per peer.
//
// Records are numbered as the journal writes them (Journal::written/synced). A message that needs
// record N leaves once synced >= N. The loop asks Pass() for each message its turn produced, and
// Release() whenever the journal reports more synced: it sends what they return, in order.
#ifndef ZMQKIT_SRC_BROKER_LOOP_OUTPUT_GATE_H_
#define ZMQKIT_SRC_BROKER_LOOP_OUTPUT_GATE_H_

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/core/broker_core.h"

namespace zmqkit::internal {

class OutputGate {
 public:
  // Whether `out` may be sent now: `needs` records are synced and, if `keep_order`, nothing sent
  // earlier to the same peer is still held. If not, the gate keeps `out` (moved from) and returns
  // false. A message passed with `keep_order` false may overtake what its peer has held; later
  // messages still queue behind it if it is held.
  bool Pass(Outgoing& out, std::uint64_t needs, std::uint64_t synced, bool keep_order = true);
  // Appends to `ready` every held message whose records are now synced, in the order they were
  // passed; each peer's messages leave in the order they were produced.
  void Release(std::uint64_t synced, std::vector<Outgoing>& ready);
  std::size_t held() const { return held_.size(); }
  // The most records any held message waits for (0 when none is held).
  std::uint64_t highest_need() const { return highest_need_; }

 private:
  struct Held {
    std::uint64_t needs;
    Outgoing out;
  };
  static std::string PeerKey(const Outgoing& out);

  std::vector<Held> held_;
  // For each peer with held messages, the need of its newest one. A later message to that peer is
  // given at least this need, so within a peer needs never decrease and releasing every message
  // whose need is met keeps each peer's order.
  std::unordered_map<std::string, std::uint64_t> newest_need_;
  std::uint64_t highest_need_ = 0;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_LOOP_OUTPUT_GATE_H_
