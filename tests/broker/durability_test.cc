// The broker with a data directory: what was confirmed survives a restart and a SIGKILL.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <set>
#include <thread>

#include "helpers/test_support.h"
#include "zmqkit/broker.h"
#include "zmqkit/broker_client.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;

class DurabilityTest : public ::testing::Test {
 protected:
  void StartBroker(FsyncPolicy fsync = FsyncPolicy::kBatch) {
    BrokerOptions options;
    options.clients = Endpoint::Bind(testing::IpcAddress(dir_, "clients"));
    options.workers = Endpoint::Bind(testing::IpcAddress(dir_, "workers"));
    options.heartbeat_interval = 100ms;
    options.queue_defaults.retry_delay = 0ms;
    options.data_dir = (dir_.path() / "data").string();
    options.fsync = fsync;
    broker_ = std::make_unique<Broker>(context_, options);
    broker_->set_log([](std::string_view) {});
    thread_ = std::thread([this] { broker_->Run(); });
  }
  void StopBroker() {
    if (!broker_) return;
    broker_->Stop();
    thread_.join();
    broker_.reset();
  }
  void TearDown() override { StopBroker(); }
  std::unique_ptr<BrokerClient> Client() {
    BrokerClientOptions options;
    options.heartbeat_interval = 100ms;
    return std::make_unique<BrokerClient>(context_, Endpoint::Connect(broker_->clients_endpoint()),
                                          options);
  }

  testing::TempDir dir_;
  zmq::context_t context_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
};

TEST_F(DurabilityTest, ConfirmedUnackedMessagesComeBackAfterARestartInOrderWithTheirAttempts) {
  StartBroker();
  {
    auto producer = Client();
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(producer->Publish("orders", std::to_string(i)).ok());
    ASSERT_TRUE(producer->WaitForConfirms(10s).ok());
    EXPECT_EQ(producer->confirm_level(), ConfirmLevel::kOnDisk);
    auto consumer = Client();
    ASSERT_TRUE(consumer->Consume("orders", 1).ok());
    for (int i = 0; i < 30; ++i) {
      auto delivery = consumer->Receive(5s);
      ASSERT_TRUE(delivery.ok());
      ASSERT_TRUE(consumer->Ack(delivery->tag).ok());
    }
    // "30" is nacked (attempt 1), redelivered to this consumer at once (attempt 2), and taken back
    // when the consumer leaves: after the restart its next delivery is attempt 3.
    auto nacked = consumer->Receive(5s);
    ASSERT_TRUE(nacked.ok());
    ASSERT_TRUE(consumer->Nack(nacked->tag, /*requeue=*/true).ok());
    ASSERT_TRUE(testing::WaitUntil([&] {
      auto stats = consumer->Stats("orders");
      return stats.ok() && stats->at(0).values["acked"] == 30 && stats->at(0).values["requeued"] == 1;
    }));
  }
  // The consumer is gone; wait until the broker has taken its delivery back (and journaled that)
  // before stopping, so the attempt count below does not depend on which arrived first.
  auto observer = Client();
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto stats = observer->Stats("orders");
    return stats.ok() && stats->at(0).values["in_flight"] == 0;
  }));
  observer.reset();
  StopBroker();
  StartBroker();
  EXPECT_NE(broker_->recovery_summary().find("recovered"), std::string::npos);
  auto consumer = Client();
  auto stats = consumer->Stats("orders");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->at(0).values["ready"] + stats->at(0).values["in_flight"], 70u);
  ASSERT_TRUE(consumer->Consume("orders", 100).ok());
  for (int i = 30; i < 100; ++i) {
    auto delivery = consumer->Receive(5s);
    ASSERT_TRUE(delivery.ok()) << i;
    EXPECT_EQ(delivery->envelope.body_view(), std::to_string(i));
    EXPECT_EQ(delivery->envelope.attempt, i == 30 ? 3u : 1u) << i;
  }
}

