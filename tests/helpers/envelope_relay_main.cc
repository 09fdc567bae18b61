// The C++ side of the Python interop test.
//   envelope_relay IN_ENDPOINT OUT_ENDPOINT
// Binds a Worker (PULL) at IN and a Producer (PUSH) at OUT. Each well-formed envelope is sent on
// with attempt+1 and the header relayed=c++; each rejected message is answered with an empty-bodied
// envelope whose header "rejected" names the DecodeErrc. An envelope with header stop=1 ends it.
// Exits by itself after 30 s.
#include <zmqkit/work_queue.h>

#include <chrono>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: envelope_relay IN OUT\n";
    return 2;
  }
  zmq::context_t context;
  zmqkit::Worker in(context, zmqkit::Endpoint::Bind(argv[1]));
  zmqkit::ProducerOptions options;
  options.send_timeout = std::chrono::seconds(10);
  zmqkit::Producer out(context, zmqkit::Endpoint::Bind(argv[2]), options);
  auto stop_at = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < stop_at) {
    auto message = in.Receive(std::chrono::milliseconds(100));
    if (message.ok()) {
      if (message->headers.contains("stop")) return 0;
      zmqkit::Envelope relayed = message->Clone();
      ++relayed.attempt;
      relayed.headers["relayed"] = "c++";
      if (!out.Send(relayed).ok()) return 1;
    } else if (message.error().code() == zmqkit::StatusCode::kInvalidArgument) {
      zmqkit::Envelope report = zmqkit::Envelope::New();
      report.headers["rejected"] = std::string(zmqkit::DecodeErrcName(in.last_decode_error()->code));
      if (!out.Send(report).ok()) return 1;
    }
  }
  return 1;
}
