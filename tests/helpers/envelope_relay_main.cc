// The C++ side of the Python interop test.
//   envelope_relay IN_ENDPOINT OUT_ENDPOINT
//   envelope_relay --fanout IN_ENDPOINT OUT_ENDPOINT
// Binds a Worker (PULL) at IN and a Producer (PUSH) at OUT; with --fanout, a Subscriber (SUB,
// subscribed to everything) at IN and a Publisher (XPUB) at OUT, which waits for one subscriber
// before its first message. Each well-formed envelope is sent on (on its topic) with attempt+1 and
// the header relayed=c++; each rejected message is answered with an empty-bodied envelope (on
// topic "rejected") whose header "rejected" names the DecodeErrc. An envelope with header stop=1
// ends it. Exits by itself after 30 s.
#include <zmqkit/fanout.h>
#include <zmqkit/work_queue.h>

#include <chrono>
#include <iostream>
#include <string_view>

namespace {

using namespace std::chrono_literals;

zmqkit::Envelope Relayed(const zmqkit::Envelope& message) {
  zmqkit::Envelope relayed = message.Clone();
  ++relayed.attempt;
  relayed.headers["relayed"] = "c++";
  return relayed;
}

zmqkit::Envelope Report(const std::optional<zmqkit::DecodeError>& error) {
  zmqkit::Envelope report = zmqkit::Envelope::New();
  report.headers["rejected"] = std::string(zmqkit::DecodeErrcName(error->code));
  return report;
}

int RelayWorkQueue(zmq::context_t& context, const char* in_endpoint, const char* out_endpoint) {
  zmqkit::Worker in(context, zmqkit::Endpoint::Bind(in_endpoint));
  zmqkit::ProducerOptions options;
  options.send_timeout = 10s;
  zmqkit::Producer out(context, zmqkit::Endpoint::Bind(out_endpoint), options);
  auto stop_at = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < stop_at) {
    auto message = in.Receive(100ms);
    if (message.ok()) {
      if (message->headers.contains("stop")) return 0;
      if (!out.Send(Relayed(*message)).ok()) return 1;
    } else if (message.error().code() == zmqkit::StatusCode::kInvalidArgument) {
      if (!out.Send(Report(in.last_decode_error())).ok()) return 1;
    }
  }
  return 1;
}

int RelayFanout(zmq::context_t& context, const char* in_endpoint, const char* out_endpoint) {
  zmqkit::Subscriber in(context, zmqkit::Endpoint::Bind(in_endpoint));
  in.Subscribe("");
  zmqkit::PublisherOptions options;
  options.hwm_wait = 10s;
  zmqkit::Publisher out(context, zmqkit::Endpoint::Bind(out_endpoint), options);
  auto stop_at = std::chrono::steady_clock::now() + 30s;
  bool subscribed = false;
  auto publish = [&](std::string_view topic, zmqkit::Envelope envelope) {
    if (!subscribed && !out.WaitForSubscribers(1, topic, 10s).ok()) return false;
    subscribed = true;
    return out.Publish(topic, std::move(envelope)).ok();
  };
  while (std::chrono::steady_clock::now() < stop_at) {
    auto publication = in.Receive(100ms);
    if (publication.ok()) {
      if (publication->envelope.headers.contains("stop")) return 0;
      if (!publish(publication->topic, Relayed(publication->envelope))) return 1;
    } else if (publication.error().code() == zmqkit::StatusCode::kInvalidArgument) {
      if (!publish("rejected", Report(in.last_decode_error()))) return 1;
    }
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const bool fanout = argc == 4 && std::string_view(argv[1]) == "--fanout";
  if (argc != 3 && !fanout) {
    std::cerr << "usage: envelope_relay [--fanout] IN OUT\n";
    return 2;
  }
  zmq::context_t context;
  if (fanout) return RelayFanout(context, argv[2], argv[3]);
  return RelayWorkQueue(context, argv[1], argv[2]);
}
