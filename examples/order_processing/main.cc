// The seed's e-commerce flow on the broker: ORDER_CREATED is published once to a fanout exchange and
// lands in the payment, email, inventory and shipping queues. Payment publishes PAYMENT_COMPLETED
// back to the order service; a card that keeps failing ends in the dead-letter queue after three
// attempts. While the payment service is down its queue fills and the other services are
// unaffected; when it comes back, it drains.
#include <zmqkit/broker.h>
#include <zmqkit/broker_client.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

const std::string kBroker = "inproc://orders-broker";
std::mutex output;

void Say(const std::string& line) {
  std::lock_guard lock(output);
  std::cout << line << std::endl;
}

// email, inventory, shipping: do the work, ack.
void Service(zmq::context_t& context, const std::string& name, std::atomic<bool>& stop) {
  zmqkit::BrokerClient client(context, zmqkit::Endpoint::Connect(kBroker));
  (void)client.Consume(name, 10);
  while (!stop) {
    auto event = client.Receive(50ms);
    if (!event.ok()) continue;
    Say("  " + name + " handles " + std::string(event->envelope.body_view()));
    (void)client.Ack(event->tag);
  }
}

// payment: charges the card; order A-3's card is always declined (a poison message).
void Payment(zmq::context_t& context, std::atomic<bool>& stop) {
  zmqkit::BrokerClient client(context, zmqkit::Endpoint::Connect(kBroker));
  (void)client.Consume("payment", 1);
  while (!stop) {
    auto event = client.Receive(50ms);
    if (!event.ok()) continue;
    std::string order(event->envelope.body_view());
    if (order.find("A-3") != std::string::npos) {
      Say("  payment: card declined for " + order + " (attempt " +
          std::to_string(event->envelope.attempt) + ")");
      (void)client.Nack(event->tag, /*requeue=*/true);
      continue;
    }
    zmqkit::Envelope completed = zmqkit::Envelope::New(order);
    completed.headers["type"] = "PAYMENT_COMPLETED";
    zmqkit::PublishOptions to_orders;
    to_orders.key = "payment-events";
    (void)client.Publish(std::move(completed), to_orders);
    (void)client.WaitForConfirms(5s);
    Say("  payment: charged " + order + ", PAYMENT_COMPLETED sent");
    (void)client.Ack(event->tag);
  }
}

}  // namespace

int main() {
  zmq::context_t context;
  zmqkit::BrokerOptions options;
  options.clients = zmqkit::Endpoint::Bind(kBroker);
  options.workers = zmqkit::Endpoint::Bind("inproc://orders-workers");
  options.queue_defaults.retry_delay = 0ms;
  zmqkit::Broker broker(context, options);
  broker.set_log([](std::string_view) {});
  std::thread serving([&] { broker.Run(); });

  zmqkit::BrokerClient orders(context, zmqkit::Endpoint::Connect(kBroker));
  (void)orders.DeclareExchange("orders", "fanout");
  for (const char* queue : {"payment", "email", "inventory", "shipping"}) (void)orders.Bind("orders", queue);
  zmqkit::QueueOptions payment_queue;
  payment_queue.max_attempts = 3;
  payment_queue.retry_delay = 0ms;
  (void)orders.DeclareQueue("payment", payment_queue);

  std::atomic<bool> stop{false};
  std::vector<std::thread> services;
  for (const char* name : {"email", "inventory", "shipping"}) {
    services.emplace_back([&, name] { Service(context, name, stop); });
  }

  Say("1. The payment service is down. Five orders are created (one publish each):");
  zmqkit::PublishOptions to_exchange;
  to_exchange.exchange = "orders";
  for (int i = 1; i <= 5; ++i) {
    zmqkit::Envelope created = zmqkit::Envelope::New("order A-" + std::to_string(i));
    created.headers["type"] = "ORDER_CREATED";
    (void)orders.Publish(std::move(created), to_exchange);
  }
  (void)orders.WaitForConfirms(5s);
  auto depth = [&](const std::string& queue, const char* field) {
    auto stats = orders.Stats(queue);
    return stats.ok() ? stats->at(0).values[field] : 0;
  };
  // Time passes while payment is down: the other services get through everything.
  for (auto until = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < until &&
       depth("email", "acked") + depth("inventory", "acked") + depth("shipping", "acked") < 15;) {
    std::this_thread::sleep_for(20ms);
  }
  Say("   payment queue while its service is down: " + std::to_string(depth("payment", "ready")) +
      " waiting; email/inventory/shipping acked " + std::to_string(depth("email", "acked")) + "/" +
      std::to_string(depth("inventory", "acked")) + "/" + std::to_string(depth("shipping", "acked")));

  Say("2. The payment service comes back and drains its queue:");
  services.emplace_back([&] { Payment(context, stop); });
  (void)orders.Consume("payment-events", 10);
  int completed = 0;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (completed < 4 && std::chrono::steady_clock::now() < deadline) {
    auto event = orders.Receive(100ms);
    if (!event.ok()) continue;
    ++completed;
    (void)orders.Ack(event->tag);
  }
  while (depth("payment", "dlq_depth") < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  stop = true;
  for (auto& service : services) service.join();

  auto dead = orders.Peek("payment.dlq");
  std::string dead_letter = dead.ok() && !dead->empty()
                                ? dead->at(0).body + " (" + dead->at(0).headers.at("x-death-reason") +
                                      ", history " + dead->at(0).headers.at("x-attempt-history") + ")"
                                : "none";
  Say("3. Result: the order service got " + std::to_string(completed) +
      " PAYMENT_COMPLETED events; payment.dlq holds " + dead_letter + ".");
  Say("   Email, inventory and shipping handled all 5 orders while payment was down.");
  const bool as_claimed = completed == 4 && depth("email", "acked") == 5 && dead.ok() && dead->size() == 1;
  broker.Stop();
  serving.join();
  return as_claimed ? 0 : 1;
}
