#include "zmqkit/work_queue.h"

#include <gtest/gtest.h>

#include <array>
#include <iterator>
#include <thread>
#include <zmq_addon.hpp>

#include "helpers/test_support.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;
using testing::kAnyLoopbackPort;

class WorkQueueTest : public ::testing::Test {
 protected:
  zmq::context_t context_;
};

// The seed's worker-queue example: 15 messages over 3 workers is 5 each.
TEST_F(WorkQueueTest, RoundRobinSplitsFifteenFiveFiveFive) {
  Producer producer(context_, Endpoint::Bind(kAnyLoopbackPort));
  std::vector<Worker> workers;
  for (int i = 0; i < 3; ++i) workers.emplace_back(context_, Endpoint::Connect(producer.endpoint()));
  ASSERT_TRUE(producer.WaitForWorkers(3, 5s).ok());

  for (int i = 0; i < 15; ++i) ASSERT_TRUE(producer.Send("task " + std::to_string(i)).ok());

  std::array<int, 3> counts{};
  int total = 0;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (total < 15 && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 3; ++i) {
      auto got = workers[i].Receive(10ms);
      if (got.ok()) {
        ++counts[i];
        ++total;
      }
    }
  }
  EXPECT_EQ(counts, (std::array<int, 3>{5, 5, 5}));
  EXPECT_EQ(producer.stats().sent, 15u);
}

TEST_F(WorkQueueTest, WorkerMayBindAndProducerConnectOverIpc) {
  testing::TempDir dir;
  Worker worker(context_, Endpoint::Bind(testing::IpcAddress(dir, "work")));
  Producer producer(context_, Endpoint::Connect(worker.endpoint()));
  Envelope sent = Envelope::New("over ipc");
  sent.priority = 5;
  sent.headers["k"] = "v";
  ASSERT_TRUE(producer.Send(sent).ok());
  auto got = worker.Receive(5s);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->id, sent.id);
  EXPECT_EQ(got->priority, 5);
  EXPECT_EQ(got->headers.at("k"), "v");
  EXPECT_EQ(got->body_view(), "over ipc");
}

TEST_F(WorkQueueTest, InprocWorks) {
  std::string address = testing::InprocAddress("work");
  Producer producer(context_, Endpoint::Bind(address));
  Worker worker(context_, Endpoint::Connect(address));
  ASSERT_TRUE(producer.Send("inproc").ok());
  auto got = worker.Receive(5s);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->body_view(), "inproc");
}

TEST_F(WorkQueueTest, SendWithoutWorkerTimesOutInsteadOfBlocking) {
  ProducerOptions options;
  options.send_timeout = 100ms;
  Producer producer(context_, Endpoint::Bind(kAnyLoopbackPort), options);
  auto started = std::chrono::steady_clock::now();
  Status status = producer.Send("nobody listens");
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_GE(waited, 90ms);
  EXPECT_LT(waited, 2s);
  EXPECT_EQ(producer.stats().timed_out, 1u);
  EXPECT_EQ(producer.stats().sent, 0u);
}

TEST_F(WorkQueueTest, SendWaitsForAWorkerThatArrivesWithinTheTimeout) {
  ProducerOptions options;
  options.send_timeout = 10s;
  Producer producer(context_, Endpoint::Bind(kAnyLoopbackPort), options);
  std::string address = producer.endpoint();
  std::optional<std::string> received;
  std::thread late_worker([&] {
    std::this_thread::sleep_for(200ms);  // the scenario: the worker starts after the send
    Worker worker(context_, Endpoint::Connect(address));
    auto got = worker.Receive(10s);
    if (got.ok()) received = std::string(got->body_view());
  });
  EXPECT_TRUE(producer.Send("waited for you").ok());
  late_worker.join();
  EXPECT_EQ(received, "waited for you");
}

TEST_F(WorkQueueTest, ReceiveTimesOut) {
  Worker worker(context_, Endpoint::Bind(kAnyLoopbackPort));
  auto got = worker.Receive(20ms);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kDeadlineExceeded);
}

