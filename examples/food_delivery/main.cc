// The seed's food delivery app, on the broker: the app publishes confirmed orders and goes away;
// the broker restarts in between; two riders start later and share the orders; one rider crashes
// mid-delivery and the other delivers that order too. Nothing is lost.
//
// Riders are separate processes (this program started again with --rider), so the crash is real: a
// SIGKILL, no goodbye. The broker notices the silence (3 missed heartbeats) and gives the order to
// the other rider.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmqkit/broker.h>
#include <zmqkit/broker_client.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

using namespace std::chrono_literals;

extern char** environ;

namespace {

constexpr int kOrders = 8;
constexpr auto kHeartbeat = 200ms;

zmqkit::BrokerClientOptions ClientOptions() {
  zmqkit::BrokerClientOptions options;
  options.heartbeat_interval = kHeartbeat;
  return options;
}

int Rider(const std::string& endpoint, const std::string& name, int crash_on) {
  zmq::context_t context;
  zmqkit::BrokerClient rider(context, zmqkit::Endpoint::Connect(endpoint), ClientOptions());
  if (!rider.Consume("deliveries", 1).ok()) return 1;
  for (int delivered = 1;; ++delivered) {
    auto order = rider.Receive(2s);
    if (!order.ok()) return 0;  // no more orders
    std::cout << "  rider " << name << " picks up " << order->envelope.body_view()
              << (order->envelope.attempt > 1 ? " (again: its first rider crashed)" : "") << std::endl;
    if (delivered == crash_on) {
      std::cout << "  rider " << name << " crashes on the way!" << std::endl;
      std::raise(SIGKILL);
    }
    std::this_thread::sleep_for(100ms);  // riding
    (void)rider.Ack(order->tag);
  }
}

pid_t StartRider(const char* self, const std::string& endpoint, const std::string& name,
                 int crash_on) {
  std::string crash = std::to_string(crash_on);
  const char* argv[] = {self, "--rider", endpoint.c_str(), name.c_str(), crash.c_str(), nullptr};
  pid_t pid = -1;
  posix_spawn(&pid, self, nullptr, nullptr, const_cast<char**>(argv), environ);
  return pid;
}

std::unique_ptr<zmqkit::Broker> StartBroker(zmq::context_t& context, const std::string& data_dir,
                                            const std::string& endpoint) {
  zmqkit::BrokerOptions options;
  options.clients = zmqkit::Endpoint::Bind(endpoint);
  options.workers = zmqkit::Endpoint::Bind(endpoint + "-workers");
  options.data_dir = data_dir;
  options.heartbeat_interval = kHeartbeat;
  options.queue_defaults.retry_delay = 0ms;
  auto broker = std::make_unique<zmqkit::Broker>(context, options);
  broker->set_log([](std::string_view line) { std::cout << "  [broker] " << line << "\n"; });
  return broker;
}

}  // namespace

int main(int argc, char** argv) {
  std::cout << std::unitbuf;  // the riders' lines and ours, in the order they happen
  if (argc == 5 && std::string(argv[1]) == "--rider") return Rider(argv[2], argv[3], std::stoi(argv[4]));

  const auto dir = std::filesystem::temp_directory_path() / ("food-delivery-" + std::to_string(::getpid()));
  const std::string endpoint = "ipc://" + (dir / "broker").string();
  const std::string data_dir = (dir / "data").string();
  std::filesystem::create_directories(dir);
  zmq::context_t context;

  std::cout << "1. The broker starts, and the app publishes " << kOrders << " orders, then goes away.\n";
  auto broker = StartBroker(context, data_dir, endpoint);
  std::thread serving([&] { broker->Run(); });
  {
    zmqkit::BrokerClient app(context, zmqkit::Endpoint::Connect(endpoint), ClientOptions());
    for (int i = 1; i <= kOrders; ++i) (void)app.Publish("deliveries", "order #" + std::to_string(i));
    if (!app.WaitForConfirms(10s).ok()) return 1;
    std::cout << "  all " << kOrders << " orders confirmed "
              << (app.confirm_level() == zmqkit::ConfirmLevel::kOnDisk ? "on disk" : "queued") << "\n";
  }

  std::cout << "2. The broker restarts (nobody is consuming yet).\n";
  broker->Stop();
  serving.join();
  broker.reset();  // releases the data directory: one broker per directory
  broker = StartBroker(context, data_dir, endpoint);
  serving = std::thread([&] { broker->Run(); });

  std::cout << "3. Two riders start, long after the app left. Alice will crash on her 2nd order.\n";
  pid_t alice = StartRider(argv[0], endpoint, "Alice", 2);
  pid_t bob = StartRider(argv[0], endpoint, "Bob", 0);
  int alice_status = 0, bob_status = 0;
  ::waitpid(alice, &alice_status, 0);
  ::waitpid(bob, &bob_status, 0);

  zmqkit::BrokerClient observer(context, zmqkit::Endpoint::Connect(endpoint), ClientOptions());
  auto stats = observer.Stats("deliveries");
  std::uint64_t acked = stats.ok() ? stats->at(0).values["acked"] : 0;
  std::uint64_t left = stats.ok() ? stats->at(0).values["ready"] + stats->at(0).values["in_flight"] : 0;
  std::cout << "4. Result: " << acked << " of " << kOrders << " orders delivered, " << left
            << " left; Alice " << (WIFSIGNALED(alice_status) ? "was killed" : "finished")
            << ", Bob finished.\n"
            << "   What the broker gained over PUSH/PULL: the orders waited for riders that were not\n"
            << "   running, survived a broker restart, and the crashed rider's order went to Bob.\n";
  broker->Stop();
  serving.join();
  std::filesystem::remove_all(dir);
  return acked == kOrders && left == 0 && WIFSIGNALED(alice_status) ? 0 : 1;
}
