#include "zmqkit/device.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "helpers/test_support.h"
#include "zmqkit/fanout.h"
#include "zmqkit/work_queue.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;
using testing::kAnyLoopbackPort;

std::vector<std::string> RecvStrings(zmq::socket_t& socket, std::chrono::milliseconds timeout) {
  std::vector<std::string> parts;
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return parts;
  zmq::message_t frame;
  do {
    (void)socket.recv(frame);
    parts.push_back(frame.to_string());
  } while (frame.more());
  return parts;
}

void SendStrings(zmq::socket_t& socket, const std::vector<std::string>& parts) {
  for (std::size_t i = 0; i < parts.size(); ++i) {
    socket.send(zmq::buffer(parts[i]),
                i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

// Runs a Device on its own thread for the lifetime of the object.
class RunningDevice {
 public:
  RunningDevice(zmq::context_t& context, DeviceOptions options)
      : device_(context, std::move(options)), thread_([this] { device_.Run(); }) {}
  ~RunningDevice() {
    device_.Stop();
    thread_.join();
  }
  Device& device() { return device_; }

 private:
  Device device_;
  std::thread thread_;
};

TEST(DeviceTest, StreamerPassesMultipartMessagesWholeAndCapturesThem) {
  zmq::context_t context;
  DeviceOptions options;
  options.kind = DeviceKind::kStreamer;
  options.frontend = Endpoint::Bind(kAnyLoopbackPort);
  options.backend = Endpoint::Bind(kAnyLoopbackPort);
  options.capture = Endpoint::Bind(testing::InprocAddress("capture"));
  RunningDevice running(context, options);

  zmq::socket_t capture(context, zmq::socket_type::sub);
  capture.set(zmq::sockopt::subscribe, "");
  capture.connect(running.device().capture_endpoint());
  zmq::socket_t producer(context, zmq::socket_type::push);
  producer.connect(running.device().frontend_endpoint());
  zmq::socket_t worker(context, zmq::socket_type::pull);
  worker.connect(running.device().backend_endpoint());

  const std::vector<std::string> message = {"one", "", std::string("\0three", 6)};
  SendStrings(producer, message);
  EXPECT_EQ(RecvStrings(worker, 5s), message);
  EXPECT_EQ(RecvStrings(capture, 5s), message);
}

TEST(DeviceTest, StreamerCarriesEnvelopesBetweenLibraryClasses) {
  zmq::context_t context;
  DeviceOptions options;
  options.frontend = Endpoint::Bind(kAnyLoopbackPort);
  options.backend = Endpoint::Bind(kAnyLoopbackPort);
  RunningDevice running(context, options);
  Producer producer(context, Endpoint::Connect(running.device().frontend_endpoint()));
  Worker worker(context, Endpoint::Connect(running.device().backend_endpoint()));
  Envelope sent = Envelope::New("via streamer");
  sent.headers["h"] = "v";
  ASSERT_TRUE(producer.Send(sent).ok());
  auto got = worker.Receive(5s);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->id, sent.id);
  EXPECT_EQ(got->headers, sent.headers);
}

TEST(DeviceTest, ForwarderPassesSubscriptionsUpAndMessagesDown) {
  zmq::context_t context;
  DeviceOptions options;
  options.kind = DeviceKind::kForwarder;
  options.frontend = Endpoint::Bind(kAnyLoopbackPort);
  options.backend = Endpoint::Bind(kAnyLoopbackPort);
  RunningDevice running(context, options);
  Publisher publisher(context, Endpoint::Connect(running.device().frontend_endpoint()));
  Subscriber subscriber(context, Endpoint::Connect(running.device().backend_endpoint()));
  subscriber.Subscribe("news.");
  // The subscription travels subscriber -> forwarder -> publisher; the publisher can wait for it.
  ASSERT_TRUE(publisher.WaitForSubscribers(1, "news.today", 5s).ok());
  ASSERT_TRUE(publisher.Publish("sport.today", "filtered").ok());
  ASSERT_TRUE(publisher.Publish("news.today", "forwarded").ok());
  auto got = subscriber.Receive(5s);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->topic, "news.today");
  EXPECT_EQ(got->envelope.body_view(), "forwarded");
  EXPECT_EQ(subscriber.Receive(200ms).error().code(), StatusCode::kDeadlineExceeded);
}

TEST(DeviceTest, StopBeforeRunMakesRunReturn) {
  zmq::context_t context;
  DeviceOptions options;
  options.frontend = Endpoint::Bind(testing::InprocAddress("front"));
  options.backend = Endpoint::Bind(testing::InprocAddress("back"));
  Device device(context, options);
  device.Stop();
  device.Run();  // returns at once: TERMINATE is already waiting
  SUCCEED();
}

// The binaries, as a user runs them.
class DeviceBinaryTest : public ::testing::Test {
 protected:
  static std::string Binary(const std::string& name) {
    return std::string(ZMQKIT_DEVICES_DIR) + "/" + name;
  }
  static int ExitCodeOf(const std::string& binary, const std::vector<std::string>& args) {
    testing::ChildProcess child(Binary(binary), args);
    auto status = child.Wait(10s);
    if (!status || !WIFEXITED(*status)) return -1;
    return WEXITSTATUS(*status);
  }
  testing::TempDir dir_;
};

TEST_F(DeviceBinaryTest, StreamerForwardsAndStopsCleanlyOnSigterm) {
  std::string front = testing::IpcAddress(dir_, "front");
  std::string back = testing::IpcAddress(dir_, "back");
  testing::ChildProcess streamer(Binary("zmqkit-streamer"),
                                 {"--frontend", front, "--backend", back});
  zmq::context_t context;
  ProducerOptions patient;  // the child may still be starting: sends wait for it to bind
  patient.send_timeout = 10s;
  Producer producer(context, Endpoint::Connect(front), patient);
  Worker worker(context, Endpoint::Connect(back));
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(producer.Send(std::to_string(i)).ok());
  for (int i = 0; i < 100; ++i) {
    auto got = worker.Receive(5s);
    ASSERT_TRUE(got.ok()) << "message " << i << ": " << got.error().ToString();
    EXPECT_EQ(got->body_view(), std::to_string(i));
  }
  streamer.Signal(SIGTERM);
  auto status = streamer.Wait(5s);
  ASSERT_TRUE(status.has_value()) << "did not stop on SIGTERM";
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(DeviceBinaryTest, ForwarderStopsCleanlyOnSigint) {
  std::string front = testing::IpcAddress(dir_, "front");
  std::string back = testing::IpcAddress(dir_, "back");
  testing::ChildProcess forwarder(Binary("zmqkit-forwarder"),
                                  {"--frontend", front, "--backend", back});
  zmq::context_t context;
  Publisher publisher(context, Endpoint::Connect(front));
  Subscriber subscriber(context, Endpoint::Connect(back));
  subscriber.Subscribe("");
  ASSERT_TRUE(publisher.WaitForSubscribers(1, "t", 10s).ok());
  ASSERT_TRUE(publisher.Publish("t", "hello").ok());
  auto got = subscriber.Receive(5s);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->envelope.body_view(), "hello");
  forwarder.Signal(SIGINT);
  auto status = forwarder.Wait(5s);
  ASSERT_TRUE(status && WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(DeviceBinaryTest, ExitCodes) {
  EXPECT_EQ(ExitCodeOf("zmqkit-streamer", {"--help"}), 0);
  EXPECT_EQ(ExitCodeOf("zmqkit-forwarder", {"--help"}), 0);
  EXPECT_EQ(ExitCodeOf("zmqkit-streamer", {}), 2);  // required flags missing
  EXPECT_EQ(ExitCodeOf("zmqkit-streamer", {"--frontend", "nonsense", "--backend", "tcp://*:1"}), 2);
  EXPECT_EQ(ExitCodeOf("zmqkit-forwarder",
                       {"--frontend", "udp://1.2.3.4:5", "--backend", "tcp://127.0.0.1:*"}),
            2);
  EXPECT_EQ(ExitCodeOf("zmqkit-streamer", {"--frontend", "tcp://127.0.0.1:*", "--backend",
                                           "tcp://no-such-interface:1"}),
            2);
  // A port already taken is a runtime failure, not a usage error.
  zmq::context_t context;
  zmq::socket_t holder(context, zmq::socket_type::pull);
  holder.bind(kAnyLoopbackPort);
  std::string taken = holder.get(zmq::sockopt::last_endpoint);
  EXPECT_EQ(ExitCodeOf("zmqkit-streamer", {"--frontend", taken, "--backend", "tcp://127.0.0.1:*"}),
            1);
}

}  // namespace
}  // namespace zmqkit