TEST_F(DurabilityTest, DeadLettersAndDeclarationsSurviveARestart) {
  StartBroker();
  {
    auto client = Client();
    ASSERT_TRUE(client->DeclareExchange("orders", "fanout").ok());
    ASSERT_TRUE(client->Bind("orders", "payment").ok());
    ASSERT_TRUE(client->Bind("orders", "email").ok());
    ASSERT_TRUE(client->Publish("jobs", "poison").ok());
    ASSERT_TRUE(client->Consume("jobs", 1).ok());
    auto delivery = client->Receive(5s);
    ASSERT_TRUE(delivery.ok());
    ASSERT_TRUE(client->Nack(delivery->tag, /*requeue=*/false).ok());
    ASSERT_TRUE(testing::WaitUntil([&] {
      auto stats = client->Stats("jobs");
      return stats.ok() && stats->at(0).values["dlq_depth"] == 1;
    }));
  }
  StopBroker();
  StartBroker();
  auto client = Client();
  PublishOptions to_orders;
  to_orders.exchange = "orders";
  ASSERT_TRUE(client->Publish(Envelope::New("after restart"), to_orders).ok());
  ASSERT_TRUE(client->WaitForConfirms(5s).ok()) << "the exchange and its bindings came back";
  auto stats = client->Stats();
  ASSERT_TRUE(stats.ok());
  std::map<std::string, std::uint64_t> ready;
  for (auto& queue : *stats) ready[queue.name] = queue.values["ready"];
  EXPECT_EQ(ready["payment"], 1u);
  EXPECT_EQ(ready["email"], 1u);
  EXPECT_EQ(ready["jobs.dlq"], 1u);
}

// kill -9 the broker binary after confirms arrived: every confirmed message is delivered after a
// restart on the same data directory.
TEST(DurabilityBinaryTest, EveryConfirmedMessageSurvivesSigkill) {
  testing::TempDir dir;
  const std::string clients = testing::IpcAddress(dir, "clients");
  const std::string data = (dir.path() / "data").string();
  auto start = [&] {
    return std::make_unique<testing::ChildProcess>(
        std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker",
        std::vector<std::string>{"--clients", clients, "--workers", testing::IpcAddress(dir, "w"),
                                 "--heartbeat-ms", "100", "--data-dir", data});
  };
  zmq::context_t context;
  BrokerClientOptions options;
  options.heartbeat_interval = 100ms;
  options.request_timeout = 10s;
  std::set<std::string> confirmed;
  {
    auto broker = start();
    BrokerClient producer(context, Endpoint::Connect(clients), options);
    for (int i = 0; i < 500; ++i) ASSERT_TRUE(producer.Publish("durable", std::to_string(i)).ok());
    ASSERT_TRUE(producer.WaitForConfirms(20s).ok());
    ASSERT_EQ(producer.confirm_level(), ConfirmLevel::kOnDisk);
    for (int i = 0; i < 500; ++i) confirmed.insert(std::to_string(i));
    broker->Signal(SIGKILL);
    ASSERT_TRUE(broker->Wait(5s).has_value());
  }
  auto broker = start();
  BrokerClient consumer(context, Endpoint::Connect(clients), options);
  ASSERT_TRUE(consumer.Consume("durable", 1000).ok());
  std::set<std::string> delivered;
  while (delivered.size() < confirmed.size()) {
    auto delivery = consumer.Receive(10s);
    ASSERT_TRUE(delivery.ok()) << "after " << delivered.size() << " of " << confirmed.size();
    delivered.emplace(delivery->envelope.body_view());
    (void)consumer.Ack(delivery->tag);
  }
  EXPECT_EQ(delivered, confirmed);
  broker->Signal(SIGTERM);
  auto status = broker->Wait(5s);
  ASSERT_TRUE(status && WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST(DurabilityBinaryTest, ADataDirectoryInUseIsARuntimeFailure) {
  testing::TempDir dir;
  const std::string data = (dir.path() / "data").string();
  testing::ChildProcess first(std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker",
                              {"--clients", testing::IpcAddress(dir, "c1"), "--workers",
                               testing::IpcAddress(dir, "w1"), "--data-dir", data});
  ASSERT_TRUE(testing::WaitUntil([&] { return std::filesystem::exists(std::filesystem::path(data) / "LOCK"); }));
  // The lock file appears before the lock is taken; give the first broker a moment to hold it by
  // checking the second's outcome instead of the timing: it must fail with 1 or (if it won the race)
  // the first must — exactly one of them runs.
  testing::ChildProcess second(std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker",
                               {"--clients", testing::IpcAddress(dir, "c2"), "--workers",
                                testing::IpcAddress(dir, "w2"), "--data-dir", data});
  auto status = second.Wait(10s);
  if (!status) {
    auto first_status = first.Wait(10s);
    ASSERT_TRUE(first_status && WIFEXITED(*first_status));
    EXPECT_EQ(WEXITSTATUS(*first_status), 1);
  } else {
    ASSERT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), 1);
  }
}

}  // namespace
}  // namespace zmqkit
