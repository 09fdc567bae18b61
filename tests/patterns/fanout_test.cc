#include "zmqkit/fanout.h"

#include <gtest/gtest.h>

#include <iterator>
#include <thread>
#include <zmq_addon.hpp>

#include "helpers/test_support.h"
#include "zmqkit/typed_body.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;
using testing::kAnyLoopbackPort;

class FanoutTest : public ::testing::Test {
 protected:
  // Receives until `count` publications arrived or nothing arrives for `quiet`.
  std::vector<Publication> Drain(Subscriber& subscriber, std::size_t count,
                                 std::chrono::milliseconds quiet = 2s) {
    std::vector<Publication> got;
    while (got.size() < count) {
      auto publication = subscriber.Receive(quiet);
      if (!publication.ok()) break;
      got.push_back(std::move(publication).value());
    }
    return got;
  }

  zmq::context_t context_;
};

TEST_F(FanoutTest, EverySubscriberGetsTheMessage) {
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort));
  std::vector<Subscriber> subscribers;
  for (int i = 0; i < 4; ++i) {
    subscribers.emplace_back(context_, Endpoint::Connect(publisher.endpoint()));
    subscribers.back().Subscribe("orders.");
  }
  ASSERT_TRUE(publisher.WaitForSubscribers(4, "orders.created", 5s).ok());
  ASSERT_TRUE(publisher.Publish("orders.created", "order 1").ok());
  for (auto& subscriber : subscribers) {
    auto got = subscriber.Receive(5s);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(got->topic, "orders.created");
    EXPECT_EQ(got->envelope.body_view(), "order 1");
    EXPECT_EQ(got->envelope.seq, 1u);
    EXPECT_EQ(got->envelope.stream, publisher.stream_id());
  }
}

TEST_F(FanoutTest, TopicPrefixFiltering) {
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort));
  Subscriber orders(context_, Endpoint::Connect(publisher.endpoint()));
  orders.Subscribe("orders.");
  ASSERT_TRUE(publisher.WaitForSubscribers(1, "orders.", 5s).ok());
  ASSERT_TRUE(publisher.Publish("payments.done", "no").ok());
  ASSERT_TRUE(publisher.Publish("orders.created", "yes").ok());
  ASSERT_TRUE(publisher.Publish("orders", "no: shorter than the prefix").ok());
  auto got = Drain(orders, 3, 300ms);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].envelope.body_view(), "yes");
  // Filtering happens at the publisher, so the subscriber sees seq 2 after nothing: a "gap" that is
  // only its filter. Gap counting is meaningful per topic the subscriber takes in full.
  EXPECT_EQ(got[0].envelope.seq, 2u);
}

TEST_F(FanoutTest, SubscribeAndUnsubscribeAtRunTime) {
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort));
  Subscriber subscriber(context_, Endpoint::Connect(publisher.endpoint()));
  subscriber.Subscribe("a");
  ASSERT_TRUE(publisher.WaitForSubscribers(1, "a", 5s).ok());
  ASSERT_TRUE(publisher.Publish("a", "first").ok());
  ASSERT_EQ(Drain(subscriber, 1).size(), 1u);

  subscriber.Subscribe("b");
  subscriber.Unsubscribe("a");
  ASSERT_TRUE(publisher.WaitForSubscribers(1, "b", 5s).ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return publisher.MatchingSubscriptions("a") == 0; }));
  ASSERT_TRUE(publisher.Publish("a", "after unsubscribe").ok());
  ASSERT_TRUE(publisher.Publish("b", "second").ok());
  auto got = Drain(subscriber, 2, 300ms);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].envelope.body_view(), "second");
}

