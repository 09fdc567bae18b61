// The delivery contract at the wire, against an in-process broker and a raw DEALER that speaks
// docs/protocol.md: a publish is settled only by a REJECTED or a CONFIRM meant for it, and a
// delivery only by an ack meant for it — across refusals, limits and broker restarts.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "broker/protocol.h"
#include "codec/frames.h"
#include "helpers/test_support.h"
#include "zmqkit/broker.h"
#include "zmqkit/broker_client.h"
#include "zmqkit/envelope_codec.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;
namespace p = internal::protocol;

struct Message {
  std::string command;
  p::Args args;
  std::vector<std::string> payload;
};

// A native client with nothing of BrokerClient's logic: what it sends is exactly what a test says.
class RawClient {
 public:
  RawClient(zmq::context_t& context, const std::string& endpoint, int receive_hwm = 1000)
      : socket_(context, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::rcvhwm, receive_hwm);
    socket_.connect(endpoint);
  }
  void Send(std::string_view command, zmq::message_t args, std::vector<zmq::message_t> payload = {}) {
    auto frames = p::Frames(command, std::move(args), std::move(payload));
    ASSERT_TRUE(internal::SendAll(socket_, frames));
  }
  // [header][body] of a fresh envelope, `count` times.
  static std::vector<zmq::message_t> Envelopes(std::size_t count, std::string_view body = "x") {
    std::vector<zmq::message_t> payload;
    for (std::size_t i = 0; i < count; ++i) {
      std::string header;
      EncodeHeader(Envelope::New(body), header);
      payload.emplace_back(header.data(), header.size());
      payload.emplace_back(body.data(), body.size());
    }
    return payload;
  }
  void Publish(std::uint64_t seq, std::size_t count, const std::string& queue) {
    p::ArgsWriter args(count > 1 ? 3 : 2);
    args.Uint("seq", seq).Str("key", queue);
    if (count > 1) args.Uint("count", count);
    Send(p::kPublish, args.Finish(), Envelopes(count));
  }
  std::optional<Message> Receive(std::chrono::milliseconds timeout) {
    std::vector<zmq::message_t> frames;
    if (internal::RecvAllWithin(socket_, frames, timeout) == 0) return std::nullopt;
    EXPECT_GE(frames.size(), 3u);
    auto args = p::Args::Parse(frames[2].to_string());
    EXPECT_TRUE(args.ok());
    Message message{frames[1].to_string(), std::move(*args), {}};
    for (std::size_t i = 3; i < frames.size(); ++i) message.payload.push_back(frames[i].to_string());
    return message;
  }
  // Reads until `done` holds for a message (returned), or fails the test after `timeout`.
  // Every message read is also kept in log().
  // The broker's instance, from its greeting: asks until one arrives that is not `other` (a
  // restarted broker; what was sent before the connection noticed is lost with it).
  std::string AwaitInstance(const std::string& other = "") {
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < give_up) {
      Send(p::kHeartbeat, p::NoArgs());
      for (auto m = Receive(200ms); m; m = Receive(200ms)) {
        log_.push_back(*m);
        if (m->command != p::kHeartbeat) continue;
        std::string instance = *m->args.Str("instance", "");
        if (instance != other) return instance;
      }
    }
    ADD_FAILURE() << "no greeting from a broker other than " << other;
    return "";
  }
  std::optional<Message> ReceiveUntil(const std::function<bool(const Message&)>& done,
                                      std::chrono::milliseconds timeout = 10s) {
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < give_up) {
      auto message = Receive(100ms);
      if (!message) continue;
      log_.push_back(*message);
      if (done(*message)) return message;
    }
    ADD_FAILURE() << "no awaited message within " << timeout.count() << " ms";
    return std::nullopt;
  }
  const std::vector<Message>& log() const { return log_; }

 private:
  zmq::socket_t socket_;
  std::vector<Message> log_;
};

// What a client following docs/protocol.md section 2 concludes about each seq, from the messages
// in the order it read them: rejected, confirmed, or lost (below a CONFIRM's "from", unsettled).
std::map<std::uint64_t, std::string> Settle(const std::vector<Message>& messages) {
  std::map<std::uint64_t, std::string> fate;
  for (const Message& message : messages) {
    if (message.command == p::kRejected) {
      fate.try_emplace(*message.args.Uint("seq"), "rejected");
    } else if (message.command == p::kConfirm) {
      const std::uint64_t from = *message.args.Uint("from");
      const std::uint64_t upto = *message.args.Uint("upto");
      for (std::uint64_t seq = 1; seq < from; ++seq) fate.try_emplace(seq, "lost");
      for (std::uint64_t seq = from; seq <= upto; ++seq) fate.try_emplace(seq, "confirmed");
    }
  }
  return fate;
}

