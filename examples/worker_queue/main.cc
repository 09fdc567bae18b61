// The seed's worker queue: a producer sends 15 messages, three consumers share them round robin.
//
// The producer waits until all three consumers are connected before it sends; without that, the
// first consumer to connect would take the whole batch (libzmq balances over the peers attached at
// the moment of each send). Each consumer runs on its own thread with its own socket.
#include <zmqkit/work_queue.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

int main() {
  constexpr int kMessages = 15;
  constexpr int kConsumers = 3;
  zmq::context_t context;
  zmqkit::Producer producer(context, zmqkit::Endpoint::Bind("tcp://127.0.0.1:*"));
  std::cout << "producer bound at " << producer.endpoint() << "\n";

  std::mutex output;
  std::atomic<int> received_total{0};
  std::vector<int> received(kConsumers, 0);
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&, c] {
      zmqkit::Worker worker(context, zmqkit::Endpoint::Connect(producer.endpoint()));
      auto deadline = std::chrono::steady_clock::now() + 10s;
      while (received_total < kMessages && std::chrono::steady_clock::now() < deadline) {
        auto message = worker.Receive(50ms);
        if (!message.ok()) continue;
        ++received[c];
        ++received_total;
        std::lock_guard lock(output);
        std::cout << "consumer " << c + 1 << " received: " << message->body_view() << "\n";
      }
    });
  }

  if (auto status = producer.WaitForWorkers(kConsumers, 5s); !status.ok()) {
    std::cerr << "worker_queue: " << status.ToString() << "\n";
    return 1;
  }
  for (int i = 0; i < kMessages; ++i) {
    if (auto status = producer.Send(std::to_string(i) + " - Basic - Hello World"); !status.ok()) {
      std::cerr << "worker_queue: " << status.ToString() << "\n";
      return 1;
    }
  }
  for (auto& consumer : consumers) consumer.join();

  std::cout << "\nround robin split:";
  for (int c = 0; c < kConsumers; ++c) std::cout << " consumer " << c + 1 << "=" << received[c];
  std::cout << " (total " << received_total << " of " << kMessages << ")\n";
  return received_total == kMessages ? 0 : 1;
}
