// The zmqkit command line, run as a user runs it, against the zmqkit-broker binary.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "helpers/test_support.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clients_ = testing::IpcAddress(dir_, "clients");
    broker_ = std::make_unique<testing::ChildProcess>(
        std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker",
        std::vector<std::string>{"--clients", clients_, "--workers", testing::IpcAddress(dir_, "w"),
                                 "--data-dir", (dir_.path() / "data").string(),
                                 "--retry-delay-ms", "0"});
  }
  testing::RunResult Zmqkit(std::vector<std::string> args, const std::string& stdin_text = "") {
    args.insert(args.begin(), {"--broker", clients_, "--timeout", "5"});
    return testing::Run(std::string(ZMQKIT_TOOLS_DIR) + "/zmqkit", args, 20s, stdin_text);
  }

  testing::TempDir dir_;
  std::string clients_;
  std::unique_ptr<testing::ChildProcess> broker_;
};

TEST_F(CliTest, SendQueuesRecv) {
  auto sent = Zmqkit({"send", "orders", "pizza for Ada", "soup for Bob", "--header", "type=ORDER",
                      "--priority", "3"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err;
  EXPECT_EQ(sent.out, "sent 2 of 2 to queue orders, confirmed on disk\n");

  auto queues = Zmqkit({"queues", "--json"});
  ASSERT_EQ(queues.exit_code, 0) << queues.err;
  EXPECT_NE(queues.out.find("\"name\":\"orders\""), std::string::npos) << queues.out;
  EXPECT_NE(queues.out.find("\"ready\":2"), std::string::npos) << queues.out;
  auto table = Zmqkit({"queues"});
  EXPECT_NE(table.out.find("QUEUE"), std::string::npos);
  EXPECT_NE(table.out.find("orders"), std::string::npos);

  auto first = Zmqkit({"recv", "orders", "--json"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("\"body\":\"pizza for Ada\""), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("\"headers\":{\"type\":\"ORDER\"}"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("\"attempt\":1"), std::string::npos) << first.out;
  auto second = Zmqkit({"recv", "orders"});
  EXPECT_EQ(second.out, "soup for Bob\n");
  EXPECT_EQ(second.exit_code, 0) << second.err;
}

// Long work reports progress on stderr — plain lines here, where stderr is not a terminal — and
// stdout keeps only what a script reads.
TEST_F(CliTest, LongSendsAndReceivesShowProgressOnStderrOnly) {
  auto sent = Zmqkit({"send", "bulk", "x", "--count", "2000"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err;
  EXPECT_EQ(sent.out, "sent 2000 of 2000 to queue bulk, confirmed on disk\n");
  EXPECT_NE(sent.err.find("sending [###"), std::string::npos) << sent.err;
  EXPECT_NE(sent.err.find("2000/2000"), std::string::npos) << sent.err;
  EXPECT_EQ(sent.err.find('\r'), std::string::npos) << "terminal control in a non-terminal";

  auto received = Zmqkit({"recv", "bulk", "--count", "2000", "--prefetch", "500"});
  ASSERT_EQ(received.exit_code, 0) << received.err;
  EXPECT_EQ(std::count(received.out.begin(), received.out.end(), '\n'), 2000);
  EXPECT_NE(received.err.find("receiving ["), std::string::npos) << received.err;
}

TEST_F(CliTest, BodiesFromStdinAndFiles) {
  EXPECT_EQ(Zmqkit({"send", "lines"}, "one\ntwo\nthree\n").exit_code, 0);
  const auto file = dir_.path() / "payload.bin";
  { std::ofstream(file) << "file body"; }
  EXPECT_EQ(Zmqkit({"send", "lines", "--file", file.string()}).exit_code, 0);
  auto got = Zmqkit({"recv", "lines", "--count", "4"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out, "one\ntwo\nthree\nfile body\n");
}

TEST_F(CliTest, RejectedMessagesGoToTheDlqAndAreRedriven) {
  ASSERT_EQ(Zmqkit({"send", "payments", "card 4242"}).exit_code, 0);
  EXPECT_EQ(Zmqkit({"recv", "payments", "--settle", "reject"}).exit_code, 0);
  auto listed = Zmqkit({"dlq", "list", "payments"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("rejected after 1 attempt(s) [rejected]  card 4242"), std::string::npos)
      << listed.out;
  EXPECT_NE(listed.out.find("1 message(s) in payments.dlq"), std::string::npos);
  auto again = Zmqkit({"dlq", "list", "payments"});
  EXPECT_EQ(again.out, listed.out) << "listing takes nothing";
  auto moved = Zmqkit({"dlq", "redrive", "payments"});
  EXPECT_EQ(moved.out, "moved 1 message(s) from payments.dlq back to payments\n");
  EXPECT_EQ(Zmqkit({"recv", "payments"}).out, "card 4242\n");
}

TEST_F(CliTest, DeclarePurgeAndExchanges) {
  EXPECT_EQ(Zmqkit({"declare", "exchange", "orders", "--type", "fanout"}).exit_code, 0);
  EXPECT_EQ(Zmqkit({"declare", "bind", "orders", "email"}).exit_code, 0);
  EXPECT_EQ(Zmqkit({"declare", "bind", "orders", "payment"}).exit_code, 0);
  EXPECT_EQ(Zmqkit({"declare", "queue", "payment", "--max-attempts", "2"}).exit_code, 0);
  EXPECT_EQ(Zmqkit({"send", "", "ORDER_CREATED", "--exchange", "orders", "--count", "3"}).exit_code, 0);
  auto queues = Zmqkit({"queues", "--json"});
  EXPECT_NE(queues.out.find("\"name\":\"email\",\"acked\":0,\"bytes\""), std::string::npos) << queues.out;
  auto purged = Zmqkit({"purge", "email"});
  EXPECT_EQ(purged.out, "purged 3 message(s) from email\n");
  EXPECT_EQ(Zmqkit({"recv", "payment", "--count", "3"}).exit_code, 0);
}

TEST_F(CliTest, ErrorsSayWhatToDoAndExitCodesAreConsistent) {
  auto nobody = testing::Run(std::string(ZMQKIT_TOOLS_DIR) + "/zmqkit",
                             {"--broker", testing::IpcAddress(dir_, "nobody"), "--timeout", "0.3", "queues"});
  EXPECT_EQ(nobody.exit_code, 1);
  EXPECT_NE(nobody.err.find("is zmqkit-broker running?"), std::string::npos) << nobody.err;
  EXPECT_EQ(testing::Run(std::string(ZMQKIT_TOOLS_DIR) + "/zmqkit", {}).exit_code, 2);
  EXPECT_EQ(testing::Run(std::string(ZMQKIT_TOOLS_DIR) + "/zmqkit", {"--help"}).exit_code, 0);
  EXPECT_EQ(Zmqkit({"send", "q", "x", "--priority", "12"}).exit_code, 2);
  EXPECT_EQ(Zmqkit({"send", "q", "x", "--header", "no-equals-sign"}).exit_code, 2);
  auto bad_name = Zmqkit({"send", "bad name!", "x"});
  EXPECT_EQ(bad_name.exit_code, 1);
  EXPECT_NE(bad_name.err.find("invalid-argument"), std::string::npos) << bad_name.err;
  auto nothing = Zmqkit({"recv", "empty", "--wait", "0.2"});
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_NE(nothing.err.find("received 0 of 1"), std::string::npos);
  EXPECT_EQ(Zmqkit({"purge", "no-such-queue"}).exit_code, 1);
}

// The CURVE path as a user takes it: keygen, a broker started with the secret certificate, the
// CLI given the public one. Without it the CLI is refused, with a clear error.
TEST(CliCurveTest, KeygenThenAnEncryptedBrokerAndClient) {
  testing::TempDir dir;
  const std::string tools = std::string(ZMQKIT_TOOLS_DIR) + "/zmqkit";
  const std::string cert = (dir.path() / "broker").string();
  auto made = testing::Run(tools, {"keygen", cert}, 10s);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_NE(made.out.find("public key: "), std::string::npos) << made.out;
  EXPECT_NE(testing::Run(tools, {"keygen", cert}, 10s).exit_code, 0) << "overwrote a secret key";

  const std::string clients = testing::IpcAddress(dir, "clients");
  testing::ChildProcess broker(std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker",
                               {"--clients", clients, "--workers", testing::IpcAddress(dir, "w"),
                                "--data-dir", "none", "--curve-secret", cert + "_secret"});
  auto sent = testing::Run(tools, {"--broker", clients, "--server-key", cert, "send", "orders", "soup"}, 20s);
  ASSERT_EQ(sent.exit_code, 0) << sent.err;
  auto got = testing::Run(tools, {"--broker", clients, "--server-key", cert, "recv", "orders"}, 20s);
  EXPECT_EQ(got.out, "soup\n") << got.err;

  auto plain = testing::Run(tools, {"--broker", clients, "--timeout", "1", "queues"}, 20s);
  EXPECT_EQ(plain.exit_code, 1);
  EXPECT_NE(plain.err.find("no broker answered"), std::string::npos) << plain.err;
  auto public_as_secret = testing::Run(std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker",
                                       {"--clients", testing::IpcAddress(dir, "c2"), "--workers",
                                        testing::IpcAddress(dir, "w2"), "--curve-secret", cert},
                                       10s);
  EXPECT_EQ(public_as_secret.exit_code, 2);
  EXPECT_NE(public_as_secret.err.find("holds no secret key"), std::string::npos) << public_as_secret.err;
}

// Roles as an operator sets them up: key pairs for the broker, an admin and a user; the user's
// public certificate in the allow-list directory, the admin's in the admin directory.
TEST(CliCurveTest, AnAllowedUserSendsButOnlyTheAdminPurges) {
  testing::TempDir dir;
  const std::string tools = std::string(ZMQKIT_TOOLS_DIR) + "/zmqkit";
  const std::string broker_bin = std::string(ZMQKIT_DEVICES_DIR) + "/zmqkit-broker";
  namespace fs = std::filesystem;
  fs::create_directories(dir.path() / "keys");
  fs::create_directories(dir.path() / "allowed");
  fs::create_directories(dir.path() / "admins");
  for (const char* name : {"broker", "admin", "alice"}) {
    ASSERT_EQ(testing::Run(tools, {"keygen", (dir.path() / "keys" / name).string()}, 10s).exit_code, 0);
  }
  fs::copy_file(dir.path() / "keys" / "alice", dir.path() / "allowed" / "alice");
  fs::copy_file(dir.path() / "keys" / "admin", dir.path() / "admins" / "admin");
  const std::string keys = (dir.path() / "keys").string() + "/";

  auto no_curve = testing::Run(broker_bin, {"--clients", testing::IpcAddress(dir, "c0"), "--workers",
                                            testing::IpcAddress(dir, "w0"), "--allow-keys",
                                            (dir.path() / "allowed").string()}, 10s);
  EXPECT_EQ(no_curve.exit_code, 2);
  EXPECT_NE(no_curve.err.find("--allow-keys needs --curve-secret"), std::string::npos) << no_curve.err;
  auto bad_ip = testing::Run(broker_bin, {"--clients", testing::IpcAddress(dir, "c1"), "--workers",
                                          testing::IpcAddress(dir, "w1"), "--deny-ip", "10.0.0.0/99"}, 10s);
  EXPECT_EQ(bad_ip.exit_code, 2);
  EXPECT_NE(bad_ip.err.find("--deny-ip"), std::string::npos) << bad_ip.err;

  const std::string clients = testing::IpcAddress(dir, "clients");
  testing::ChildProcess broker(broker_bin, {"--clients", clients, "--workers", testing::IpcAddress(dir, "w"),
                                            "--data-dir", "none", "--curve-secret", keys + "broker_secret",
                                            "--allow-keys", (dir.path() / "allowed").string(),
                                            "--admin-keys", (dir.path() / "admins").string()});
  auto as = [&](const std::string& who, std::vector<std::string> args) {
    args.insert(args.begin(), {"--broker", clients, "--timeout", "3", "--server-key", keys + "broker",
                               "--curve-key", keys + who + "_secret"});
    return testing::Run(tools, args, 20s);
  };
  testing::RunResult sent;
  ASSERT_TRUE(testing::WaitUntil([&] {
    sent = as("alice", {"send", "orders", "soup"});
    return sent.exit_code == 0;
  })) << sent.err;
  auto purge = as("alice", {"purge", "orders"});
  EXPECT_EQ(purge.exit_code, 1);
  EXPECT_NE(purge.err.find("forbidden"), std::string::npos) << purge.err;
  EXPECT_NE(purge.err.find("admin key"), std::string::npos) << purge.err;
  auto purged = as("admin", {"purge", "orders"});
  EXPECT_EQ(purged.exit_code, 0) << purged.err;
  EXPECT_NE(purged.out.find("purged 1 message"), std::string::npos) << purged.out;
  auto counters = as("admin", {"counters", "--json"});
  EXPECT_NE(counters.out.find("\"forbidden\":1"), std::string::npos) << counters.out;
  auto stranger = testing::Run(tools, {"--broker", clients, "--timeout", "1", "--server-key",
                                       keys + "broker", "recv", "orders"}, 20s);
  EXPECT_EQ(stranger.exit_code, 1) << "a fresh key is not on the allow-list";
  EXPECT_NE(stranger.err.find("no broker answered"), std::string::npos) << stranger.err;
}

// Brokerless CURVE from the command line: the binding side holds the secret certificate, the
// connecting side names its public part. A pusher without it never finds the worker.
TEST(CliBrokerlessTest, PushPullWithCurve) {
  testing::TempDir dir;
  const std::string tools = std::string(ZMQKIT_TOOLS_DIR) + "/zmqkit";
  const std::string cert = (dir.path() / "worker").string();
  ASSERT_EQ(testing::Run(tools, {"keygen", cert}, 10s).exit_code, 0);
  const std::string work = testing::IpcAddress(dir, "work");
  testing::RunResult pulled;
  std::thread puller([&] {
    pulled = testing::Run(tools, {"pull", "@" + work, "--curve-secret", cert + "_secret", "--count", "1",
                                  "--wait", "15"});
  });
  auto plain = testing::Run(tools, {"push", work, "plain", "--wait-workers", "1", "--timeout", "1"});
  EXPECT_EQ(plain.exit_code, 1) << "a plain pusher reached a CURVE worker";
  auto pushed = testing::Run(tools, {"push", work, "secret", "--server-key", cert, "--wait-workers", "1",
                                     "--timeout", "10"});
  puller.join();
  EXPECT_EQ(pushed.exit_code, 0) << pushed.err;
  EXPECT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(pulled.out, "secret\n");
}

TEST(CliBrokerlessTest, PushPullAndPubSub) {
  testing::TempDir dir;
  const std::string tools = std::string(ZMQKIT_TOOLS_DIR) + "/zmqkit";
  const std::string work = testing::IpcAddress(dir, "work");
  // The puller binds and waits; the pusher connects, waits for it, and sends.
  testing::RunResult pulled;
  std::thread puller([&] { pulled = testing::Run(tools, {"pull", "@" + work, "--count", "2"}); });
  auto pushed = testing::Run(tools, {"push", work, "a", "b", "--wait-workers", "1", "--timeout", "10"});
  puller.join();
  EXPECT_EQ(pushed.exit_code, 0) << pushed.err;
  EXPECT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(pulled.out, "a\nb\n");

  const std::string news = testing::IpcAddress(dir, "news");
  testing::RunResult heard;
  std::thread subscriber([&] { heard = testing::Run(tools, {"sub", "@" + news, "--topic", "news.", "--count", "1"}); });
  auto published = testing::Run(tools, {"pub", news, "hello", "--topic", "news.today",
                                        "--wait-subscribers", "1", "--timeout", "10"});
  subscriber.join();
  EXPECT_EQ(published.exit_code, 0) << published.err;
  EXPECT_EQ(heard.out, "news.today hello\n");
}

}  // namespace
}  // namespace zmqkit
