// Typed bodies: any msgpack-able type as a message body.
//
// A struct with MSGPACK_DEFINE_MAP(...) (or any type msgpack-c can pack) becomes a body with
// PackBody and comes back with UnpackBody. The envelope's "content-type" header says
// "application/msgpack" so a reader in another language knows how to read it.
//
// This header includes <msgpack.hpp>, which is large; include it only where bodies are typed.
#ifndef ZMQKIT_TYPED_BODY_H_
#define ZMQKIT_TYPED_BODY_H_

#include <exception>
#include <msgpack.hpp>
#include <string>

#include "zmqkit/envelope.h"
#include "zmqkit/status.h"

namespace zmqkit {

inline constexpr std::string_view kContentTypeHeader = "content-type";
inline constexpr std::string_view kMsgpackContentType = "application/msgpack";

// A new envelope (fresh id, created now) whose body is `value` packed with msgpack.
template <typename T>
Envelope PackBody(const T& value) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, value);
  Envelope envelope = Envelope::New(std::string_view(buffer.data(), buffer.size()));
  envelope.headers.emplace(kContentTypeHeader, kMsgpackContentType);
  return envelope;
}

// The body unpacked as a T. kInvalidArgument if the body is not msgpack or does not convert to T;
// never throws for a bad body.
template <typename T>
Result<T> UnpackBody(const Envelope& envelope) {
  try {
    // No container or string can declare more elements than the body has bytes; without these
    // limits a 5-byte body declaring 2^32 array elements makes msgpack-c allocate for all of them.
    const auto bound = static_cast<std::size_t>(envelope.body.size());
    const msgpack::unpack_limit limits(bound, bound, bound, bound, bound, 64);
    msgpack::object_handle handle = msgpack::unpack(envelope.body.data<char>(),
                                                    envelope.body.size(), nullptr, nullptr, limits);
    return handle.get().as<T>();
  } catch (const std::exception& error) {
    return Status::InvalidArgument(std::string("body does not unpack as the expected type: ") +
                                   error.what());
  }
}

}  // namespace zmqkit

#endif  // ZMQKIT_TYPED_BODY_H_
