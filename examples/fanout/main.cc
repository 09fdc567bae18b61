// Fanout: one ORDER_CREATED event reaches the payment, email, inventory and shipping services.
//
// Each service subscribes to the "orders." topic prefix. The publisher waits until all four
// subscriptions have reached it before publishing; PUB/SUB drops whatever is published before a
// subscription arrives (the slow joiner), so without that wait the event could reach nobody.
// The body is a typed struct, packed with msgpack.
#include <zmqkit/fanout.h>
#include <zmqkit/typed_body.h>

#include <chrono>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

struct OrderCreated {
  std::string order_id;
  std::string customer;
  double total = 0;
  MSGPACK_DEFINE_MAP(order_id, customer, total)
};

int main() {
  zmq::context_t context;
  zmqkit::Publisher orders(context, zmqkit::Endpoint::Bind("tcp://127.0.0.1:*"));
  const std::vector<std::string> services = {"payment", "email", "inventory", "shipping"};

  std::mutex output;
  int delivered = 0;
  std::vector<std::thread> subscribers;
  for (const auto& service : services) {
    subscribers.emplace_back([&, service] {
      zmqkit::Subscriber subscriber(context, zmqkit::Endpoint::Connect(orders.endpoint()));
      subscriber.Subscribe("orders.");
      auto publication = subscriber.Receive(5s);
      std::lock_guard lock(output);
      if (!publication.ok()) {
        std::cout << service << ": nothing arrived (" << publication.error().ToString() << ")\n";
        return;
      }
      auto order = zmqkit::UnpackBody<OrderCreated>(publication->envelope);
      if (!order.ok()) {
        std::cout << service << ": unreadable event (" << order.error().ToString() << ")\n";
        return;
      }
      ++delivered;
      std::cout << service << " service got " << publication->envelope.headers.at("type")
                << " on \"" << publication->topic << "\": order " << order->order_id << " for "
                << order->customer << ", total " << order->total << "\n";
    });
  }

  if (auto status = orders.WaitForSubscribers(services.size(), "orders.created", 5s); !status.ok()) {
    std::cerr << "fanout: " << status.ToString() << "\n";
    return 1;
  }
  zmqkit::Envelope event = zmqkit::PackBody(OrderCreated{"A-1001", "Ada", 42.50});
  event.headers["type"] = "ORDER_CREATED";
  if (auto status = orders.Publish("orders.created", std::move(event)); !status.ok()) {
    std::cerr << "fanout: " << status.ToString() << "\n";
    return 1;
  }
  for (auto& subscriber : subscribers) subscriber.join();
  std::cout << "published once, delivered to " << delivered << " of " << services.size()
            << " services\n";
  return delivered == static_cast<int>(services.size()) ? 0 : 1;
}
