// Endpoint: an address plus whether this side binds or connects.
//
// Any pattern's either side may bind or connect, so every constructor takes an Endpoint rather than a
// bare string. The text form follows CZMQ: "@tcp://*:5555" binds, ">tcp://host:5555" connects, and a
// bare address takes the role's default.
#ifndef ZMQKIT_ENDPOINT_H_
#define ZMQKIT_ENDPOINT_H_

#include <string>
#include <string_view>
#include <zmq.hpp>

#include "zmqkit/status.h"

namespace zmqkit {

struct Endpoint {
  enum class Mode { kBind, kConnect };

  Mode mode = Mode::kConnect;
  std::string address;  // tcp://, ipc:// or inproc://

  static Endpoint Bind(std::string address) { return {Mode::kBind, std::move(address)}; }
  static Endpoint Connect(std::string address) { return {Mode::kConnect, std::move(address)}; }
  // "@addr" binds, ">addr" connects, "addr" uses `default_mode`. Rejects an empty address and a
  // transport other than tcp, ipc or inproc.
  static Result<Endpoint> Parse(std::string_view text, Mode default_mode);

  // "@tcp://..." or ">tcp://...".
  std::string ToString() const;
};

// Binds or connects `socket` to `endpoint`. Returns the address actually in use: after binding
// tcp://127.0.0.1:* it holds the port the system chose. Throws zmq::error_t if libzmq refuses
// (a bad address, a port in use): this happens at start-up, where an exception is the right answer.
std::string AttachSocket(zmq::socket_t& socket, const Endpoint& endpoint);

}  // namespace zmqkit

#endif  // ZMQKIT_ENDPOINT_H_
