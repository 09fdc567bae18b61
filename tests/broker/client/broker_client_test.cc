// The broker's semantics through the library's client, against an in-process broker (and, for the
// crash, a consumer in a child process killed with SIGKILL).
#include "zmqkit/broker_client.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <random>
#include <set>
#include <thread>
#include <zmq_addon.hpp>

#include "broker/protocol.h"
#include "codec/frames.h"
#include "helpers/test_support.h"
#include "zmqkit/broker.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;

constexpr auto kHeartbeat = 100ms;

class BrokerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.clients = Endpoint::Bind(testing::IpcAddress(dir_, "clients"));
    options_.workers = Endpoint::Bind(testing::IpcAddress(dir_, "workers"));
    options_.heartbeat_interval = kHeartbeat;
    options_.queue_defaults.retry_delay = 0ms;
  }
  void StartBroker() {
    broker_ = std::make_unique<Broker>(context_, options_);
    broker_->set_log([](std::string_view) {});
    thread_ = std::thread([this] { broker_->Run(); });
  }
  // Stops the broker; its counters may be read afterwards.
  void StopBroker() {
    if (!broker_ || !thread_.joinable()) return;
    broker_->Stop();
    thread_.join();
  }
  void TearDown() override { StopBroker(); }

  std::unique_ptr<BrokerClient> Client(bool auto_extend = true) {
    BrokerClientOptions options;
    options.heartbeat_interval = kHeartbeat;
    options.auto_extend = auto_extend;
    return std::make_unique<BrokerClient>(context_, Endpoint::Connect(broker_->clients_endpoint()),
                                          options);
  }

  testing::TempDir dir_;
  zmq::context_t context_;
  BrokerOptions options_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
};

// A publish that went into a connection which then died has an unknown outcome, and nothing on
// the wire says so unless the client publishes again. Here a stand-in broker reads the publish and
// goes away without confirming; the real broker that takes its place learns from the client's
// heartbeat how far its publishes go and says the publish never reached it. The client sends it
// again (the broker would recognise a second copy), and it is confirmed and stored once — or, with
// republishing off, it is reported as outcome-unknown: never confirmed, never waiting forever.
void PublishIntoAConnectionThatDies(zmq::context_t& context, BrokerClient& client,
                                    const std::string& endpoint) {
  zmq::socket_t stand_in(context, zmq::socket_type::router);
  stand_in.set(zmq::sockopt::linger, 0);
  stand_in.bind(endpoint);
  ASSERT_TRUE(client.Publish("q", "into the void").ok());
  std::vector<zmq::message_t> frames;
  bool got_publish = false;
  const auto give_up = std::chrono::steady_clock::now() + 5s;
  while (!got_publish && std::chrono::steady_clock::now() < give_up) {
    stand_in.set(zmq::sockopt::rcvtimeo, 100);
    frames.clear();
    if (!zmq::recv_multipart(stand_in, std::back_inserter(frames))) continue;
    got_publish = frames.size() > 2 && frames[2].to_string() == "PUBLISH";
  }
  ASSERT_TRUE(got_publish);
}  // the stand-in closes: the publish is gone with it

TEST_F(BrokerClientTest, APublishLostWithItsConnectionIsSentAgainAndStoredOnce) {
  const std::string endpoint = testing::IpcAddress(dir_, "clients");
  BrokerClientOptions client_options;
  client_options.heartbeat_interval = kHeartbeat;
  BrokerClient client(context_, Endpoint::Connect(endpoint), client_options);
  ASSERT_NO_FATAL_FAILURE(PublishIntoAConnectionThatDies(context_, client, endpoint));
  StartBroker();
  const Status confirmed = client.WaitForConfirms(5s);
  EXPECT_TRUE(confirmed.ok()) << confirmed.ToString();
  EXPECT_EQ(client.unconfirmed(), 0u);
  EXPECT_EQ(client.republished(), 1u);
  EXPECT_TRUE(client.TakeRejections().empty());
  auto consumer = Client();
  ASSERT_TRUE(consumer->Consume("q", 10).ok());
  auto delivery = consumer->Receive(5s);
  ASSERT_TRUE(delivery.ok()) << delivery.error().ToString();
  EXPECT_EQ(delivery->envelope.body_view(), "into the void");
  EXPECT_FALSE(consumer->Receive(300ms).ok()) << "stored twice";
}

TEST_F(BrokerClientTest, APublishLostWithItsConnectionIsReportedIfNotSentAgain) {
  const std::string endpoint = testing::IpcAddress(dir_, "clients");
  BrokerClientOptions client_options;
  client_options.heartbeat_interval = kHeartbeat;
  client_options.republish_unknown = false;
  BrokerClient client(context_, Endpoint::Connect(endpoint), client_options);
  ASSERT_NO_FATAL_FAILURE(PublishIntoAConnectionThatDies(context_, client, endpoint));
  StartBroker();
  const Status confirmed = client.WaitForConfirms(5s);
  EXPECT_EQ(confirmed.code(), StatusCode::kResourceExhausted) << confirmed.ToString();
  EXPECT_EQ(client.unconfirmed(), 0u);
  auto rejections = client.TakeRejections();
  ASSERT_EQ(rejections.size(), 1u);
  EXPECT_EQ(rejections[0].seq, 1u);
  EXPECT_EQ(rejections[0].code, "outcome-unknown");
}

