// CURVE: key files, the one switch in SocketOptions, and the broker and its client encrypted —
// proved by reading the bytes on the wire through a relay.
#include "zmqkit/curve.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "helpers/test_support.h"
#include "zmqkit/broker.h"
#include "zmqkit/broker_client.h"
#include "zmqkit/socket_factory.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;

TEST(CurveKeysTest, KeygenWritesAPairThatReadsBackAndNeverOverwritesASecret) {
  testing::TempDir dir;
  const std::string path = (dir.path() / "broker").string();
  auto keys = GenerateCurveKeyPair();
  ASSERT_TRUE(keys.ok()) << keys.error().ToString();
  ASSERT_TRUE(WriteCertificate(path, *keys).ok());

  auto public_part = ReadCertificate(path);
  ASSERT_TRUE(public_part.ok()) << public_part.error().ToString();
  EXPECT_EQ(public_part->public_key, keys->public_key);
  EXPECT_TRUE(public_part->secret_key.empty()) << "the shareable file must not hold the secret";
  auto secret_part = ReadCertificate(path + "_secret");
  ASSERT_TRUE(secret_part.ok());
  EXPECT_EQ(secret_part->public_key, keys->public_key);
  EXPECT_EQ(secret_part->secret_key, keys->secret_key);

  struct stat info {};
  ASSERT_EQ(::stat((path + "_secret").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);

  auto other = GenerateCurveKeyPair();
  Status again = WriteCertificate(path, *other);
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadCertificate(path + "_secret")->secret_key, keys->secret_key);
}

TEST(CurveKeysTest, BadCertificatesAreClearErrors) {
  testing::TempDir dir;
  EXPECT_EQ(ReadCertificate((dir.path() / "missing").string()).error().code(), StatusCode::kNotFound);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream((dir.path() / name).string()) << text;
    return ReadCertificate((dir.path() / name).string());
  };
  auto no_curve = write("plain", "metadata\n    name = \"x\"\n");
  EXPECT_EQ(no_curve.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_curve.error().message().find("no curve/public-key"), std::string::npos);
  auto short_key = write("short", "curve\n    public-key = \"abc\"\n");
  EXPECT_NE(short_key.error().message().find("Z85"), std::string::npos);
}

TEST(CurveOptionsTest, OneSocketIsEitherServerOrCompleteClient) {
  auto server = GenerateCurveKeyPair();
  auto client = GenerateCurveKeyPair();
  CurveOptions both;
  both.server_secret_key = server->secret_key;
  both.server_public_key = server->public_key;
  EXPECT_FALSE(ValidateCurve(both).ok());
  CurveOptions no_server_key;
  no_server_key.client_public_key = client->public_key;
  no_server_key.client_secret_key = client->secret_key;
  EXPECT_NE(ValidateCurve(no_server_key).message().find("server's public key"), std::string::npos);
  zmq::context_t context;
  SocketOptions options;
  options.curve = no_server_key;
  EXPECT_THROW(OpenSocket(context, zmq::socket_type::dealer, options), std::invalid_argument);
}

// Forwards one TCP connection to `target` and keeps every byte that crosses it, both ways.
class RecordingRelay {
 public:
  explicit RecordingRelay(int target_port) : target_port_(target_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    ::listen(listener_, 4);
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~RecordingRelay() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }
  int port() const { return port_; }
  std::string Seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  void Run() {
    pollfd accept_wait{listener_, POLLIN, 0};
    while (!stop_ && ::poll(&accept_wait, 1, 50) <= 0) {
    }
    if (stop_) return;
    const int client = ::accept(listener_, nullptr, nullptr);
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(target_port_));
    ::connect(server, reinterpret_cast<sockaddr*>(&address), sizeof address);
    pollfd both[] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    char buffer[65536];
    while (!stop_) {
      if (::poll(both, 2, 50) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (!(both[i].revents & (POLLIN | POLLHUP))) continue;
        const ssize_t got = ::recv(both[i].fd, buffer, sizeof buffer, 0);
        if (got <= 0) {
          stop_ = true;
          break;
        }
        {
          std::lock_guard lock(mutex_);
          seen_.append(buffer, static_cast<std::size_t>(got));
        }
        (void)::send(both[1 - i].fd, buffer, static_cast<std::size_t>(got), MSG_NOSIGNAL);
      }
    }
    ::close(client);
    ::close(server);
  }

  int target_port_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::string seen_;
};

int PortOf(const std::string& endpoint) { return std::stoi(endpoint.substr(endpoint.rfind(':') + 1)); }