// The slow joiner: without waiting, what is published before the subscription arrives is lost, and
// the subscriber can tell how much. The early messages go out before the subscriber even connects,
// so they are lost on every run rather than on most (a subscription racing the publishes can win
// under a slow build, as it did under the sanitizers).
TEST_F(FanoutTest, SlowJoinerLosesTheFirstMessagesWithoutWaiting) {
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort));
  for (int i = 0; i < 100; ++i) (void)publisher.Publish("t", "early");
  Subscriber subscriber(context_, Endpoint::Connect(publisher.endpoint()));
  subscriber.Subscribe("");
  ASSERT_TRUE(publisher.WaitForSubscribers(1, "t", 5s).ok());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(publisher.Publish("t", "late").ok());

  auto received = Drain(subscriber, 200, 500ms);
  ASSERT_EQ(received.size(), 100u);
  EXPECT_EQ(received.front().envelope.body_view(), "late");
  EXPECT_EQ(subscriber.sequence().totals().missed_before_join, 100u);
  EXPECT_EQ(subscriber.sequence().totals().missing, 0u);
}

TEST_F(FanoutTest, WaitingForSubscribersLosesNothing) {
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort));
  Subscriber subscriber(context_, Endpoint::Connect(publisher.endpoint()));
  subscriber.Subscribe("");
  ASSERT_TRUE(publisher.WaitForSubscribers(1, "t", 5s).ok());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(publisher.Publish("t", "x").ok());
  EXPECT_EQ(Drain(subscriber, 1000).size(), 1000u);
  EXPECT_EQ(subscriber.sequence().totals().missed_before_join, 0u);
  EXPECT_EQ(subscriber.sequence().totals().missing, 0u);
}

TEST_F(FanoutTest, WaitForSubscribersTimesOutWithACount) {
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort));
  Status status = publisher.WaitForSubscribers(1, "t", 50ms);
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(status.message().find("0 of 1"), std::string::npos) << status.message();
}

// A subscriber that stops reading: the publisher counts each message dropped at the HWM, and the
// subscriber sees exactly those as missing.
TEST_F(FanoutTest, DropsAtTheHighWaterMarkAreCountedOnBothSides) {
  PublisherOptions publisher_options;
  publisher_options.socket.send_hwm = 50;
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort), publisher_options);
  SubscriberOptions subscriber_options;
  subscriber_options.socket.recv_hwm = 50;
  Subscriber subscriber(context_, Endpoint::Connect(publisher.endpoint()), subscriber_options);
  subscriber.Subscribe("");
  ASSERT_TRUE(publisher.WaitForSubscribers(1, "t", 5s).ok());

  constexpr int kBurst = 20000;
  for (int i = 0; i < kBurst; ++i) {
    Status status = publisher.Publish("t", "burst");
    ASSERT_TRUE(status.ok() || status.code() == StatusCode::kResourceExhausted);
  }
  EXPECT_GT(publisher.stats().dropped_at_hwm, 0u);
  EXPECT_EQ(publisher.stats().published + publisher.stats().dropped_at_hwm, uint64_t{kBurst});

  Drain(subscriber, kBurst, 300ms);  // now read everything that made it
  // One more, into an empty queue, so drops at the very end show up as a gap too.
  ASSERT_TRUE(publisher.Publish("t", "last").ok());
  Drain(subscriber, 1);
  EXPECT_EQ(subscriber.sequence().totals().missing, publisher.stats().dropped_at_hwm);
  EXPECT_EQ(subscriber.sequence().totals().received, publisher.stats().published);
}

TEST_F(FanoutTest, HwmWaitPacesThePublisherInsteadOfDropping) {
  PublisherOptions publisher_options;
  publisher_options.socket.send_hwm = 10;
  publisher_options.hwm_wait = 10s;
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort), publisher_options);
  SubscriberOptions subscriber_options;
  subscriber_options.socket.recv_hwm = 10;
  Subscriber subscriber(context_, Endpoint::Connect(publisher.endpoint()), subscriber_options);
  subscriber.Subscribe("");
  ASSERT_TRUE(publisher.WaitForSubscribers(1, "t", 5s).ok());
  constexpr int kCount = 2000;
  std::size_t received = 0;
  std::thread reader([&] { received = Drain(subscriber, kCount).size(); });
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(publisher.Publish("t", "paced").ok());
  reader.join();
  EXPECT_EQ(received, std::size_t{kCount});
  EXPECT_EQ(publisher.stats().dropped_at_hwm, 0u);
  EXPECT_EQ(subscriber.sequence().totals().missing, 0u);
}