// A restarted broker has forgotten every consumer. The client notices the new broker instance in
// its first heartbeat and subscribes again by itself, so a long-running consumer keeps receiving.
TEST_F(BrokerClientTest, AConsumerSubscribesAgainAfterABrokerRestart) {
  StartBroker();
  auto consumer = Client();
  ASSERT_TRUE(consumer->Consume("jobs", 10).ok());
  StopBroker();
  StartBroker();
  auto producer = Client();
  ASSERT_TRUE(producer->Publish("jobs", "after the restart").ok());
  ASSERT_TRUE(producer->WaitForConfirms(5s).ok());
  auto delivery = consumer->Receive(5s);
  ASSERT_TRUE(delivery.ok()) << delivery.error().ToString();
  EXPECT_EQ(delivery->envelope.body_view(), "after the restart");
  bool told = false;
  for (const std::string& error : consumer->TakeErrors()) told |= error.starts_with("broker-restarted");
  EXPECT_TRUE(told);
}

// Deliveries from before a broker restart are void: the new broker gives the messages again. The
// client drops the ones it had prefetched (Receive never returns them), and refuses to ack the one
// the handler held, rather than send its tag to a broker that never gave it.
TEST_F(BrokerClientTest, DeliveriesFromBeforeABrokerRestartAreDroppedAndNeverAcked) {
  options_.data_dir = (dir_.path() / "data").string();
  StartBroker();
  auto producer = Client();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(producer->Publish("jobs", std::to_string(i)).ok());
  ASSERT_TRUE(producer->WaitForConfirms(5s).ok());
  auto consumer = Client();
  ASSERT_TRUE(consumer->Consume("jobs", 10).ok());
  auto held = consumer->Receive(5s);
  ASSERT_TRUE(held.ok()) << held.error().ToString();
  // The other four are prefetched by now (the broker sent them with the first).
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto stats = producer->Stats("jobs");
    return stats.ok() && stats->at(0).values["in_flight"] == 5;
  }));
  StopBroker();
  broker_.reset();  // releases the data directory
  StartBroker();
  // Any call that reads from the broker sees its greeting, which names a new instance.
  ASSERT_TRUE(testing::WaitUntil([&] { return consumer->Stats("jobs").ok(); }));
  // Every message comes again from the new broker, each once: none of the prefetched old ones.
  std::multiset<std::string> bodies;
  std::vector<std::uint64_t> tags;
  while (bodies.size() < 5) {
    auto delivery = consumer->Receive(10s);
    ASSERT_TRUE(delivery.ok()) << delivery.error().ToString();
    bodies.insert(std::string(delivery->envelope.body_view()));
    tags.push_back(delivery->tag);
  }
  EXPECT_EQ(bodies, (std::multiset<std::string>{"0", "1", "2", "3", "4"}));
  auto extra = consumer->Receive(300ms);
  EXPECT_FALSE(extra.ok()) << "a void prefetched delivery came out of Receive: "
                           << (extra.ok() ? std::string(extra->envelope.body_view()) : "");
  Status stale = consumer->Ack(held->tag);
  EXPECT_EQ(stale.code(), StatusCode::kFailedPrecondition) << stale.ToString();
  EXPECT_NE(stale.message().find("broker-restarted"), std::string::npos) << stale.message();
  ASSERT_TRUE(consumer->Ack(tags).ok());
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto stats = producer->Stats("jobs");
    return stats.ok() && stats->at(0).values["acked"] == 5;
  }));
  StopBroker();
  EXPECT_EQ(broker_->counters().unknown_tags, 0u) << "the client sent a tag from the old broker";
}

TEST_F(BrokerClientTest, PublishWithConfirmsThenConsumeAndAck) {
  StartBroker();
  auto producer = Client();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(producer->Publish("work", std::to_string(i)).ok());
  ASSERT_TRUE(producer->WaitForConfirms(5s).ok());
  EXPECT_EQ(producer->unconfirmed(), 0u);
  EXPECT_EQ(producer->confirm_level(), ConfirmLevel::kQueued);

  auto consumer = Client();
  ASSERT_TRUE(consumer->Consume("work", 10).ok());
  for (int i = 0; i < 100; ++i) {
    auto delivery = consumer->Receive(5s);
    ASSERT_TRUE(delivery.ok()) << i << ": " << delivery.error().ToString();
    EXPECT_EQ(delivery->envelope.body_view(), std::to_string(i));
    EXPECT_EQ(delivery->envelope.attempt, 1u);
    EXPECT_EQ(delivery->queue, "work");
    ASSERT_TRUE(consumer->Ack(delivery->tag).ok());
  }
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto stats = consumer->Stats("work");
    return stats.ok() && stats->at(0).values["acked"] == 100;
  }));
  auto stats = consumer->Stats("work");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->at(0).values["ready"], 0u);
  EXPECT_EQ(stats->at(0).values["in_flight"], 0u);
  EXPECT_EQ(stats->at(0).values["published"], 100u);
}