bool ConfirmsUpTo(const Message& message, std::uint64_t seq) {
  return message.command == p::kConfirm && *message.args.Uint("upto") >= seq;
}

class DeliveryContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.clients = Endpoint::Bind(testing::IpcAddress(dir_, "clients"));
    options_.workers = Endpoint::Bind(testing::IpcAddress(dir_, "workers"));
    options_.heartbeat_interval = 200ms;
    options_.queue_defaults.retry_delay = 0ms;
  }
  void TearDown() override { StopBroker(); }
  void StartBroker() {
    broker_ = std::make_unique<Broker>(context_, options_);
    broker_->set_log([](std::string_view) {});
    thread_ = std::thread([this] { broker_->Run(); });
  }
  void StopBroker() {
    if (!broker_) return;
    broker_->Stop();
    thread_.join();
    broker_.reset();
  }
  std::string endpoint() const { return testing::IpcAddress(dir_, "clients"); }

  testing::TempDir dir_;
  zmq::context_t context_;
  BrokerOptions options_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
};

// ---- A later CONFIRM never covers a publish the broker did not store ----------------------------

TEST_F(DeliveryContractTest, APublishOverMaxFramesIsRejectedSeqBySeqNotCoveredByTheNextConfirm) {
  options_.max_frames = 64;  // 3 + 2n: 30 messages fit, 40 do not
  StartBroker();
  RawClient client(context_, endpoint());
  client.Publish(1, 1, "q");
  client.Publish(2, 40, "q");  // 83 frames: the broker cannot take them
  client.Publish(42, 1, "q");
  client.ReceiveUntil([](const Message& m) { return ConfirmsUpTo(m, 42); });
  auto fate = Settle(client.log());
  EXPECT_EQ(fate[1], "confirmed");
  for (std::uint64_t seq = 2; seq <= 41; ++seq) {
    EXPECT_EQ(fate[seq], "rejected") << "seq " << seq;
  }
  EXPECT_EQ(fate[42], "confirmed");
  for (const Message& m : client.log()) {
    if (m.command == p::kRejected) {
      EXPECT_EQ(*m.args.Str("code"), "limit-reached");
      EXPECT_EQ(*m.args.Str("limit"), "max-frames");
    }
  }
}

TEST_F(DeliveryContractTest, APackedPublishOverMaxPublishBatchIsRejectedWhole) {
  StartBroker();
  RawClient client(context_, endpoint());
  // The greeting says how many one PUBLISH may carry.
  client.Send(p::kHeartbeat, p::NoArgs());
  auto greeting = client.ReceiveUntil([](const Message& m) { return m.command == p::kHeartbeat; });
  ASSERT_TRUE(greeting);
  const std::uint64_t batch = *greeting->args.Uint("max_publish_batch");
  // One more than that, packed: it fits in max_frames, but the limit is on messages.
  const std::uint64_t count = batch + 1;
  std::vector<zmq::message_t> payload;
  std::string scratch;
  for (std::uint64_t i = 0; i < count; ++i) payload.push_back(EncodePacked(Envelope::New("x"), scratch));
  client.Send(p::kPublish, p::ArgsWriter(3).Uint("seq", 1).Str("key", "q").Uint("count", count).Finish(),
              std::move(payload));
  client.Publish(count + 1, 1, "q");
  client.ReceiveUntil([&](const Message& m) { return ConfirmsUpTo(m, count + 1); });
  auto fate = Settle(client.log());
  for (std::uint64_t seq = 1; seq <= count; ++seq) EXPECT_EQ(fate[seq], "rejected") << "seq " << seq;
  EXPECT_EQ(fate[count + 1], "confirmed");
}

// ---- Nothing is dropped on the way to a peer that stopped reading ------------------------------

class FullConnectionTest : public DeliveryContractTest {
 protected:
  void SetUp() override {
    DeliveryContractTest::SetUp();
    // A small send queue per peer, and a peer that is not read for a while but stays alive.
    options_.socket.send_hwm = 50;
    options_.heartbeat_interval = 1s;
    options_.liveness = 100;
    options_.queue_defaults.ack_timeout = 60s;
  }
  std::uint64_t Counter(const std::string& name) {
    BrokerClient admin(context_, Endpoint::Connect(endpoint()));
    auto counters = admin.ServerCounters();
    return counters.ok() && counters->contains(name) ? counters->at(name) : 0;
  }
};

