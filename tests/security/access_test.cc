// Who may connect and what they may do: the access policy's rules (pure), the key directory, and
// the ZAP handler in front of a real broker and a real device — unknown keys, denied addresses,
// non-admin keys asking for admin commands, refusals counted and logged at a bounded rate.
#include "zmqkit/access_policy.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "helpers/test_support.h"
#include "zmqkit/broker.h"
#include "zmqkit/broker_client.h"
#include "zmqkit/curve.h"
#include "zmqkit/device.h"
#include "zmqkit/socket_factory.h"
#include "zmqkit/zap_server.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;

IpNetwork Net(const std::string& text) {
  auto network = IpNetwork::Parse(text);
  EXPECT_TRUE(network.ok()) << text;
  return network.value_or(IpNetwork{});
}

TEST(IpNetworkTest, MatchesAddressesInsideItsPrefixOnly) {
  EXPECT_TRUE(Net("10.0.0.0/8").Contains("10.200.3.4"));
  EXPECT_FALSE(Net("10.0.0.0/8").Contains("11.0.0.1"));
  EXPECT_TRUE(Net("192.168.1.0/25").Contains("192.168.1.127"));
  EXPECT_FALSE(Net("192.168.1.0/25").Contains("192.168.1.128"));
  EXPECT_TRUE(Net("127.0.0.1").Contains("127.0.0.1")) << "no prefix: one address";
  EXPECT_FALSE(Net("127.0.0.1").Contains("127.0.0.2"));
  EXPECT_TRUE(Net("0.0.0.0/0").Contains("203.0.113.9"));
  EXPECT_TRUE(Net("fd00::/8").Contains("fd12::1"));
  EXPECT_FALSE(Net("fd00::/8").Contains("fe80::1"));
  EXPECT_TRUE(Net("::1").Contains("::1"));
  // libzmq reports IPv4 peers of a dual-stack socket as IPv4-mapped IPv6.
  EXPECT_TRUE(Net("10.0.0.0/8").Contains("::ffff:10.1.2.3"));
  EXPECT_FALSE(Net("10.0.0.0/8").Contains("::1")) << "families do not mix";
  EXPECT_FALSE(Net("::/0").Contains("10.0.0.1"));
  EXPECT_FALSE(Net("10.0.0.0/8").Contains("not an address"));
  EXPECT_FALSE(Net("10.0.0.0/8").Contains(""));
}

TEST(IpNetworkTest, BadNetworksAreClearErrors) {
  for (const char* bad : {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8x", "10.0.0/8",
                          "example.com", "10.0.0.0/-1"}) {
    auto network = IpNetwork::Parse(bad);
    ASSERT_FALSE(network.ok()) << bad;
    EXPECT_NE(network.error().message().find(bad), std::string::npos)
        << "the error should quote the text: " << network.error().message();
  }
}

TEST(AccessPolicyTest, DeniedNetworksFirstThenAllowedNetworksThenKeys) {
  AccessPolicy policy;
  EXPECT_FALSE(policy.active());
  EXPECT_TRUE(Decide(policy, {"10.0.0.1", "NULL", ""}).allowed) << "no rules: everyone";

  policy.allowed_networks.push_back(Net("10.0.0.0/8"));
  policy.denied_networks.push_back(Net("10.9.0.0/16"));
  EXPECT_TRUE(policy.active());
  EXPECT_TRUE(Decide(policy, {"10.1.0.1", "NULL", ""}).allowed);
  auto outside = Decide(policy, {"192.168.0.1", "NULL", ""});
  EXPECT_FALSE(outside.allowed);
  EXPECT_NE(outside.reason.find("not in an allowed network"), std::string::npos);
  auto denied = Decide(policy, {"10.9.1.1", "NULL", ""});
  EXPECT_FALSE(denied.allowed) << "deny wins over allow";
  EXPECT_NE(denied.reason.find("10.9.0.0/16"), std::string::npos);

  const std::string key(40, 'a');
  policy.allowed_keys = std::set<std::string>{key};
  auto plain = Decide(policy, {"10.1.0.1", "NULL", ""});
  EXPECT_FALSE(plain.allowed) << "allowed keys demand CURVE";
  EXPECT_NE(plain.reason.find("CURVE"), std::string::npos);
  auto stranger = Decide(policy, {"10.1.0.1", "CURVE", std::string(40, 'b')});
  EXPECT_FALSE(stranger.allowed);
  EXPECT_NE(stranger.reason.find("not allowed"), std::string::npos);
  auto known = Decide(policy, {"10.1.0.1", "CURVE", key});
  EXPECT_TRUE(known.allowed);
  EXPECT_EQ(known.user_id, key) << "the key is the User-Id the broker authorises by";
  EXPECT_FALSE(Decide(policy, {"10.9.1.1", "CURVE", key}).allowed) << "a good key from a denied net";
}