class CurveBrokerTest : public ::testing::Test {
 protected:
  void StartBroker(bool curve) {
    BrokerOptions options;
    options.clients = Endpoint::Bind("tcp://127.0.0.1:*");
    options.workers = Endpoint::Bind("tcp://127.0.0.1:*");
    options.heartbeat_interval = 100ms;
    if (curve) options.socket.curve.server_secret_key = server_keys_.secret_key;
    broker_ = std::make_unique<Broker>(context_, options);
    broker_->set_log([](std::string_view) {});
    thread_ = std::thread([this] { broker_->Run(); });
  }
  void TearDown() override {
    if (!broker_) return;
    broker_->Stop();
    thread_.join();
  }
  // A client through `port` (the broker's, or a relay's), with or without CURVE.
  std::unique_ptr<BrokerClient> Client(int port, bool curve, const std::string& server_public_key = "") {
    BrokerClientOptions options;
    options.heartbeat_interval = 100ms;
    options.request_timeout = 1500ms;
    if (curve) {
      auto mine = GenerateCurveKeyPair();
      options.socket.curve.client_public_key = mine->public_key;
      options.socket.curve.client_secret_key = mine->secret_key;
      options.socket.curve.server_public_key =
          server_public_key.empty() ? server_keys_.public_key : server_public_key;
    }
    return std::make_unique<BrokerClient>(
        context_, Endpoint::Connect("tcp://127.0.0.1:" + std::to_string(port)), options);
  }
  int BrokerPort() const { return PortOf(broker_->clients_endpoint()); }

  CurveKeyPair server_keys_ = GenerateCurveKeyPair().value_or(CurveKeyPair{});
  zmq::context_t context_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
};

constexpr std::string_view kSecretBody = "card 4111-1111-1111-1111 for Ada";

// Publishes and consumes kSecretBody through `client`; true if it came back.
bool RoundTrip(BrokerClient& client) {
  if (!client.Consume("payments", 10).ok()) return false;
  if (!client.Publish("payments", kSecretBody).ok() || !client.WaitForConfirms(5s).ok()) return false;
  auto delivery = client.Receive(5s);
  if (!delivery.ok() || delivery->envelope.body_view() != kSecretBody) return false;
  (void)client.Ack(delivery->tag);
  return client.Stats("payments").ok();  // a round trip: the ack has been sent
}

TEST_F(CurveBrokerTest, AnEncryptedClientWorksAndTheWireCarriesNoClearText) {
  StartBroker(/*curve=*/true);
  RecordingRelay relay(BrokerPort());
  auto client = Client(relay.port(), /*curve=*/true);
  ASSERT_TRUE(RoundTrip(*client));
  const std::string wire = relay.Seen();
  EXPECT_GT(wire.size(), 500u) << "the relay saw the traffic";
  EXPECT_EQ(wire.find("4111-1111"), std::string::npos) << "the body crossed the wire in clear text";
  EXPECT_EQ(wire.find("payments"), std::string::npos) << "the queue name crossed in clear text";
  EXPECT_NE(wire.find("CURVE"), std::string::npos) << "ZMTP names the mechanism in its greeting";
}

TEST_F(CurveBrokerTest, WithoutCurveTheSameTrafficIsReadable) {
  // The control for the test above: the relay does see bodies when nothing encrypts them.
  StartBroker(/*curve=*/false);
  RecordingRelay relay(BrokerPort());
  auto client = Client(relay.port(), /*curve=*/false);
  ASSERT_TRUE(RoundTrip(*client));
  EXPECT_NE(relay.Seen().find("4111-1111"), std::string::npos);
}

TEST_F(CurveBrokerTest, APlainClientOrAWrongServerKeyGetsNothingThrough) {
  StartBroker(/*curve=*/true);
  auto plain = Client(BrokerPort(), /*curve=*/false);
  auto stats = plain->Stats();
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.error().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(plain->Publish("payments", "x").ok() && plain->WaitForConfirms(1s).ok());

  auto impostor_server = GenerateCurveKeyPair();
  auto misled = Client(BrokerPort(), /*curve=*/true, impostor_server->public_key);
  EXPECT_FALSE(misled->Stats().ok());

  auto good = Client(BrokerPort(), /*curve=*/true);
  auto queues = good->Stats();
  ASSERT_TRUE(queues.ok()) << queues.error().ToString();
  for (const auto& queue : *queues) EXPECT_NE(queue.name, "payments") << "the plain publish got in";
}

}  // namespace
}  // namespace zmqkit
