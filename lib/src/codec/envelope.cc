#include "zmqkit/envelope.h"

#include <chrono>

namespace zmqkit {

std::int64_t UnixMicrosNow() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Not message_t::rebuild(data, size): it passes an empty view's null data() to memcpy (UB); the
// constructor checks for that.
void Envelope::set_body(std::string_view bytes) { body = zmq::message_t(bytes.data(), bytes.size()); }

Envelope Envelope::New(std::string_view body) {
  Envelope envelope;
  envelope.created_us = UnixMicrosNow();
  envelope.id = MessageId::Generate(static_cast<std::uint64_t>(envelope.created_us / 1000));
  envelope.set_body(body);
  return envelope;
}

Envelope Envelope::Clone() const {
  Envelope copy;
  copy.id = id;
  copy.created_us = created_us;
  copy.priority = priority;
  copy.attempt = attempt;
  copy.seq = seq;
  copy.stream = stream;
  copy.headers = headers;
  // zmq_msg_copy only bumps a reference count, but its source parameter is not const.
  copy.body.copy(const_cast<zmq::message_t&>(body));
  return copy;
}

}  // namespace zmqkit