// A consumer with a large prefetch stops reading: what its connection will not take is taken back
// (not left in flight to time out and come back with attempt 2) and delivered once it reads again.
TEST_F(FullConnectionTest, DeliveriesAConsumerDoesNotReadAreHeldBackNotLost) {
  StartBroker();
  constexpr int kMessages = 3000;
  RawClient consumer(context_, endpoint(), /*receive_hwm=*/10);
  consumer.Send(p::kConsume, p::ArgsWriter(4).Uint("rid", 1).Str("queue", "q").Str("consumer", "c")
                                 .Uint("prefetch", kMessages).Finish());
  consumer.ReceiveUntil([](const Message& m) { return m.command == p::kOk; });
  {
    BrokerClient producer(context_, Endpoint::Connect(endpoint()));
    std::vector<Envelope> batch;
    for (int i = 0; i < kMessages; ++i) batch.push_back(Envelope::New(std::to_string(i)));
    ASSERT_TRUE(producer.PublishBatch(batch, PublishOptions{"", "q"}).ok());
    ASSERT_TRUE(producer.WaitForConfirms(10s).ok());
  }
  ASSERT_TRUE(testing::WaitUntil([&] { return Counter("deliveries_withheld") > 0; }))
      << "the connection never filled: the test proves nothing";
  std::map<std::string, std::uint32_t> attempts;
  std::vector<std::uint64_t> tags;
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (attempts.size() < kMessages && std::chrono::steady_clock::now() < give_up) {
    auto message = consumer.Receive(100ms);
    if (!message || message->command != p::kDeliver) continue;
    zmq::message_t frames[] = {zmq::message_t(message->payload.at(0)),
                               zmq::message_t(message->payload.at(1))};
    auto envelope = DecodeFrames(frames, {});
    ASSERT_TRUE(envelope.ok());
    EXPECT_EQ(attempts.count(std::string(envelope->body_view())), 0u) << "delivered twice";
    attempts[std::string(envelope->body_view())] = envelope->attempt;
    tags.push_back(*message->args.Uint("tag"));
  }
  ASSERT_EQ(attempts.size(), static_cast<std::size_t>(kMessages)) << "deliveries were lost";
  for (const auto& [body, attempt] : attempts) EXPECT_EQ(attempt, 1u) << body;
  consumer.Send(p::kAck, p::ArgsWriter(1).UintList("tags", tags).Finish());
  BrokerClient admin(context_, Endpoint::Connect(endpoint()));
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto stats = admin.Stats("q");
    return stats.ok() && stats->at(0).values["acked"] == kMessages;
  }));
}

// A client that asks and does not read: every answer is held until it reads, none is lost, and
// they arrive in the order of its requests.
TEST_F(FullConnectionTest, AnswersToAClientThatDoesNotReadAreHeldInOrder) {
  StartBroker();
  constexpr std::uint64_t kRequests = 3000;
  RawClient client(context_, endpoint(), /*receive_hwm=*/10);
  for (std::uint64_t rid = 1; rid <= kRequests; ++rid) {
    client.Send(p::kStats, p::ArgsWriter(2).Uint("rid", rid).Bool("queues", false).Finish());
  }
  ASSERT_TRUE(testing::WaitUntil([&] { return Counter("answers_held") > 0; }))
      << "the connection never filled: the test proves nothing";
  std::vector<std::uint64_t> rids;
  client.ReceiveUntil([&](const Message& m) {
    if (m.command == p::kOk) rids.push_back(*m.args.Uint("rid"));
    return rids.size() == kRequests;
  }, 20s);
  ASSERT_EQ(rids.size(), kRequests);
  for (std::uint64_t i = 0; i < kRequests; ++i) ASSERT_EQ(rids[i], i + 1) << "out of order";
}

// ---- Journal damage is never a silent loss -----------------------------------------------------