// Sequence damage seen on the wire (here from a hand-driven PUB socket) is counted.
TEST_F(FanoutTest, SubscriberCountsGapsAndDuplicatesFromTheWire) {
  zmq::socket_t raw(context_, zmq::socket_type::pub);
  raw.bind(kAnyLoopbackPort);
  std::string address = raw.get(zmq::sockopt::last_endpoint);
  Subscriber subscriber(context_, Endpoint::Connect(address));
  subscriber.Subscribe("");
  std::string scratch;
  auto send = [&](uint64_t seq) {
    Envelope envelope = Envelope::New("x");
    envelope.seq = seq;
    envelope.stream = "raw";
    scratch.clear();
    EncodeHeader(envelope, scratch);
    raw.send(zmq::str_buffer("t"), zmq::send_flags::sndmore);
    raw.send(zmq::buffer(scratch), zmq::send_flags::sndmore);
    raw.send(zmq::str_buffer("x"));
  };
  // PUB has no subscription feedback: repeat seq 1 until the subscriber sees it.
  ASSERT_TRUE(testing::WaitUntil([&] {
    send(1);
    return subscriber.Receive(5ms).ok();
  }));
  for (uint64_t seq : {2, 5, 5, 3, 4, 6}) send(seq);
  EXPECT_EQ(Drain(subscriber, 6).size(), 6u);
  const auto& totals = subscriber.sequence().totals();
  EXPECT_EQ(totals.gaps, 1u);
  EXPECT_EQ(totals.missing, 0u);  // 3 and 4 arrived late
  EXPECT_EQ(totals.late, 2u);
  EXPECT_GE(totals.duplicates, 1u);  // the repeated 5, plus any extra seq 1 sent while waiting
}

struct OrderCreated {
  std::string order_id;
  double total = 0;
  std::vector<std::string> items;
  MSGPACK_DEFINE_MAP(order_id, total, items)
};

// A Publisher sends small bodies topic-packed, [topic+header+body+n], larger ones and everything
// with pack_small_bodies off as [topic][header][body], and a Subscriber reads both with topic,
// sequence and stream intact.
TEST_F(FanoutTest, SmallBodiesTravelTopicPackedAndSubscribersReadBothForms) {
  PublisherOptions classic;
  classic.pack_small_bodies = false;
  Publisher packing(context_, Endpoint::Bind(kAnyLoopbackPort));
  Publisher framing(context_, Endpoint::Bind(kAnyLoopbackPort), classic);
  zmq::socket_t raw(context_, zmq::socket_type::sub);
  raw.set(zmq::sockopt::rcvtimeo, 5000);
  raw.set(zmq::sockopt::subscribe, "");
  Subscriber subscriber(context_, Endpoint::Connect(packing.endpoint()));
  subscriber.Subscribe("");
  subscriber.Attach(Endpoint::Connect(framing.endpoint()));
  for (Publisher* publisher : {&packing, &framing}) {
    raw.connect(publisher->endpoint());
    ASSERT_TRUE(publisher->WaitForSubscribers(2, "t", 5s).ok());
  }

  struct Case {
    Publisher* publisher;
    std::size_t body_size;
    std::size_t frames;
  };
  for (const Case& c : {Case{&packing, 5, 1}, Case{&packing, 1024, 1}, Case{&packing, 1025, 3},
                        Case{&framing, 5, 3}}) {
    const std::string body(c.body_size, c.publisher == &packing ? 'p' : 'f');
    ASSERT_TRUE(c.publisher->Publish("t", body).ok());
    std::vector<zmq::message_t> frames;
    ASSERT_TRUE(zmq::recv_multipart(raw, std::back_inserter(frames)).has_value());
    ASSERT_EQ(frames.size(), c.frames) << c.body_size;
    EXPECT_EQ(frames[0].to_string_view().substr(0, 1), "t");  // the topic first, either way
    auto got = subscriber.Receive(5s);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(got->topic, "t");
    EXPECT_EQ(got->envelope.body_view(), body);
    EXPECT_EQ(got->envelope.seq, c.publisher->last_seq());
    EXPECT_EQ(got->envelope.stream, c.publisher->stream_id());
  }
  EXPECT_EQ(subscriber.stats().rejected, 0u);
}