// A key pair written as NAME_secret in `secrets`, with its public part copied into `directory`.
CurveKeyPair MakeKey(const std::filesystem::path& secrets, const std::filesystem::path& directory,
                     const std::string& name) {
  auto keys = GenerateCurveKeyPair().value();
  std::filesystem::create_directories(secrets);
  std::filesystem::create_directories(directory);
  EXPECT_TRUE(WriteCertificate((secrets / name).string(), keys).ok());
  std::filesystem::copy_file(secrets / name, directory / name,
                             std::filesystem::copy_options::overwrite_existing);
  return keys;
}

TEST(ReadPublicKeysTest, ReadsEveryCertificateAndNamesAFileThatIsNot) {
  testing::TempDir dir;
  const auto allowed = dir.path() / "allowed";
  auto ada = MakeKey(dir.path() / "secrets", allowed, "ada");
  auto bob = MakeKey(dir.path() / "secrets", allowed, "bob");
  std::ofstream(allowed / ".hidden") << "not a certificate, and skipped";
  std::filesystem::create_directories(allowed / "sub");
  auto keys = ReadPublicKeys(allowed.string());
  ASSERT_TRUE(keys.ok()) << keys.error().ToString();
  EXPECT_EQ(*keys, (std::set<std::string>{ada.public_key, bob.public_key}));

  std::ofstream(allowed / "notes.txt") << "ada and bob may connect\n";
  auto bad = ReadPublicKeys(allowed.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("notes.txt"), std::string::npos) << bad.error().message();
  EXPECT_EQ(ReadPublicKeys((dir.path() / "missing").string()).error().code(), StatusCode::kNotFound);
}

// A broker with CURVE, an allow-list of `allowed` keys and `admins`, in a thread.
class AccessBrokerTest : public ::testing::Test {
 protected:
  void StartBroker(std::optional<std::set<std::string>> allowed, std::set<std::string> admins,
                   std::vector<IpNetwork> allow_networks = {},
                   std::vector<IpNetwork> deny_networks = {}, bool curve = true) {
    BrokerOptions options;
    options.clients = Endpoint::Bind(testing::kAnyLoopbackPort);
    options.workers = Endpoint::Bind(testing::kAnyLoopbackPort);
    options.heartbeat_interval = 100ms;
    if (curve) options.socket.curve.server_secret_key = server_keys_.secret_key;
    options.access.allowed_keys = std::move(allowed);
    options.access.allowed_networks = std::move(allow_networks);
    options.access.denied_networks = std::move(deny_networks);
    options.admin_keys = std::move(admins);
    broker_ = std::make_unique<Broker>(context_, options);
    broker_->set_log([this](std::string_view line) {
      std::lock_guard lock(log_mutex_);
      log_.emplace_back(line);
    });
    thread_ = std::thread([this] { broker_->Run(); });
  }
  void TearDown() override {
    if (!broker_) return;
    broker_->Stop();
    thread_.join();
  }
  std::unique_ptr<BrokerClient> Client(const std::optional<CurveKeyPair>& keys) {
    BrokerClientOptions options;
    options.heartbeat_interval = 100ms;
    options.request_timeout = 1500ms;
    if (keys) {
      options.socket.curve.client_public_key = keys->public_key;
      options.socket.curve.client_secret_key = keys->secret_key;
      options.socket.curve.server_public_key = server_keys_.public_key;
    }
    return std::make_unique<BrokerClient>(context_, Endpoint::Connect(broker_->clients_endpoint()),
                                          options);
  }
  std::vector<std::string> LogLines(std::string_view containing) {
    std::lock_guard lock(log_mutex_);
    std::vector<std::string> lines;
    for (const auto& line : log_) {
      if (line.find(containing) != std::string::npos) lines.push_back(line);
    }
    return lines;
  }

