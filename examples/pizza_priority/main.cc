// The seed's pizza restaurant: drinks (high priority) overtake pizzas waiting in the same queue, and
// a delayed "check the oven" message arrives when it is due, not before.
#include <zmqkit/broker.h>
#include <zmqkit/broker_client.h>

#include <chrono>
#include <iostream>
#include <thread>

using namespace std::chrono_literals;

int main() {
  zmq::context_t context;
  zmqkit::BrokerOptions options;  // in memory: this example is about order, not durability
  options.clients = zmqkit::Endpoint::Bind("inproc://pizza-clients");
  options.workers = zmqkit::Endpoint::Bind("inproc://pizza-workers");
  zmqkit::Broker broker(context, options);
  broker.set_log([](std::string_view) {});
  std::thread serving([&] { broker.Run(); });

  zmqkit::BrokerClient counter(context, zmqkit::Endpoint::Connect("inproc://pizza-clients"));
  auto order = [&](const std::string& what, std::uint8_t priority, std::chrono::milliseconds delay = 0ms) {
    zmqkit::Envelope envelope = zmqkit::Envelope::New(what);
    envelope.priority = priority;
    zmqkit::PublishOptions to_kitchen;
    to_kitchen.key = "kitchen";
    to_kitchen.delay = delay;
    (void)counter.Publish(std::move(envelope), to_kitchen);
  };
  const auto opened = std::chrono::steady_clock::now();
  std::cout << "Orders come in: a timer for the oven (in 1 s), three pizzas, then two drinks.\n";
  order("check the oven", 5, 1000ms);
  order("pizza margherita", 1);
  order("pizza funghi", 1);
  order("pizza diavola", 1);
  order("cola", 8);
  order("lemonade", 8);
  (void)counter.WaitForConfirms(5s);

  zmqkit::BrokerClient chef(context, zmqkit::Endpoint::Connect("inproc://pizza-clients"));
  (void)chef.Consume("kitchen", 1);
  std::cout << "The chef works through the queue:\n";
  for (int i = 0; i < 6; ++i) {
    auto task = chef.Receive(5s);
    if (!task.ok()) return 1;
    auto at = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - opened);
    std::cout << "  " << at.count() << " ms  " << task->envelope.body_view() << " (priority "
              << static_cast<int>(task->envelope.priority) << ")\n";
    std::this_thread::sleep_for(task->envelope.body_view().starts_with("pizza") ? 300ms : 20ms);
    (void)chef.Ack(task->tag);
  }
  std::cout << "Drinks overtook the waiting pizzas; the oven timer came when it was due.\n";
  broker.Stop();
  serving.join();
  return 0;
}
