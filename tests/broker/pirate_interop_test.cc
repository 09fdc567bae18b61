// The broker with peers that only speak the ZeroMQ Guide's patterns: Paranoid Pirate workers (RFC 6)
// and Lazy Pirate REQ clients, all on raw cppzmq.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "helpers/test_support.h"
#include "zmqkit/broker.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;

constexpr int kHeartbeatMs = 100;

// The Guide's Lazy Pirate client: send, wait up to `timeout` for the reply, and on silence close the
// socket, reconnect and send again, up to `retries` times. Returns the reply, or "" if none came.
std::string LazyPirateRequest(zmq::context_t& context, const std::string& endpoint,
                              const std::string& request, std::chrono::milliseconds timeout,
                              int retries, int* sends = nullptr) {
  for (int attempt = 0; attempt <= retries; ++attempt) {
    zmq::socket_t client(context, zmq::socket_type::req);
    client.set(zmq::sockopt::linger, 0);
    client.connect(endpoint);
    client.send(zmq::buffer(request));
    if (sends) ++*sends;
    zmq::pollitem_t item{client.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) > 0) {
      zmq::message_t reply;
      (void)client.recv(reply);
      return reply.to_string();
    }
  }
  return "";
}

class PirateInteropTest : public ::testing::Test {
 protected:
  void StartBroker() {
    BrokerOptions options;
    options.clients = Endpoint::Bind(testing::IpcAddress(dir_, "clients"));
    options.workers = Endpoint::Bind(testing::IpcAddress(dir_, "workers"));
    options.heartbeat_interval = std::chrono::milliseconds(kHeartbeatMs);
    options.queue_defaults.retry_delay = 0ms;
    broker_ = std::make_unique<Broker>(context_, options);
    broker_->set_log([](std::string_view) {});
    thread_ = std::thread([this] { broker_->Run(); });
  }
  void TearDown() override {
    if (broker_) {
      broker_->Stop();
      thread_.join();
    }
  }
  std::unique_ptr<testing::ChildProcess> Worker(const std::string& name, const std::string& mode) {
    return std::make_unique<testing::ChildProcess>(
        testing::HelperPath("ppp_worker"),
        std::vector<std::string>{broker_->workers_endpoint(), name, std::to_string(kHeartbeatMs),
                                 mode});
  }

  testing::TempDir dir_;
  zmq::context_t context_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
};

TEST_F(PirateInteropTest, LazyPirateClientGetsAnswersFromAParanoidPirateWorker) {
  StartBroker();
  auto worker = Worker("w1", "echo");
  for (int i = 0; i < 5; ++i) {
    std::string request = "request " + std::to_string(i);
    EXPECT_EQ(LazyPirateRequest(context_, broker_->clients_endpoint(), request, 5s, 0),
              "w1:" + request);
  }
}

// A request the client sent before any worker existed waits in the queue for one.
TEST_F(PirateInteropTest, ARequestWaitsForAWorkerThatStartsLater) {
  StartBroker();
  std::string reply;
  std::thread client([&] {
    reply = LazyPirateRequest(context_, broker_->clients_endpoint(), "early", 10s, 0);
  });
  std::this_thread::sleep_for(300ms);  // the scenario: no worker yet
  auto worker = Worker("late", "echo");
  client.join();
  EXPECT_EQ(reply, "late:early");
}

// Unlike the Guide's ppqueue, a request held by a worker that dies is not lost: the broker sees the
// worker fall silent, takes the request back and gives it to another worker. The client sends once.
TEST_F(PirateInteropTest, ARequestSurvivesTheWorkerThatExitedMidJob) {
  StartBroker();
  auto crasher = Worker("crasher", "exit-on-job");
  std::string reply;
  int sends = 0;
  std::thread client([&] {
    reply = LazyPirateRequest(context_, broker_->clients_endpoint(), "precious", 10s, 0, &sends);
  });
  auto status = crasher->Wait(10s);
  ASSERT_TRUE(status.has_value()) << "the crasher never got the job";
  auto survivor = Worker("survivor", "echo");
  client.join();
  EXPECT_EQ(reply, "survivor:precious");
  EXPECT_EQ(sends, 1);
}

class BrokerBinaryTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
};

TEST_F(BrokerBinaryTest, SigkilledWorkerMidJobAndCleanShutdownOnSigterm) {
  std::string clients = testing::IpcAddress(dir_, "clients");
  std::string workers = testing::IpcAddress(dir_, "workers");
  testing::ChildProcess broker(std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker",
                               {"--clients", clients, "--workers", workers, "--heartbeat-ms",
                                std::to_string(kHeartbeatMs), "--retry-delay-ms", "0",
                                "--data-dir", "none"});
  const std::string marker = (dir_.path() / "hanger-has-the-job").string();
  testing::ChildProcess hanger(
      testing::HelperPath("ppp_worker"),
      {workers, "hanger", std::to_string(kHeartbeatMs), "hang-on-job", marker});
  zmq::context_t context;
  std::string reply;
  std::thread client([&] { reply = LazyPirateRequest(context, clients, "job", 15s, 0); });
  // Once the hanger holds the job, kill it for real.
  ASSERT_TRUE(testing::WaitUntil([&] { return std::filesystem::exists(marker); }));
  hanger.Signal(SIGKILL);
  ASSERT_TRUE(hanger.Wait(5s).has_value());
  testing::ChildProcess rescuer(testing::HelperPath("ppp_worker"),
                                {workers, "rescuer", std::to_string(kHeartbeatMs), "echo"});
  client.join();
  EXPECT_EQ(reply, "rescuer:job");

  broker.Signal(SIGTERM);
  auto status = broker.Wait(5s);
  ASSERT_TRUE(status && WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(BrokerBinaryTest, UsageErrorsExitWithTwo) {
  auto exit_code = [](const std::vector<std::string>& args) {
    testing::ChildProcess child(std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker", args);
    auto status = child.Wait(10s);
    return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  };
  EXPECT_EQ(exit_code({"--help"}), 0);
  EXPECT_EQ(exit_code({"--clients", "nonsense"}), 2);
  EXPECT_EQ(exit_code({"--heartbeat-ms", "0"}), 2);
  EXPECT_EQ(exit_code({"--no-such-flag"}), 2);
}

}  // namespace
}  // namespace zmqkit