  CurveKeyPair server_keys_ = GenerateCurveKeyPair().value();
  CurveKeyPair admin_ = GenerateCurveKeyPair().value();
  CurveKeyPair user_ = GenerateCurveKeyPair().value();
  CurveKeyPair stranger_ = GenerateCurveKeyPair().value();
  zmq::context_t context_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
  std::mutex log_mutex_;
  std::vector<std::string> log_;
};

TEST_F(AccessBrokerTest, AnUnknownKeyCannotConnectPublishConsumeOrReadStats) {
  StartBroker(std::set<std::string>{user_.public_key}, {admin_.public_key});
  auto stranger = Client(stranger_);
  EXPECT_EQ(stranger->Stats().error().code(), StatusCode::kUnavailable);
  EXPECT_EQ(stranger->Consume("orders", 10).code(), StatusCode::kUnavailable);
  // The refused connection is gone (libzmq does not retry a refusal), so there is nowhere even to
  // queue a message: the publish is refused to its caller.
  auto published = stranger->Publish("orders", "from a stranger");
  ASSERT_FALSE(published.ok());
  EXPECT_EQ(published.error().code(), StatusCode::kUnavailable);
  EXPECT_EQ(stranger->unconfirmed(), 0u);

  auto admin = Client(admin_);  // allowed although the allow-list does not name it
  auto counters = admin->ServerCounters();
  ASSERT_TRUE(counters.ok()) << counters.error().ToString();
  auto queues = admin->Stats();
  ASSERT_TRUE(queues.ok());
  for (const auto& queue : *queues) EXPECT_NE(queue.name, "orders") << "the stranger's publish got in";
  EXPECT_TRUE(testing::WaitUntil([&] {
    auto now = admin->ServerCounters();
    return now.ok() && now->at("connections_refused") >= 1;
  })) << "the refusal is counted";
  EXPECT_FALSE(LogLines("connection refused: key " + stranger_.public_key).empty());
}

TEST_F(AccessBrokerTest, APlainClientCannotTalkToAnAllowListBroker) {
  StartBroker(std::set<std::string>{user_.public_key}, {});
  auto plain = Client(std::nullopt);
  EXPECT_EQ(plain->Consume("orders", 1).code(), StatusCode::kUnavailable);
  auto user = Client(user_);
  EXPECT_TRUE(user->Consume("orders", 1).ok());
}

