// The brokerless patterns from the command line: zmqkit push and pull (PUSH/PULL work queues),
// zmqkit pub and sub (PUB/SUB fanout). Endpoints connect unless written @endpoint (bind).
#include <iostream>
#include <optional>

#include "cli.h"
#include "zmqkit/fanout.h"
#include "zmqkit/work_queue.h"

namespace zmqkit::cli {
namespace {

using namespace std::chrono_literals;

class Brokerless : public Subcommand {
 public:
  int Run(const Common& common) final {
    auto endpoint = Endpoint::Parse(endpoint_text_, Endpoint::Mode::kConnect);
    if (!endpoint.ok()) {
      std::cerr << "zmqkit: " << endpoint.error().message() << "\n";
      return kExitUsage;
    }
    zmq::context_t context;
    // Only CURVE is set here; each pattern keeps its own default HWMs.
    return RunOn(common, context, *endpoint, CurveFor(common, endpoint->mode == Endpoint::Mode::kBind));
  }

 protected:
  virtual int RunOn(const Common& common, zmq::context_t& context, const Endpoint& endpoint,
                    const CurveOptions& curve) = 0;
  // Takes up to `count` messages within `wait_s` through `receive` (which prints one and returns
  // whether it got it); kExitFailure if fewer came.
  template <typename ReceiveOne>
  static int Take(int count, double wait_s, ReceiveOne&& receive) {
    int got = 0;
    auto deadline = std::chrono::steady_clock::now() + Millis(wait_s);
    while (got < count) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) break;
      if (receive(left)) ++got;
    }
    if (got < count) {
      std::cerr << "zmqkit: received " << got << " of " << count << " within " << wait_s << " s\n";
      return kExitFailure;
    }
    return 0;
  }

  std::string endpoint_text_;
};

class Push final : public Brokerless {
 public:
  explicit Push(CLI::App& parent) {
    app_ = parent.add_subcommand("push", "send bodies to PULL workers (brokerless)");
    app_->add_option("endpoint", endpoint_text_)->required();
    app_->add_option("bodies", bodies_)->required();
    app_->add_option("--wait-workers", wait_workers_, "wait until N workers are connected");
  }

 private:
  int RunOn(const Common& common, zmq::context_t& context, const Endpoint& endpoint,
            const CurveOptions& curve) override {
    ProducerOptions options;
    options.socket.curve = curve;
    Producer producer(context, endpoint, options);
    if (wait_workers_ > 0) {
      Status waited = producer.WaitForWorkers(static_cast<std::size_t>(wait_workers_), Millis(common.timeout_s));
      if (!waited.ok()) return Fail(waited.message());
    }
    for (const std::string& body : bodies_) {
      if (Status sent = producer.Send(body); !sent.ok()) return Fail(sent.message());
    }
    std::cout << "pushed " << bodies_.size() << " message(s)\n";
    return 0;
  }

  std::vector<std::string> bodies_;
  int wait_workers_ = 0;
};

class Pull final : public Brokerless {
 public:
  explicit Pull(CLI::App& parent) {
    app_ = parent.add_subcommand("pull", "take messages from PUSH producers (brokerless)");
    app_->add_option("endpoint", endpoint_text_)->required();
    app_->add_option("--count", count_)->capture_default_str();
    app_->add_option("--wait", wait_s_)->capture_default_str();
  }

 private:
  int RunOn(const Common&, zmq::context_t& context, const Endpoint& endpoint,
            const CurveOptions& curve) override {
    WorkerOptions options;
    options.socket.curve = curve;
    Worker worker(context, endpoint, options);
    return Take(count_, wait_s_, [&](std::chrono::milliseconds left) {
      auto message = worker.Receive(left);
      if (message.ok()) std::cout << message->body_view() << std::endl;
      return message.ok();
    });
  }

  int count_ = 1;
  double wait_s_ = 5;
};

class Pub final : public Brokerless {
 public:
  explicit Pub(CLI::App& parent) {
    app_ = parent.add_subcommand("pub", "publish bodies on a topic (brokerless)");
    app_->add_option("endpoint", endpoint_text_)->required();
    app_->add_option("bodies", bodies_)->required();
    app_->add_option("--topic", topics_, "topic (first one given)")->required();
    app_->add_option("--wait-subscribers", wait_subscribers_, "wait until N subscriptions match the topic");
  }

 private:
  int RunOn(const Common& common, zmq::context_t& context, const Endpoint& endpoint,
            const CurveOptions& curve) override {
    PublisherOptions options;
    options.socket.curve = curve;
    Publisher publisher(context, endpoint, options);
    const std::string& topic = topics_.front();
    if (wait_subscribers_ > 0) {
      Status waited = publisher.WaitForSubscribers(static_cast<std::size_t>(wait_subscribers_), topic,
                                                   Millis(common.timeout_s));
      if (!waited.ok()) return Fail(waited.message());
    }
    for (const std::string& body : bodies_) (void)publisher.Publish(topic, body);
    std::cout << "published " << bodies_.size() << " message(s) on " << topic << "\n";
    return 0;
  }

  std::vector<std::string> bodies_;
  std::vector<std::string> topics_;
  int wait_subscribers_ = 0;
};

class Sub final : public Brokerless {
 public:
  explicit Sub(CLI::App& parent) {
    app_ = parent.add_subcommand("sub", "print messages published on topics (brokerless)");
    app_->add_option("endpoint", endpoint_text_)->required();
    app_->add_option("--topic", topics_, "topic prefix, repeatable (default: everything)");
    app_->add_option("--count", count_)->capture_default_str();
    app_->add_option("--wait", wait_s_)->capture_default_str();
  }

 private:
  int RunOn(const Common&, zmq::context_t& context, const Endpoint& endpoint,
            const CurveOptions& curve) override {
    SubscriberOptions options;
    options.socket.curve = curve;
    Subscriber subscriber(context, endpoint, options);
    if (topics_.empty()) topics_.emplace_back();
    for (const std::string& topic : topics_) subscriber.Subscribe(topic);
    return Take(count_, wait_s_, [&](std::chrono::milliseconds left) {
      auto publication = subscriber.Receive(left);
      if (publication.ok()) std::cout << publication->topic << " " << publication->envelope.body_view() << std::endl;
      return publication.ok();
    });
  }

  std::vector<std::string> topics_;
  int count_ = 1;
  double wait_s_ = 5;
};

}  // namespace

std::unique_ptr<Subcommand> MakePush(CLI::App& parent) { return std::make_unique<Push>(parent); }
std::unique_ptr<Subcommand> MakePull(CLI::App& parent) { return std::make_unique<Pull>(parent); }
std::unique_ptr<Subcommand> MakePub(CLI::App& parent) { return std::make_unique<Pub>(parent); }
std::unique_ptr<Subcommand> MakeSub(CLI::App& parent) { return std::make_unique<Sub>(parent); }

}  // namespace zmqkit::cli