// The seed's food delivery app: the producer publishes and leaves; riders start later.
TEST_F(BrokerClientTest, ALateConsumerGetsEverythingPublishedWhileNoneWasConnected) {
  StartBroker();
  {
    auto producer = Client();
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(producer->Publish("deliveries", "order " + std::to_string(i)).ok());
    ASSERT_TRUE(producer->WaitForConfirms(5s).ok());
  }  // the producer is gone
  auto rider = Client();
  ASSERT_TRUE(rider->Consume("deliveries", 5).ok());
  std::set<std::string> got;
  for (int i = 0; i < 20; ++i) {
    auto delivery = rider->Receive(5s);
    ASSERT_TRUE(delivery.ok());
    got.insert(std::string(delivery->envelope.body_view()));
    (void)rider->Ack(delivery->tag);
  }
  EXPECT_EQ(got.size(), 20u);
}

// With a backlog the broker packs deliveries (up to the client's delivery_batch); Receive() still
// hands them out one by one, in queue order, each with its own tag that settles exactly it.
TEST_F(BrokerClientTest, PackedDeliveriesArriveInQueueOrderAndEachTagSettlesItsMessage) {
  StartBroker();
  auto producer = Client();
  constexpr int kMessages = 500;
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(producer->Publish("packed", std::to_string(i)).ok());
  ASSERT_TRUE(producer->WaitForConfirms(5s).ok());
  auto consumer = Client();
  ASSERT_TRUE(consumer->Consume("packed", 200).ok());
  std::set<std::uint64_t> tags;
  std::vector<std::uint64_t> to_ack;
  for (int i = 0; i < kMessages; ++i) {
    auto delivery = consumer->Receive(5s);
    ASSERT_TRUE(delivery.ok()) << "delivery " << i << ": " << delivery.error().message();
    ASSERT_EQ(delivery->envelope.body_view(), std::to_string(i));
    EXPECT_EQ(delivery->queue, "packed");
    EXPECT_EQ(delivery->envelope.attempt, 1u);
    tags.insert(delivery->tag);
    to_ack.push_back(delivery->tag);
    if (to_ack.size() == 37) {  // acks that cut across the broker's batches
      ASSERT_TRUE(consumer->Ack(to_ack).ok());
      to_ack.clear();
    }
  }
  ASSERT_TRUE(consumer->Ack(to_ack).ok());
  EXPECT_EQ(tags.size(), static_cast<std::size_t>(kMessages));
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto stats = producer->Stats("packed");
    return stats.ok() && stats->front().values["acked"] == kMessages;
  }, 5s));
  auto stats = producer->Stats("packed");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->front().values["in_flight"], 0u);
  EXPECT_EQ(stats->front().values["ready"], 0u);
  EXPECT_TRUE(consumer->TakeErrors().empty());
}

// PublishBatch packs as many messages per PUBLISH as the broker's greeting allows (4 under
// max_frames 11), each confirmed on its own; the consumer sees every envelope's fields intact and
// in order.
TEST_F(BrokerClientTest, APublishBatchIsPackedWithinTheBrokersLimitAndArrivesIntact) {
  options_.max_frames = 11;
  StartBroker();
  auto producer = Client();
  constexpr int kMessages = 103;
  std::vector<Envelope> batch;
  for (int i = 0; i < kMessages; ++i) {
    Envelope envelope = Envelope::New(std::to_string(i));
    envelope.headers["n"] = std::to_string(i);
    batch.push_back(std::move(envelope));
  }
  PublishOptions options;
  options.key = "batched";
  // The first batch may go one message per PUBLISH (the greeting is not in yet); the second is
  // packed. Both must arrive whole either way.
  auto first = producer->PublishBatch(std::span(batch).first(50), options);
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_EQ(*first, 50u);
  ASSERT_TRUE(producer->WaitForConfirms(5s).ok());
  auto second = producer->PublishBatch(std::span(batch).subspan(50), options);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, 53u);
  EXPECT_EQ(producer->last_seq(), static_cast<std::uint64_t>(kMessages));
  ASSERT_TRUE(producer->WaitForConfirms(5s).ok());
  EXPECT_TRUE(producer->TakeRejections().empty());

  auto consumer = Client();
  ASSERT_TRUE(consumer->Consume("batched", 500).ok());
  for (int i = 0; i < kMessages; ++i) {
    auto delivery = consumer->Receive(5s);
    ASSERT_TRUE(delivery.ok());
    EXPECT_EQ(delivery->envelope.body_view(), std::to_string(i));
    EXPECT_EQ(delivery->envelope.headers.at("n"), std::to_string(i));
    EXPECT_EQ(delivery->envelope.id, batch[static_cast<std::size_t>(i)].id);
    ASSERT_TRUE(consumer->Ack(delivery->tag).ok());
  }
  auto counters = producer->ServerCounters();
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ((*counters)["malformed"], 0u) << "no PUBLISH was over the broker's max_frames";
  EXPECT_EQ((*counters)["oversized_messages"], 0u);
}

