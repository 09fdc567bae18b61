// ReceiveStats: what a receiving socket accepted and what it turned away, by reason.
//
// Bad input is counted rather than thrown, so an operator can see a misbehaving peer without the
// receive loop ever stopping.
#ifndef ZMQKIT_RECEIVE_STATS_H_
#define ZMQKIT_RECEIVE_STATS_H_

#include <array>
#include <cstdint>

#include "zmqkit/envelope_codec.h"

namespace zmqkit {

struct ReceiveStats {
  std::uint64_t received = 0;  // well-formed messages handed to the caller
  std::uint64_t rejected = 0;  // malformed messages dropped, all reasons
  std::array<std::uint64_t, kDecodeErrcCount> rejected_by_reason{};
  // Topic-packed messages that libzmq let through on a subscription longer than their topic (it
  // matched the header's first bytes), dropped: well-formed, but not subscribed to.
  std::uint64_t not_subscribed = 0;

  std::uint64_t rejected_for(DecodeErrc code) const {
    return rejected_by_reason[static_cast<std::size_t>(code)];
  }
};

}  // namespace zmqkit

#endif  // ZMQKIT_RECEIVE_STATS_H_