// A peer speaking garbage gets each message rejected with its own reason, and the worker carries on
// serving a well-behaved peer. (Order holds within one peer; the two peers are fair-queued.)
TEST_F(WorkQueueTest, MalformedMessagesAreCountedAndTheSocketKeepsWorking) {
  Worker worker(context_, Endpoint::Bind(kAnyLoopbackPort));
  zmq::socket_t raw(context_, zmq::socket_type::push);
  raw.connect(worker.endpoint());

  auto send_frames = [&](std::vector<std::string> frames) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
      raw.send(zmq::buffer(frames[i]),
               i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  };
  send_frames({"only one frame"});  // read as packed: 'o' is a msgpack integer, not a header
  send_frames({"\x2a", "body"});  // a number, neither an array nor a map
  send_frames({"\xc1", "body"});
  send_frames({"a", "b", "c"});
  Producer good(context_, Endpoint::Connect(worker.endpoint()));
  ASSERT_TRUE(good.Send("still served").ok());

  std::vector<DecodeErrc> reasons;
  std::optional<std::string> good_body;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((!good_body || reasons.size() < 4) && std::chrono::steady_clock::now() < deadline) {
    auto got = worker.Receive(100ms);
    if (got.ok()) {
      good_body = std::string(got->body_view());
    } else if (got.error().code() == StatusCode::kInvalidArgument) {
      ASSERT_TRUE(worker.last_decode_error().has_value());
      reasons.push_back(worker.last_decode_error()->code);
    }
  }
  EXPECT_EQ(good_body, "still served");
  EXPECT_EQ(reasons, (std::vector<DecodeErrc>{DecodeErrc::kHeaderNotArrayOrMap,
                                              DecodeErrc::kHeaderNotArrayOrMap,
                                              DecodeErrc::kMalformedHeader,
                                              DecodeErrc::kExtraFrames}));
  EXPECT_EQ(worker.stats().rejected, 4u);
  EXPECT_EQ(worker.stats().rejected_for(DecodeErrc::kExtraFrames), 1u);
  EXPECT_EQ(worker.stats().received, 1u);
}

// Small bodies travel in one frame with their header (the packed form), bodies over 1 KiB and
// every body with pack_small_bodies off as [header][body]; both decode to what was sent.
TEST_F(WorkQueueTest, SmallBodiesTravelPackedAndLargeOnesInTwoFrames) {
  zmq::socket_t raw(context_, zmq::socket_type::pull);
  raw.set(zmq::sockopt::rcvtimeo, 5000);
  raw.bind("tcp://127.0.0.1:*");
  const std::string endpoint = raw.get(zmq::sockopt::last_endpoint);
  auto receive = [&] {
    std::vector<zmq::message_t> frames;
    EXPECT_TRUE(zmq::recv_multipart(raw, std::back_inserter(frames)).has_value());
    return frames;
  };
  auto body_of = [](std::vector<zmq::message_t>& frames) -> std::string {
    auto decoded = frames.size() == 1 ? DecodePacked(frames[0], {}) : DecodeFrames(frames, {});
    EXPECT_TRUE(decoded.ok()) << decoded.error().ToString();
    return decoded.ok() ? std::string(decoded->body_view()) : "";
  };

  const std::string small = "small", at_limit(1024, 'a'), over_limit(1025, 'b');
  {
    Producer packing(context_, Endpoint::Connect(endpoint));
    for (const std::string& body : {small, at_limit, over_limit}) {
      ASSERT_TRUE(packing.Send(body).ok());
      auto frames = receive();
      EXPECT_EQ(frames.size(), body.size() <= 1024 ? 1u : 2u) << body.size() << "-byte body";
      EXPECT_EQ(body_of(frames), body);
    }
  }
  ProducerOptions classic;
  classic.pack_small_bodies = false;
  Producer framing(context_, Endpoint::Connect(endpoint), classic);
  ASSERT_TRUE(framing.Send(small).ok());
  auto frames = receive();
  EXPECT_EQ(frames.size(), 2u);
  EXPECT_EQ(body_of(frames), small);
}

TEST_F(WorkQueueTest, AWorkerReadsPackedAndFramedMessagesAlike) {
  Worker worker(context_, Endpoint::Bind(kAnyLoopbackPort));
  ProducerOptions classic;
  classic.pack_small_bodies = false;
  Producer packing(context_, Endpoint::Connect(worker.endpoint()));
  Producer framing(context_, Endpoint::Connect(worker.endpoint()), classic);
  for (Producer* producer : {&packing, &framing}) {
    Envelope sent = Envelope::New(producer == &packing ? "packed" : "framed");
    sent.priority = 4;
    sent.headers["form"] = std::string(sent.body_view());
    ASSERT_TRUE(producer->Send(sent).ok());
    auto got = worker.Receive(5s);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(got->id, sent.id);
    EXPECT_EQ(got->priority, 4);
    EXPECT_EQ(got->headers, sent.headers);
    EXPECT_EQ(got->body_view(), sent.body_view());
  }
  EXPECT_EQ(worker.stats().received, 2u);
  EXPECT_EQ(worker.stats().rejected, 0u);
}

TEST_F(WorkQueueTest, BadEndpointThrowsAtConstruction) {
  EXPECT_THROW(Producer(context_, Endpoint::Bind("tcp://not-an-address")), zmq::error_t);
}

}  // namespace
}  // namespace zmqkit