// The client packs small publishes, [header+body] in one frame, once the broker's greeting has
// said it reads them. A broker from before packed publishes (no "packed_publish" in its greeting),
// and the first publish of a connection, before any greeting, get [header][body]; so does a body
// over the packing limit, and a batch with one in it.
// A client keeps each publish until it is settled, so how many may be unsettled is bounded: at
// the bound it waits for confirms, and a broker that confirms none of them gets nothing more.
TEST_F(BrokerClientTest, PublishesBeyondMaxUnconfirmedWaitForConfirms) {
  const std::string endpoint = testing::IpcAddress(dir_, "silent");
  zmq::socket_t silent(context_, zmq::socket_type::router);  // reads, never answers
  silent.set(zmq::sockopt::linger, 0);
  silent.bind(endpoint);
  BrokerClientOptions options;
  options.heartbeat_interval = kHeartbeat;
  options.request_timeout = 300ms;
  options.max_unconfirmed = 3;
  BrokerClient client(context_, Endpoint::Connect(endpoint), options);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client.Publish("q", "kept").ok());
  const auto before = std::chrono::steady_clock::now();
  auto fourth = client.Publish("q", "one too many");
  ASSERT_FALSE(fourth.ok());
  EXPECT_EQ(fourth.error().code(), StatusCode::kUnavailable) << fourth.error().message();
  EXPECT_GE(std::chrono::steady_clock::now() - before, 300ms) << "it waited for confirms first";
  EXPECT_EQ(client.unconfirmed(), 3u) << "the refused publish was not sent";

  // Against a broker that confirms, a small bound only paces the publisher.
  StartBroker();
  options.max_unconfirmed = 5;
  options.request_timeout = 5000ms;
  BrokerClient paced(context_, Endpoint::Connect(broker_->clients_endpoint()), options);
  std::vector<Envelope> batch;
  for (int i = 0; i < 7; ++i) batch.push_back(Envelope::New("b"));
  PublishOptions to_q;
  to_q.key = "paced";
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(paced.Publish("paced", "m").ok());
    ASSERT_LE(paced.unconfirmed(), 5u);
    if (i % 50 == 0) {
      ASSERT_EQ(*paced.PublishBatch(batch, to_q), 7u);  // a PUBLISH carries at most 5 of them
      ASSERT_LE(paced.unconfirmed(), 5u);
    }
  }
  ASSERT_TRUE(paced.WaitForConfirms(5s).ok());
  auto stats = paced.Stats("paced");
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ(stats->front().values.at("ready"), 300u + 6 * 7);
}

TEST_F(BrokerClientTest, PublishesArePackedOnlyForABrokerThatSaysItReadsThem) {
  namespace p = internal::protocol;
  for (const bool broker_reads_packed : {false, true}) {
    SCOPED_TRACE(broker_reads_packed ? "a broker that reads packed publishes" : "an older broker");
    const std::string endpoint =
        testing::IpcAddress(dir_, broker_reads_packed ? "packing" : "older");
    zmq::socket_t stand_in(context_, zmq::socket_type::router);
    stand_in.set(zmq::sockopt::linger, 0);
    stand_in.set(zmq::sockopt::rcvtimeo, 5000);
    stand_in.bind(endpoint);
    BrokerClientOptions options;
    options.heartbeat_interval = kHeartbeat;
    BrokerClient client(context_, Endpoint::Connect(endpoint), options);
    std::string peer;
    // The payload of the next PUBLISH (the client's heartbeats are passed over).
    auto next_publish = [&] {
      std::vector<zmq::message_t> frames;
      while (true) {
        frames.clear();
        if (!zmq::recv_multipart(stand_in, std::back_inserter(frames))) {
          ADD_FAILURE() << "no PUBLISH within 5 s";
          return frames;
        }
        if (frames.size() > 3 && frames[2].to_string_view() == p::kPublish) break;
      }
      peer = frames[0].to_string();
      frames.erase(frames.begin(), frames.begin() + 4);  // routing id, signature, command, args
      return frames;
    };

    ASSERT_TRUE(client.Publish("q", "before the greeting").ok());
    EXPECT_EQ(next_publish().size(), 2u) << "nothing has said the broker reads packed ones";
    p::ArgsWriter greeting(broker_reads_packed ? 3 : 2);
    greeting.Str("instance", "stand-in").Uint("max_publish_batch", 30);
    if (broker_reads_packed) greeting.Bool("packed_publish", true);
    auto reply = p::Frames(p::kHeartbeat, greeting.Finish());
    reply.insert(reply.begin(), zmq::message_t(peer));
    ASSERT_TRUE(internal::SendAll(stand_in, reply));
    auto confirm = p::Frames(p::kConfirm, p::ArgsWriter(2).Uint("from", 1).Uint("upto", 1).Finish());
    confirm.insert(confirm.begin(), zmq::message_t(peer));
    ASSERT_TRUE(internal::SendAll(stand_in, confirm));
    ASSERT_TRUE(client.WaitForConfirms(5s).ok()) << "the greeting came before the confirm";

    const std::size_t per_message = broker_reads_packed ? 1 : 2;
    ASSERT_TRUE(client.Publish("q", "small").ok());
    auto small = next_publish();
    ASSERT_EQ(small.size(), per_message);
    if (broker_reads_packed) {
      auto decoded = DecodePacked(small[0], {});
      ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
      EXPECT_EQ(decoded->body_view(), "small");
    }
    const std::string over_limit(internal::kPackedBodyLimit + 1, 'x');
    const std::string at_limit(internal::kPackedBodyLimit, 'y');
    ASSERT_TRUE(client.Publish("q", at_limit).ok());
    EXPECT_EQ(next_publish().size(), per_message);
    ASSERT_TRUE(client.Publish("q", over_limit).ok());
    EXPECT_EQ(next_publish().size(), 2u) << "a large body keeps its own frame";

    std::vector<Envelope> batch;
    for (const char* body : {"a", "b", "c"}) batch.push_back(Envelope::New(body));
    PublishOptions to_q;
    to_q.key = "q";
    ASSERT_EQ(*client.PublishBatch(batch, to_q), 3u);
    EXPECT_EQ(next_publish().size(), 3 * per_message);
    batch.push_back(Envelope::New(over_limit));
    ASSERT_EQ(*client.PublishBatch(batch, to_q), 4u);
    EXPECT_EQ(next_publish().size(), 8u) << "one PUBLISH is all packed or all [header][body]";
  }
}