TEST_F(AccessBrokerTest, AnAllowedNonAdminKeyPublishesAndConsumesButCannotAdminister) {
  StartBroker(std::set<std::string>{user_.public_key}, {admin_.public_key});
  auto user = Client(user_);
  ASSERT_TRUE(user->Consume("orders", 10).ok());
  ASSERT_TRUE(user->Publish("orders", "soup").ok());
  ASSERT_TRUE(user->WaitForConfirms(5s).ok());
  auto delivery = user->Receive(5s);
  ASSERT_TRUE(delivery.ok());
  ASSERT_TRUE(user->Ack(delivery->tag).ok());
  ASSERT_TRUE(user->Publish("orders", "bread").ok());
  ASSERT_TRUE(user->WaitForConfirms(5s).ok());

  auto purge = user->Purge("orders");
  ASSERT_FALSE(purge.ok());
  EXPECT_EQ(purge.error().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(purge.error().message().find("forbidden"), std::string::npos);
  EXPECT_NE(purge.error().message().find("admin key"), std::string::npos);
  EXPECT_EQ(user->Stats().error().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(user->DeclareQueue("audit", QueueOptions{}).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(user->Redrive("orders").error().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(user->Peek("orders").error().code(), StatusCode::kPermissionDenied);

  auto admin = Client(admin_);
  auto stats = admin->Stats("orders");
  ASSERT_TRUE(stats.ok()) << stats.error().ToString();
  EXPECT_EQ(stats->at(0).values.at("in_flight") + stats->at(0).values.at("ready"), 1u)
      << "the refused purge took nothing";
  auto purged = admin->Purge("orders");
  ASSERT_TRUE(purged.ok()) << purged.error().ToString();
  EXPECT_TRUE(admin->DeclareQueue("audit", QueueOptions{}).ok());
  EXPECT_EQ(admin->ServerCounters()->at("forbidden"), 5u);
}

TEST_F(AccessBrokerTest, RefusalsAreLoggedAtABoundedRateButAllCounted) {
  StartBroker(std::set<std::string>{user_.public_key}, {admin_.public_key});
  std::vector<std::unique_ptr<BrokerClient>> strangers;
  for (int i = 0; i < 12; ++i) strangers.push_back(Client(GenerateCurveKeyPair().value()));
  auto admin = Client(admin_);
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto counters = admin->ServerCounters();
    return counters.ok() && counters->at("connections_refused") >= 12;
  }));
  ASSERT_TRUE(testing::WaitUntil([&] { return !LogLines("connection refused").empty(); }));
  EXPECT_LE(LogLines("connection refused").size(), 5u) << "one line per refusal would flood the log";
}

TEST_F(AccessBrokerTest, DeniedAndUnlistedAddressesAreRefusedEvenWithoutCurve) {
  StartBroker(std::nullopt, {}, {}, {Net("127.0.0.0/8")}, /*curve=*/false);
  auto denied = Client(std::nullopt);
  EXPECT_EQ(denied->Stats().error().code(), StatusCode::kUnavailable);
  TearDown();
  broker_.reset();

  StartBroker(std::nullopt, {}, {Net("10.0.0.0/8")}, {}, /*curve=*/false);
  EXPECT_EQ(Client(std::nullopt)->Stats().error().code(), StatusCode::kUnavailable);
  TearDown();
  broker_.reset();

  StartBroker(std::nullopt, {}, {Net("127.0.0.1")}, {}, /*curve=*/false);
  EXPECT_TRUE(Client(std::nullopt)->Stats().ok());
}

TEST(AccessOptionsTest, KeysWithoutCurveAreAStartError) {
  zmq::context_t context;
  BrokerOptions options;
  options.clients = Endpoint::Bind(testing::kAnyLoopbackPort);
  options.workers = Endpoint::Bind(testing::kAnyLoopbackPort);
  options.admin_keys = {std::string(40, 'a')};
  EXPECT_THROW(Broker(context, options), BrokerStartError);
}

TEST(AccessDeviceTest, AStreamerTakesWorkOnlyFromAllowedKeys) {
  zmq::context_t context;
  auto server = GenerateCurveKeyPair().value();
  auto producer = GenerateCurveKeyPair().value();
  auto stranger = GenerateCurveKeyPair().value();
  DeviceOptions options;
  options.kind = DeviceKind::kStreamer;
  options.frontend = Endpoint::Bind(testing::kAnyLoopbackPort);
  options.backend = Endpoint::Bind(testing::kAnyLoopbackPort);
  options.socket.curve.server_secret_key = server.secret_key;
  options.access.allowed_keys = std::set<std::string>{producer.public_key};
  Device device(context, options);
  std::thread runner([&] { device.Run(); });

  auto socket_for = [&](zmq::socket_type type, const CurveKeyPair& keys) {
    SocketOptions socket_options;
    socket_options.linger = 0ms;
    socket_options.curve.client_public_key = keys.public_key;
    socket_options.curve.client_secret_key = keys.secret_key;
    socket_options.curve.server_public_key = server.public_key;
    return OpenSocket(context, type, socket_options);
  };
  zmq::socket_t worker = socket_for(zmq::socket_type::pull, producer);  // workers need a key too
  worker.connect(device.backend_endpoint());
  worker.set(zmq::sockopt::rcvtimeo, 3000);
  zmq::socket_t bad = socket_for(zmq::socket_type::push, stranger);
  bad.connect(device.frontend_endpoint());
  (void)bad.send(zmq::str_buffer("from a stranger"), zmq::send_flags::dontwait);
  zmq::socket_t good = socket_for(zmq::socket_type::push, producer);
  good.connect(device.frontend_endpoint());
  ASSERT_TRUE(good.send(zmq::str_buffer("from the producer"), zmq::send_flags::none));

  zmq::message_t got;
  ASSERT_TRUE(worker.recv(got));
  EXPECT_EQ(got.to_string(), "from the producer");
  EXPECT_TRUE(testing::WaitUntil([&] { return device.connections_refused() >= 1; }));
  worker.set(zmq::sockopt::rcvtimeo, 300);
  EXPECT_FALSE(worker.recv(got)) << "the stranger's message got through: " << got.to_string();

  device.Stop();
  runner.join();
}

TEST(ZapServerTest, OneHandlerPerContext) {
  zmq::context_t context;
  ZapServer first(context, AccessPolicy{});
  EXPECT_THROW(ZapServer(context, AccessPolicy{}), zmq::error_t);
}

}  // namespace
}  // namespace zmqkit