// A byte flipped in a confirmed message's record, in the newest segment's last block: the broker
// refuses to start, naming the place; with salvage it starts, every other message is there, and
// its log says how many messages the damage took.
TEST_F(DeliveryContractTest, AFlippedByteInTheJournalRefusesTheStartAndSalvageCountsTheLoss) {
  options_.data_dir = (dir_.path() / "data").string();
  StartBroker();
  {
    BrokerClient producer(context_, Endpoint::Connect(endpoint()));
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(producer.Publish("q", "message-" + std::to_string(i)).ok());
    ASSERT_TRUE(producer.WaitForConfirms(5s).ok());
    ASSERT_EQ(producer.confirm_level(), ConfirmLevel::kOnDisk);
  }
  StopBroker();
  const auto segment = dir_.path() / "data" / "journal" / "000001.zkj";
  std::string bytes;
  {
    std::ifstream in(segment, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_LT(bytes.size(), 32768u) << "the damage is meant for the last block";
  const std::size_t at = bytes.find("message-17");
  ASSERT_NE(at, std::string::npos);
  bytes[at] ^= 0x20;
  {
    std::ofstream out(segment, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  try {
    Broker refused(context_, options_);
    FAIL() << "started on a damaged journal: " << refused.recovery_summary();
  } catch (const BrokerStartError& error) {
    EXPECT_NE(std::string(error.what()).find("segment 1, offset"), std::string::npos) << error.what();
  }
  options_.salvage = true;
  StartBroker();
  const std::string summary = broker_->recovery_summary();
  EXPECT_NE(summary.find("took the records of 1 message(s)"), std::string::npos) << summary;
  BrokerClient consumer(context_, Endpoint::Connect(endpoint()));
  ASSERT_TRUE(consumer.Consume("q", 100).ok());
  std::set<std::string> bodies;
  while (bodies.size() < 39) {
    auto delivery = consumer.Receive(5s);
    ASSERT_TRUE(delivery.ok()) << delivery.error().ToString() << " after " << bodies.size();
    bodies.insert(std::string(delivery->envelope.body_view()));
  }
  EXPECT_FALSE(bodies.contains("message-17"));
  EXPECT_TRUE(bodies.contains("message-39")) << "records after the damage were kept";
  EXPECT_NE(summary.find("rewritten without the damage"), std::string::npos) << summary;
  // The salvaged journal was rewritten: the next start needs no --salvage.
  StopBroker();
  options_.salvage = false;
  ASSERT_NO_THROW(StartBroker());
  EXPECT_EQ(broker_->recovery_summary().find("SALVAGED"), std::string::npos)
      << broker_->recovery_summary();
}

// ---- A delivery is settled only by an ack meant for it ---------------------------------------

// A consumer busy while the broker restarted acks what it got from the old run. Those tags must
// not name the new run's deliveries: they are answered unknown-delivery-tag and settle nothing.
void ExpectStaleAcksSettleNothing(RawClient& client, const std::function<void()>& restart,
                                  const std::function<void()>& after_restart = [] {}) {
  for (std::uint64_t seq = 1; seq <= 3; ++seq) client.Publish(seq, 1, "q");
  client.ReceiveUntil([](const Message& m) { return ConfirmsUpTo(m, 3); });
  auto consume = [&] {
    client.Send(p::kConsume, p::ArgsWriter(4).Uint("rid", 7).Str("queue", "q").Str("consumer", "c")
                                 .Uint("prefetch", 10).Finish());
    std::vector<std::uint64_t> tags;
    client.ReceiveUntil([&](const Message& m) {
      if (m.command == p::kDeliver) tags.push_back(*m.args.Uint("tag"));
      return tags.size() == 3;
    });
    return tags;
  };
  const std::vector<std::uint64_t> old_tags = consume();
  const std::string old_instance = client.AwaitInstance();
  restart();
  client.AwaitInstance(old_instance);
  after_restart();
  const std::vector<std::uint64_t> new_tags = consume();
  ASSERT_EQ(new_tags.size(), 3u);
  for (std::uint64_t tag : new_tags) {
    EXPECT_EQ(std::count(old_tags.begin(), old_tags.end(), tag), 0) << "tag " << tag << " given twice";
  }
  client.Send(p::kAck, p::ArgsWriter(1).UintList("tags", old_tags).Finish());
  auto error = client.ReceiveUntil([](const Message& m) { return m.command == p::kError; });
  ASSERT_TRUE(error);
  EXPECT_EQ(*error->args.Str("code"), "unknown-delivery-tag");
  // Had the old tags settled the new deliveries, acking those would be refused now.
  const std::size_t before = client.log().size();
  client.Send(p::kAck, p::ArgsWriter(1).UintList("tags", new_tags).Finish());
  client.Send(p::kStats, p::ArgsWriter(2).Uint("rid", 8).Bool("queues", false).Finish());
  client.ReceiveUntil([](const Message& m) { return m.command == p::kOk && *m.args.Uint("rid", 0) == 8; });
  for (std::size_t i = before; i < client.log().size(); ++i) {
    EXPECT_NE(client.log()[i].command, p::kError) << *client.log()[i].args.Str("message", "");
  }
}

TEST_F(DeliveryContractTest, AnAckFromBeforeADurableBrokerRestartedSettlesNothing) {
  options_.data_dir = (dir_.path() / "data").string();
  StartBroker();
  RawClient client(context_, endpoint());
  ExpectStaleAcksSettleNothing(client, [&] {
    StopBroker();
    StartBroker();
  });
}

TEST_F(DeliveryContractTest, AnAckFromBeforeAMemoryBrokerRestartedSettlesNothing) {
  StartBroker();
  RawClient client(context_, endpoint());
  ExpectStaleAcksSettleNothing(
      client,
      [&] {
        StopBroker();
        StartBroker();
      },
      [&] {
        // The messages died with the broker: the client publishes them again.
        for (std::uint64_t seq = 4; seq <= 6; ++seq) client.Publish(seq, 1, "q");
      });
}

}  // namespace
}  // namespace zmqkit
