// PeerOutput: what the broker sends to each peer when a peer's connection will not take it.
//
// A ROUTER with ZMQ_ROUTER_MANDATORY refuses a message to a peer whose queue is full (the peer
// stopped reading) instead of dropping it silently, as libzmq would otherwise. What is refused:
//   - a delivery (it carries tags) is handed back to the core, which takes its messages back as
//     never given (TakeRefusedDeliveries);
//   - an answer (CONFIRM, REJECTED, OK, ERROR, a REQ reply) is held, with every later answer to
//     that peer behind it, and sent when the queue has room (RetryHeld, which the loop calls each
//     turn and, while anything is held, on a short timer: POLLOUT on a ROUTER means "some peer has
//     room", not this one);
//   - a heartbeat is dropped: the next one says the same.
// A peer that is gone (EHOSTUNREACH) gets nothing more; its deliveries go back at once.
//
// The socket is reached through `TrySend`, so this is unit-tested without one.
#ifndef ZMQKIT_SRC_BROKER_LOOP_PEER_OUTPUT_H_
#define ZMQKIT_SRC_BROKER_LOOP_PEER_OUTPUT_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "broker/core/broker_core.h"

namespace zmqkit::internal {

enum class SendResult { kSent, kFull, kGone };

class PeerOutput {
 public:
  using TrySend = std::function<SendResult(Outgoing&)>;
  // Past this many held answers for one peer the oldest are given up (answers_dropped).
  static constexpr std::size_t kMaxHeldPerPeer = 100000;

  PeerOutput(TrySend try_send, BrokerCounters& counters, std::function<void(std::string_view)> log,
             std::size_t max_held_per_peer = kMaxHeldPerPeer);

  void Send(Outgoing& out);
  // Sends what is held, in order per peer, as far as each peer's queue takes it.
  void RetryHeld();
  bool holding() const { return !held_.empty(); }
  // Deliveries refused since the last call, to be handed back to the core.
  std::vector<Outgoing> TakeRefusedDeliveries();
  bool has_refused_deliveries() const { return !refused_deliveries_.empty(); }

 private:
  void Hold(Outgoing& out);

  TrySend try_send_;
  BrokerCounters& counters_;
  std::function<void(std::string_view)> log_;
  const std::size_t max_held_per_peer_;
  std::vector<Outgoing> refused_deliveries_;
  std::map<std::pair<Side, std::string>, std::deque<Outgoing>> held_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_LOOP_PEER_OUTPUT_H_
