#include "zmqkit/socket_factory.h"

#include <stdexcept>

#include "zmqkit/curve.h"

namespace zmqkit {

Status ValidateCurve(const CurveOptions& curve) {
  if (curve.server() && curve.client()) {
    return Status::InvalidArgument("CURVE: a socket is either the server side or the client side");
  }
  if (curve.server() && !IsZ85Key(curve.server_secret_key)) {
    return Status::InvalidArgument("CURVE: the server secret key is not 40 characters of Z85");
  }
  if (curve.client()) {
    if (!IsZ85Key(curve.client_public_key) || !IsZ85Key(curve.client_secret_key)) {
      return Status::InvalidArgument("CURVE: the client needs its own key pair (40 Z85 characters each)");
    }
    if (!IsZ85Key(curve.server_public_key)) {
      return Status::InvalidArgument("CURVE: the client needs the server's public key (40 Z85 characters)");
    }
  }
  return Status::Ok();
}

zmq::socket_t OpenSocket(zmq::context_t& context, zmq::socket_type type,
                         const SocketOptions& options) {
  if (Status valid = ValidateCurve(options.curve); !valid.ok()) {
    throw std::invalid_argument(valid.message());
  }
  zmq::socket_t socket(context, type);
  // Security first: set before any bind or connect, which is when libzmq reads it.
  if (options.curve.server()) {
    socket.set(zmq::sockopt::curve_server, 1);
    socket.set(zmq::sockopt::curve_secretkey, options.curve.server_secret_key);
  } else if (options.curve.client()) {
    socket.set(zmq::sockopt::curve_serverkey, options.curve.server_public_key);
    socket.set(zmq::sockopt::curve_publickey, options.curve.client_public_key);
    socket.set(zmq::sockopt::curve_secretkey, options.curve.client_secret_key);
  }
  if (!options.zap_domain.empty()) socket.set(zmq::sockopt::zap_domain, options.zap_domain);
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