TEST_F(BrokerClientTest, ASigkilledConsumersMessageReachesTheOtherConsumer) {
  StartBroker();
  const std::string marker = (dir_.path() / "doomed-has-it").string();
  testing::ChildProcess doomed(testing::HelperPath("broker_consumer"),
                               {broker_->clients_endpoint(), "riders",
                                std::to_string(kHeartbeat.count()), marker});
  auto producer = Client();
  ASSERT_TRUE(producer->Publish("riders", "pizza for Ada").ok());
  ASSERT_TRUE(producer->WaitForConfirms(5s).ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return std::filesystem::exists(marker); }));

  auto survivor = Client();
  ASSERT_TRUE(survivor->Consume("riders", 1).ok());
  EXPECT_EQ(survivor->Receive(200ms).error().code(), StatusCode::kDeadlineExceeded)
      << "the doomed consumer is alive and still holds the message";
  doomed.Signal(SIGKILL);
  ASSERT_TRUE(doomed.Wait(5s).has_value());
  auto delivery = survivor->Receive(5s);
  ASSERT_TRUE(delivery.ok()) << delivery.error().ToString();
  EXPECT_EQ(delivery->envelope.body_view(), "pizza for Ada");
  EXPECT_EQ(delivery->envelope.attempt, 2u);
}

TEST_F(BrokerClientTest, AStalledConsumersMessageIsRedeliveredAfterTheAckTimeout) {
  StartBroker();
  auto producer = Client();
  ASSERT_TRUE(producer->Publish("jobs", "stuck").ok());
  auto stalled = Client(/*auto_extend=*/false);
  ASSERT_TRUE(stalled->Consume("jobs", 1, "stalled", 300ms).ok());
  auto first = stalled->Receive(5s);
  ASSERT_TRUE(first.ok());
  auto started = std::chrono::steady_clock::now();
  auto healthy = Client();
  ASSERT_TRUE(healthy->Consume("jobs", 1, "healthy").ok());
  auto second = healthy->Receive(5s);
  ASSERT_TRUE(second.ok());
  EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms);
  EXPECT_EQ(second->envelope.id, first->envelope.id);
  EXPECT_EQ(second->envelope.attempt, 2u);
  // The stalled consumer's late ack is refused, and the client reports it.
  ASSERT_TRUE(stalled->Ack(first->tag).ok());
  ASSERT_TRUE(testing::WaitUntil([&] {
    (void)stalled->Receive(10ms);
    auto errors = stalled->TakeErrors();
    return !errors.empty() && errors[0].starts_with("unknown-delivery-tag");
  }));
}

TEST_F(BrokerClientTest, AutoExtendKeepsASlowHandlersMessage) {
  StartBroker();
  auto producer = Client();
  ASSERT_TRUE(producer->Publish("jobs", "slow").ok());
  auto slow = Client(/*auto_extend=*/true);
  ASSERT_TRUE(slow->Consume("jobs", 1, "slow", 300ms).ok());
  auto delivery = slow->Receive(5s);
  ASSERT_TRUE(delivery.ok());
  auto other = Client();
  ASSERT_TRUE(other->Consume("jobs", 1, "other").ok());
  // Four ack timeouts pass while the handler "works": the client extends in the background.
  EXPECT_EQ(other->Receive(1200ms).error().code(), StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(slow->Ack(delivery->tag).ok());
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto stats = other->Stats("jobs");
    return stats.ok() && stats->at(0).values["acked"] == 1;
  }));
  EXPECT_EQ(other->Stats("jobs")->at(0).values["requeued"], 0u);
}