// The topic-packed form states a topic's length in 16 bits; a longer topic goes in the frame form
// whatever the body's size, and a reader whose limit allows it gets it whole.
TEST_F(FanoutTest, ATopicTooLongForTheTopicPackedFormGoesInThreeFrames) {
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort));
  SubscriberOptions options;
  options.limits.max_topic_bytes = kTopicPackedMaxTopic + 1;
  Subscriber subscriber(context_, Endpoint::Connect(publisher.endpoint()), options);
  subscriber.Subscribe("");
  zmq::socket_t raw(context_, zmq::socket_type::sub);
  raw.set(zmq::sockopt::rcvtimeo, 5000);
  raw.set(zmq::sockopt::subscribe, "");
  raw.connect(publisher.endpoint());
  ASSERT_TRUE(publisher.WaitForSubscribers(2, "", 5s).ok());

  const std::string longest(kTopicPackedMaxTopic, 'l');
  const std::string too_long(kTopicPackedMaxTopic + 1, 't');
  for (const std::string* topic : {&longest, &too_long}) {
    ASSERT_TRUE(publisher.Publish(*topic, "small").ok());
    std::vector<zmq::message_t> frames;
    ASSERT_TRUE(zmq::recv_multipart(raw, std::back_inserter(frames)).has_value());
    EXPECT_EQ(frames.size(), topic == &longest ? 1u : 3u);
    auto got = subscriber.Receive(5s);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(got->topic, *topic);
    EXPECT_EQ(got->envelope.body_view(), "small");
  }
}

// libzmq matches a subscription against a topic-packed message's first bytes, which run on from
// the topic into the header. A subscription longer than a topic can then match the topic plus the
// header's first byte; the Subscriber drops such a message, counts it, and serves the next one.
TEST_F(FanoutTest, ASubscriptionMatchingHeaderBytesDoesNotDeliverAShorterTopic) {
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort));
  // The first byte of a Publisher's header: an array with the extension map, whatever the values.
  Envelope stamped = Envelope::New();
  stamped.seq = 1;
  stamped.stream = publisher.stream_id();
  std::string header;
  EncodeHeader(stamped, header);
  const std::string header_start = header.substr(0, 1);
  const std::string reaching_into_header = "ord" + header_start;

  Subscriber subscriber(context_, Endpoint::Connect(publisher.endpoint()));
  subscriber.Subscribe(reaching_into_header);
  zmq::socket_t raw(context_, zmq::socket_type::sub);  // libzmq alone, for comparison
  raw.set(zmq::sockopt::rcvtimeo, 5000);
  raw.set(zmq::sockopt::subscribe, reaching_into_header);
  raw.connect(publisher.endpoint());
  ASSERT_TRUE(publisher.WaitForSubscribers(2, reaching_into_header, 5s).ok());

  const std::string matching_topic = reaching_into_header + "z";
  ASSERT_TRUE(publisher.Publish("ord", "not subscribed").ok());
  ASSERT_TRUE(publisher.Publish(matching_topic, "subscribed").ok());
  // libzmq lets both through ...
  for (int i = 0; i < 2; ++i) {
    std::vector<zmq::message_t> frames;
    ASSERT_TRUE(zmq::recv_multipart(raw, std::back_inserter(frames)).has_value());
  }
  // ... the Subscriber delivers only the one subscribed to, within a single Receive.
  auto got = subscriber.Receive(5s);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->topic, matching_topic);
  EXPECT_EQ(got->envelope.body_view(), "subscribed");
  EXPECT_EQ(subscriber.stats().not_subscribed, 1u);
  EXPECT_EQ(subscriber.stats().received, 1u);
  EXPECT_EQ(subscriber.stats().rejected, 0u);
  // A dropped message with nothing after it ends a Receive as "nothing arrived in time".
  ASSERT_TRUE(publisher.Publish("ord", "not subscribed either").ok());
  std::vector<zmq::message_t> frames;
  ASSERT_TRUE(zmq::recv_multipart(raw, std::back_inserter(frames)).has_value());
  auto nothing = subscriber.Receive(1s);
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.error().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(subscriber.stats().not_subscribed, 2u);
}

