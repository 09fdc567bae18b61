#include "zmqkit/endpoint.h"

namespace zmqkit {

Result<Endpoint> Endpoint::Parse(std::string_view text, Mode default_mode) {
  Mode mode = default_mode;
  if (!text.empty() && (text.front() == '@' || text.front() == '>')) {
    mode = text.front() == '@' ? Mode::kBind : Mode::kConnect;
    text.remove_prefix(1);
  }
  auto separator = text.find("://");
  if (separator == std::string_view::npos || separator + 3 == text.size()) {
    return Status::InvalidArgument("endpoint \"" + std::string(text) +
                                   "\" is not of the form transport://address");
  }
  std::string_view transport = text.substr(0, separator);
  if (transport != "tcp" && transport != "ipc" && transport != "inproc") {
    return Status::InvalidArgument("endpoint \"" + std::string(text) + "\": transport \"" +
                                   std::string(transport) + "\" is not tcp, ipc or inproc");
  }
  return Endpoint{mode, std::string(text)};
}

std::string Endpoint::ToString() const {
  return (mode == Mode::kBind ? "@" : ">") + address;
}

std::string AttachSocket(zmq::socket_t& socket, const Endpoint& endpoint) {
  if (endpoint.mode == Endpoint::Mode::kBind) {
    socket.bind(endpoint.address);
    return socket.get(zmq::sockopt::last_endpoint);
  }
  socket.connect(endpoint.address);
  return endpoint.address;
}

}  // namespace zmqkit