TEST_F(BrokerClientTest, PoisonMessageGoesToTheDlqAndIsRedriven) {
  StartBroker();
  auto client = Client();
  QueueOptions queue;
  queue.max_attempts = 2;
  queue.retry_delay = 0ms;
  ASSERT_TRUE(client->DeclareQueue("payments", queue).ok());
  ASSERT_TRUE(client->Publish("payments", "card 4242").ok());
  ASSERT_TRUE(client->Consume("payments", 1).ok());
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto delivery = client->Receive(5s);
    ASSERT_TRUE(delivery.ok());
    EXPECT_EQ(delivery->envelope.attempt, static_cast<std::uint32_t>(attempt));
    ASSERT_TRUE(client->Nack(delivery->tag, /*requeue=*/true).ok());
  }
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto stats = client->Stats("payments");
    return stats.ok() && stats->at(0).values["dlq_depth"] == 1;
  }));
  EXPECT_EQ(client->Receive(200ms).error().code(), StatusCode::kDeadlineExceeded);
  auto peeked = client->Peek("payments.dlq");
  ASSERT_TRUE(peeked.ok()) << peeked.error().ToString();
  ASSERT_EQ(peeked->size(), 1u);
  EXPECT_EQ(peeked->at(0).body, "card 4242");
  EXPECT_EQ(peeked->at(0).headers.at("x-death-reason"), "max-attempts");
  EXPECT_EQ(peeked->at(0).place, "ready");
  EXPECT_EQ(client->Peek("payments.dlq")->at(0).attempt, peeked->at(0).attempt)
      << "peeking does not count as a delivery";
  auto moved = client->Redrive("payments");
  ASSERT_TRUE(moved.ok()) << moved.error().ToString();
  EXPECT_EQ(*moved, 1u);
  auto again = client->Receive(5s);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->envelope.body_view(), "card 4242");
  EXPECT_EQ(again->envelope.headers["x-attempt-history"], "rejected,rejected");
  EXPECT_EQ(again->envelope.attempt, 1u);
}

TEST_F(BrokerClientTest, FanoutToFourQueuesAndTopicBindings) {
  StartBroker();
  auto admin = Client();
  ASSERT_TRUE(admin->DeclareExchange("orders", "fanout").ok());
  for (const char* queue : {"payment", "email", "inventory", "shipping"}) {
    ASSERT_TRUE(admin->Bind("orders", queue).ok());
  }
  ASSERT_TRUE(admin->DeclareExchange("events", "topic").ok());
  ASSERT_TRUE(admin->Bind("events", "eu", "*.*.eu").ok());
  PublishOptions to_orders;
  to_orders.exchange = "orders";
  Envelope event = Envelope::New("ORDER_CREATED");
  ASSERT_TRUE(admin->Publish(std::move(event), to_orders).ok());
  PublishOptions to_events;
  to_events.exchange = "events";
  to_events.key = "orders.paid.eu";
  ASSERT_TRUE(admin->Publish(Envelope::New("paid in eu"), to_events).ok());
  to_events.key = "orders.paid.us";
  ASSERT_TRUE(admin->Publish(Envelope::New("paid in us"), to_events).ok());
  ASSERT_TRUE(admin->WaitForConfirms(5s).ok());
  auto stats = admin->Stats();
  ASSERT_TRUE(stats.ok());
  std::map<std::string, std::uint64_t> ready;
  for (auto& queue : *stats) ready[queue.name] = queue.values["ready"];
  EXPECT_EQ(ready, (std::map<std::string, std::uint64_t>{
                       {"email", 1}, {"eu", 1}, {"inventory", 1}, {"payment", 1}, {"shipping", 1}}));
}

TEST_F(BrokerClientTest, PriorityOvertakingAndDelayedDelivery) {
  StartBroker();
  auto client = Client();
  PublishOptions to_kitchen;
  to_kitchen.key = "kitchen";
  PublishOptions timer = to_kitchen;
  timer.delay = 400ms;
  ASSERT_TRUE(client->Publish(Envelope::New("check the oven"), timer).ok());
  for (int i = 1; i <= 3; ++i) {
    Envelope pizza = Envelope::New("pizza " + std::to_string(i));
    pizza.priority = 1;
    ASSERT_TRUE(client->Publish(std::move(pizza), to_kitchen).ok());
  }
  Envelope drink = Envelope::New("drink");
  drink.priority = 8;
  ASSERT_TRUE(client->Publish(std::move(drink), to_kitchen).ok());
  ASSERT_TRUE(client->WaitForConfirms(5s).ok());
  auto published_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(client->Consume("kitchen", 1).ok());
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    auto delivery = client->Receive(5s);
    ASSERT_TRUE(delivery.ok());
    order.emplace_back(delivery->envelope.body_view());
    if (order.back() == "check the oven") {
      EXPECT_GE(std::chrono::steady_clock::now() - published_at, 300ms);
    }
    (void)client->Ack(delivery->tag);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"drink", "pizza 1", "pizza 2", "pizza 3", "check the oven"}));
}

