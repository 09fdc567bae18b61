// A native broker consumer as a child process, for crash tests.
//   broker_consumer ENDPOINT QUEUE HEARTBEAT_MS MARKER_FILE
// Consumes QUEUE with prefetch 1; on the first delivery writes MARKER_FILE and hangs (its client
// thread keeps heartbeating and extending) until killed. Exits by itself after 30 s.
#include <zmqkit/broker_client.h>

#include <fstream>
#include <iostream>
#include <thread>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: broker_consumer ENDPOINT QUEUE HEARTBEAT_MS MARKER_FILE\n";
    return 2;
  }
  zmq::context_t context;
  zmqkit::BrokerClientOptions options;
  options.heartbeat_interval = std::chrono::milliseconds(std::stoi(argv[3]));
  zmqkit::BrokerClient client(context, zmqkit::Endpoint::Connect(argv[1]), options);
  if (!client.Consume(argv[2], 1).ok()) return 1;
  auto delivery = client.Receive(std::chrono::seconds(30));
  if (!delivery.ok()) return 1;
  std::ofstream(argv[4]) << delivery->envelope.body_view() << "\n";
  std::this_thread::sleep_for(std::chrono::seconds(30));
  return 0;
}
