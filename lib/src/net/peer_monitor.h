// PeerMonitor: how many peers have completed the ZMTP handshake with a socket.
//
// A PUSH socket hands its first messages to whichever worker connected first; for a fair split from
// the very first message, a producer waits until all its workers are attached. libzmq reports
// attachments only through socket monitor events, which this class reads.
//
// Counts tcp:// and ipc:// peers; inproc connections produce no monitor events. A peer that drops
// during its handshake can leave the count one low, which only makes a waiter wait longer.
#ifndef ZMQKIT_SRC_NET_PEER_MONITOR_H_
#define ZMQKIT_SRC_NET_PEER_MONITOR_H_

#include <chrono>
#include <cstddef>
#include <zmq.hpp>

namespace zmqkit::internal {

class PeerMonitor {
 public:
  // Starts monitoring `watched`. REQUIRES: the libzmq socket behind `watched` outlives this object
  // (moving the socket_t is fine: only its handle is kept).
  PeerMonitor(zmq::context_t& context, zmq::socket_ref watched);
  ~PeerMonitor();
  PeerMonitor(const PeerMonitor&) = delete;
  PeerMonitor& operator=(const PeerMonitor&) = delete;

  // Reads pending events, waiting up to `timeout` for the first; returns the peer count.
  std::size_t Poll(std::chrono::milliseconds timeout);
  // Waits until at least `count` peers are attached or `timeout` passes. Returns whether they are.
  bool WaitFor(std::size_t count, std::chrono::milliseconds timeout);
  std::size_t peers() const { return peers_; }

 private:
  void* watched_;  // the libzmq socket handle, stable across moves of its socket_t
  zmq::socket_t events_;  // PAIR, connected to the monitor endpoint
  std::ptrdiff_t handshakes_ = 0;
  std::ptrdiff_t failed_handshakes_ = 0;  // whose disconnect is still to come
  std::size_t peers_ = 0;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_NET_PEER_MONITOR_H_