TEST_F(BrokerClientTest, RejectedPublishesAreReported) {
  options_.queue_defaults.max_length = 2;
  options_.max_message_bytes = 1000;
  StartBroker();
  auto client = Client();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Publish("small", "x").ok());
  ASSERT_TRUE(client->Publish("other", std::string(2000, 'x')).ok());
  Status status = client->WaitForConfirms(5s);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.ToString();
  auto rejections = client->TakeRejections();
  ASSERT_EQ(rejections.size(), 2u);
  EXPECT_EQ(rejections[0].seq, 3u);
  EXPECT_EQ(rejections[0].code, "queue-full");
  EXPECT_EQ(rejections[1].seq, 4u);
  EXPECT_EQ(rejections[1].code, "message-too-large");
  EXPECT_EQ(client->unconfirmed(), 0u);
}

TEST_F(BrokerClientTest, AdminErrorsAreClear) {
  StartBroker();
  auto client = Client();
  EXPECT_EQ(client->Purge("no-such-queue").error().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(client->Purge("no-such-queue").error().message().find("not-found"), std::string::npos);
  auto started = std::chrono::steady_clock::now();
  Status bad_name = client->Consume("bad name!", 1);
  EXPECT_NE(bad_name.message().find("invalid-argument"), std::string::npos) << bad_name.ToString();
  Status bad_type = client->DeclareExchange("x", "headers");
  EXPECT_NE(bad_type.message().find("invalid-argument"), std::string::npos) << bad_type.ToString();
  Status missing = client->Bind("no-such-exchange", "q");
  EXPECT_NE(missing.message().find("not-found"), std::string::npos) << missing.ToString();
  // Each error answered its call; none waited for the request timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

TEST_F(BrokerClientTest, NoBrokerIsAClearError) {
  BrokerClientOptions options;
  options.request_timeout = 200ms;
  BrokerClient client(context_, Endpoint::Connect(testing::IpcAddress(dir_, "nobody")), options);
  Status status = client.Consume("q", 1);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("is zmqkit-broker running?"), std::string::npos);
}

// With no broker, the connection's queue fills; then each publish is refused to its caller after one
// heartbeat interval, and the client still shuts down promptly instead of hanging on a blocked send.
TEST_F(BrokerClientTest, AnUnreachableBrokerNeitherHangsNorSilentlyDropsCommands) {
  BrokerClientOptions options;
  options.socket.send_hwm = 5;
  options.heartbeat_interval = 50ms;
  auto started = std::chrono::steady_clock::now();
  {
    BrokerClient client(context_, Endpoint::Connect(testing::IpcAddress(dir_, "nobody")), options);
    std::uint64_t refused = 0;
    for (int i = 0; i < 20; ++i) {
      auto published = client.Publish("q", "x");
      if (published.ok()) continue;
      ++refused;
      EXPECT_EQ(published.error().code(), StatusCode::kUnavailable);
      EXPECT_NE(published.error().message().find("PUBLISH was not sent"), std::string::npos)
          << published.error().ToString();
    }
    EXPECT_GT(refused, 0u);
    // A refused publish takes no sequence number: only the queued ones wait for a confirm.
    EXPECT_EQ(client.unconfirmed(), 20 - refused);
    EXPECT_EQ(client.WaitForConfirms(300ms).code(), StatusCode::kDeadlineExceeded);
    EXPECT_EQ(client.Ack(7).code(), StatusCode::kUnavailable);
    // So does a batch none of which was sent; the caller still has every body to send again.
    const std::uint64_t last = client.last_seq();
    std::vector<Envelope> batch;
    for (int i = 0; i < 3; ++i) batch.push_back(Envelope::New("again"));
    PublishOptions to_q;
    to_q.key = "q";
    auto sent = client.PublishBatch(batch, to_q);
    ASSERT_FALSE(sent.ok());
    EXPECT_EQ(sent.error().code(), StatusCode::kUnavailable);
    EXPECT_EQ(client.last_seq(), last);
    for (const Envelope& envelope : batch) EXPECT_EQ(envelope.body_view(), "again");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

// A peer floods garbage at both endpoints while a producer and a consumer do real work: the good
// clients lose nothing and the garbage is counted.
TEST_F(BrokerClientTest, GarbageFromOnePeerDoesNotHurtOthers) {
  StartBroker();
  std::atomic<bool> flooding{true};
  std::thread flooder([&] {
    zmq::socket_t to_clients(context_, zmq::socket_type::dealer);
    zmq::socket_t to_workers(context_, zmq::socket_type::dealer);
    for (auto* socket : {&to_clients, &to_workers}) socket->set(zmq::sockopt::linger, 0);
    to_clients.connect(broker_->clients_endpoint());
    to_workers.connect(broker_->workers_endpoint());
    std::mt19937 random(7);
    while (flooding) {
      for (auto* socket : {&to_clients, &to_workers}) {
        int frames = 1 + static_cast<int>(random() % 5);
        for (int f = 0; f < frames; ++f) {
          std::string bytes(random() % 40, '\0');
          for (char& c : bytes) c = static_cast<char>(random());
          if (f == 0 && random() % 2) bytes = "ZKB1";  // get past the signature sometimes
          if (f == 1 && random() % 2) bytes = "ACK";
          socket->send(zmq::buffer(bytes), f + 1 < frames ? zmq::send_flags::sndmore
                                                          : zmq::send_flags::dontwait);
        }
      }
    }
  });
  auto producer = Client();
  auto consumer = Client();
  ASSERT_TRUE(consumer->Consume("work", 100).ok());
  constexpr int kMessages = 1000;
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(producer->Publish("work", std::to_string(i)).ok());
  ASSERT_TRUE(producer->WaitForConfirms(10s).ok());
  std::set<std::string> got;
  while (got.size() < kMessages) {
    auto delivery = consumer->Receive(5s);
    ASSERT_TRUE(delivery.ok()) << "after " << got.size();
    got.emplace(delivery->envelope.body_view());
    (void)consumer->Ack(delivery->tag);
  }
  flooding = false;
  flooder.join();
  StopBroker();
  EXPECT_EQ(got.size(), std::size_t{kMessages});
  EXPECT_GT(broker_->counters().malformed, 0u);
}

}  // namespace
}  // namespace zmqkit

namespace zmqkit {
namespace {

using namespace std::chrono_literals;

// The same crash against the zmqkit-broker binary: two consumers share a queue, one is SIGKILLed
// holding a message, the other gets it.
TEST(BrokerBinaryClientTest, TwoConsumersShareAQueueAndTheSurvivorGetsTheKilledOnesMessage) {
  testing::TempDir dir;
  const std::string clients = testing::IpcAddress(dir, "clients");
  testing::ChildProcess broker(std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker",
                               {"--clients", clients, "--workers", testing::IpcAddress(dir, "w"),
                                "--heartbeat-ms", "100", "--data-dir", "none"});
  const std::string marker = (dir.path() / "doomed-has-it").string();
  testing::ChildProcess doomed(testing::HelperPath("broker_consumer"),
                               {clients, "shared", "100", marker});
  zmq::context_t context;
  BrokerClientOptions options;
  options.heartbeat_interval = 100ms;
  BrokerClient producer(context, Endpoint::Connect(clients), options);
  BrokerClient survivor(context, Endpoint::Connect(clients), options);
  ASSERT_TRUE(producer.Publish("shared", "first").ok());
  ASSERT_TRUE(producer.WaitForConfirms(10s).ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return std::filesystem::exists(marker); }));
  ASSERT_TRUE(survivor.Consume("shared", 1).ok());
  ASSERT_TRUE(producer.Publish("shared", "second").ok());
  auto second = survivor.Receive(5s);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->envelope.body_view(), "second");
  ASSERT_TRUE(survivor.Ack(second->tag).ok());

  doomed.Signal(SIGKILL);
  ASSERT_TRUE(doomed.Wait(5s).has_value());
  auto first = survivor.Receive(5s);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(first->envelope.body_view(), "first");
  EXPECT_EQ(first->envelope.attempt, 2u);

  broker.Signal(SIGTERM);
  auto status = broker.Wait(5s);
  ASSERT_TRUE(status && WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

}  // namespace
}  // namespace zmqkit