TEST_F(FanoutTest, AMalformedOneFrameMessageIsRejectedAndTheNextOneServed) {
  zmq::socket_t raw(context_, zmq::socket_type::xpub);
  raw.bind("tcp://127.0.0.1:*");
  Subscriber subscriber(context_, Endpoint::Connect(raw.get(zmq::sockopt::last_endpoint)));
  subscriber.Subscribe("");
  zmq::message_t notice;
  ASSERT_TRUE(raw.recv(notice));  // the subscription has arrived
  // A topic alone is read as a topic-packed frame too short for its trailer.
  raw.send(zmq::str_buffer("t"), zmq::send_flags::none);
  // [topic][header+body], which zmqkit's Publisher no longer writes, is still read.
  std::string scratch;
  Envelope good = Envelope::New("served");
  raw.send(zmq::str_buffer("t"), zmq::send_flags::sndmore);
  raw.send(EncodePacked(good, scratch), zmq::send_flags::none);

  auto rejected = subscriber.Receive(5s);
  ASSERT_FALSE(rejected.ok());
  ASSERT_TRUE(subscriber.last_decode_error().has_value());
  EXPECT_EQ(subscriber.last_decode_error()->code, DecodeErrc::kMalformedHeader);
  auto got = subscriber.Receive(5s);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->topic, "t");
  EXPECT_EQ(got->envelope.id, good.id);
  EXPECT_EQ(got->envelope.body_view(), "served");
}

TEST_F(FanoutTest, TypedBodiesRoundTrip) {
  Publisher publisher(context_, Endpoint::Bind(kAnyLoopbackPort));
  Subscriber subscriber(context_, Endpoint::Connect(publisher.endpoint()));
  subscriber.Subscribe("");
  ASSERT_TRUE(publisher.WaitForSubscribers(1, "orders", 5s).ok());
  ASSERT_TRUE(publisher.Publish("orders", PackBody(OrderCreated{"A-17", 23.5, {"pizza", "cola"}})).ok());
  auto got = subscriber.Receive(5s);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->envelope.headers.at("content-type"), "application/msgpack");
  auto order = UnpackBody<OrderCreated>(got->envelope);
  ASSERT_TRUE(order.ok()) << order.error().ToString();
  EXPECT_EQ(order->order_id, "A-17");
  EXPECT_EQ(order->total, 23.5);
  EXPECT_EQ(order->items, (std::vector<std::string>{"pizza", "cola"}));
}

TEST(TypedBodyTest, BadBodiesAreErrorsNotExceptions) {
  Envelope not_msgpack = Envelope::New("\xc1");
  EXPECT_EQ(UnpackBody<OrderCreated>(not_msgpack).error().code(), StatusCode::kInvalidArgument);
  Envelope wrong_shape = PackBody(42);
  EXPECT_EQ(UnpackBody<OrderCreated>(wrong_shape).error().code(), StatusCode::kInvalidArgument);
  Envelope empty = Envelope::New("");
  EXPECT_FALSE(UnpackBody<int>(empty).ok());
  Envelope huge_claim = Envelope::New(std::string_view("\xdd\xff\xff\xff\xff", 5));
  EXPECT_FALSE(UnpackBody<std::vector<int>>(huge_claim).ok());
}

}  // namespace
}  // namespace zmqkit
