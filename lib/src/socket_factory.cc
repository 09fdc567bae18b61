#include "zmqkit/socket_factory.h"

namespace zmqkit {

zmq::socket_t OpenSocket(zmq::context_t& context, zmq::socket_type type,
                         const SocketOptions& options) {
  zmq::socket_t socket(context, type);
  socket.set(zmq::sockopt::sndhwm, options.send_hwm);
  socket.set(zmq::sockopt::rcvhwm, options.recv_hwm);
  socket.set(zmq::sockopt::linger, static_cast<int>(options.linger.count()));
  socket.set(zmq::sockopt::maxmsgsize, options.max_frame_bytes);
  return socket;
}

zmq::context_t& DefaultContext() {
  static zmq::context_t* context = new zmq::context_t();
  return *context;
}

}  // namespace zmqkit