namespace zmqkit {
namespace {

using namespace std::chrono_literals;

// A client too slow to heartbeat has its session expired and its consumers dropped; when it speaks
// again it is told so, subscribes again by itself, and receives what is published afterwards.
TEST(SessionExpiryTest, AnExpiredClientIsToldAndResubscribes) {
  testing::TempDir dir;
  zmq::context_t context;
  BrokerOptions options;
  options.clients = Endpoint::Bind(testing::IpcAddress(dir, "clients"));
  options.workers = Endpoint::Bind(testing::IpcAddress(dir, "workers"));
  options.heartbeat_interval = 100ms;  // dead after 300 ms of silence
  Broker broker(context, options);
  broker.set_log([](std::string_view) {});
  std::thread serving([&] { broker.Run(); });
  struct StopOnExit {  // also when an assertion ends the test early
    Broker& broker;
    std::thread& thread;
    ~StopOnExit() {
      broker.Stop();
      thread.join();
    }
  } stop_on_exit{broker, serving};

  BrokerClientOptions slow;
  slow.heartbeat_interval = 1500ms;  // far too slow for this broker
  BrokerClient consumer(context, Endpoint::Connect(broker.clients_endpoint()), slow);
  ASSERT_TRUE(consumer.Consume("jobs", 10).ok());
  BrokerClientOptions fast;
  fast.heartbeat_interval = 100ms;
  BrokerClient producer(context, Endpoint::Connect(broker.clients_endpoint()), fast);
  // Wait until the broker has dropped the slow consumer.
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto stats = producer.Stats("jobs");
    return stats.ok() && stats->at(0).values["consumers"] == 0;
  }));
  ASSERT_TRUE(producer.Publish("jobs", "after the expiry").ok());
  ASSERT_TRUE(producer.WaitForConfirms(5s).ok());
  // The consumer's next heartbeat brings the notice; it subscribes again and gets the message.
  auto delivery = consumer.Receive(5s);
  ASSERT_TRUE(delivery.ok()) << delivery.error().ToString();
  EXPECT_EQ(delivery->envelope.body_view(), "after the expiry");
  bool told = false;
  for (const std::string& error : consumer.TakeErrors()) told |= error.starts_with("session-expired");
  EXPECT_TRUE(told);
}

}  // namespace
}  // namespace zmqkit
