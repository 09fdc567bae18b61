// The child processes of a run: the producer, the consumers and (for the broker patterns) the
// broker. Each is this program started again with --role, so a fault is a real one: a SIGKILLed
// process says no goodbye, and a broker that restarts is a new process reading its data directory.
#include <sys/prctl.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <map>
#include <thread>
#include <zmqkit/broker.h>
#include <zmqkit/broker_client.h>
#include <zmqkit/clock.h>
#include <zmqkit/fanout.h>
#include <zmqkit/reliable_tasks.h>
#include <zmqkit/work_queue.h>

#include "common.h"

namespace compare {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A child must not outlive the run that started it, whatever happens to the run.
void DieWithParent() { ::prctl(PR_SET_PDEATHSIG, SIGKILL); }

// The consumer's and producer's line to the orchestrator.
class Collector {
 public:
  Collector(zmq::context_t& context, const Addresses& addresses)
      : socket_(context, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 2000);
    socket_.set(zmq::sockopt::sndhwm, 0);  // reports are never dropped; there are at most N
    socket_.connect(addresses.collector);
  }
  void Send(std::string_view command, std::string_view data = {}) {
    socket_.send(zmq::buffer(command), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(data), zmq::send_flags::none);
  }
  // Tells the orchestrator this consumer is about to die and waits for its answer. Reports travel
  // the same connection in order, so every report sent before this one has been read by then: the
  // count of what this consumer saw is exact even though it dies without a goodbye.
  void SayDying() {
    Send(kDying);
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 5000ms);
  }

 private:
  zmq::socket_t socket_;
};

// What every consumer does with a task: report it, die if this is the moment, do the work.
class ConsumerSide {
 public:
  ConsumerSide(const RoleArgs& args, Collector& collector) : args_(args), collector_(collector) {}
  // False if the body is not a task of this run (counted, not reported).
  bool Saw(std::string_view body, std::uint32_t attempt) {
    const std::int64_t received = NowNs();
    if (++received_ == args_.die_after) {
      collector_.SayDying();
      std::raise(SIGKILL);  // holding this task and whatever else was queued to this process
    }
    auto task = DecodeTask(body);
    if (!task) return false;
    collector_.Send(kSeen, EncodeSeen({task->number, task->sent_ns, received, args_.id, attempt}));
    // The work itself: the consumer is busy, not burning a core the broker could use.
    std::this_thread::sleep_for(args_.work);
    return true;
  }

 private:
  const RoleArgs& args_;
  Collector& collector_;
  std::uint64_t received_ = 0;
};

// Sends task i no earlier than i/rate seconds after the first, so the faults land mid-stream.
class Pacer {
 public:
  explicit Pacer(double rate) : rate_(rate), start_(Clock::now()) {}
  // How long until task `i` is due (zero if due already).
  Clock::duration Until(std::uint64_t i) const {
    if (rate_ <= 0) return Clock::duration::zero();
    const auto due = start_ + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(i) / rate_));
    return std::max(due - Clock::now(), Clock::duration::zero());
  }
  void Wait(std::uint64_t i) const { std::this_thread::sleep_for(Until(i)); }

 private:
  double rate_;
  Clock::time_point start_;
};

zmqkit::BrokerClientOptions BrokerClientSettings() {
  zmqkit::BrokerClientOptions options;
  options.heartbeat_interval = kHeartbeat;
  return options;
}

std::string Field(std::string_view key, std::uint64_t value) {
  return std::string(key).append("=").append(std::to_string(value)).append(" ");
}

// ---- producers -----------------------------------------------------------------------------

std::string ProducePushPull(zmq::context_t& context, const Addresses& at, const RoleArgs& args) {
  zmqkit::Producer producer(context, zmqkit::Endpoint::Bind(at.tasks));
  (void)producer.WaitForWorkers(args.consumers_at_start, 10s);
  Pacer pacer(args.rate);
  std::uint64_t failed = 0;
  for (std::uint64_t i = 0; i < args.tasks; ++i) {
    pacer.Wait(i);
    if (!producer.Send(EncodeTask(i, NowNs(), args.body_size)).ok()) ++failed;
  }
  return Field("send_failures", failed);  // and exits: what is queued is flushed for up to 1 s
}

std::string ProduceWithResend(zmq::context_t& context, const Addresses& at, const RoleArgs& args) {
  // The sink runs beside the ventilator (the Guide puts it in its own process; what matters here is
  // that the producer side must stay up until the sink has reported every task done).
  std::atomic<bool> stop{false};
  std::atomic<bool> sink_ready{false};
  std::thread sink_thread([&] {
    zmqkit::TaskSink sink(context, zmqkit::Endpoint::Bind(at.results),
                          zmqkit::Endpoint::Connect(at.completions));
    sink_ready = true;
    while (!stop) (void)sink.Receive(50ms);
  });
  zmqkit::SteadyClock clock;
  zmqkit::VentilatorOptions options;
  options.resend_after = 500ms;
  zmqkit::TaskVentilator ventilator(context, zmqkit::Endpoint::Bind(at.tasks),
                                    zmqkit::Endpoint::Bind(at.completions), clock, options);
  while (!sink_ready) std::this_thread::sleep_for(1ms);
  (void)ventilator.WaitForWorkers(args.consumers_at_start, 10s);
  Pacer pacer(args.rate);
  for (std::uint64_t i = 0; i < args.tasks; ++i) {
    // Completions are read while waiting for the next task to fall due.
    for (auto wait = pacer.Until(i); wait > 1ms; wait = pacer.Until(i)) {
      ventilator.Poll(std::chrono::duration_cast<std::chrono::milliseconds>(wait));
    }
    (void)ventilator.Submit(zmqkit::Envelope::New(EncodeTask(i, NowNs(), args.body_size)));
    ventilator.Poll(0ms);
  }
  const bool drained = ventilator.Drain(60s).ok();
  stop = true;
  sink_thread.join();
  return Field("resent", ventilator.stats().resent) + Field("drained", drained ? 1 : 0);
}

std::string ProducePubSub(zmq::context_t& context, const Addresses& at, const RoleArgs& args) {
  zmqkit::Publisher publisher(context, zmqkit::Endpoint::Bind(at.tasks));
  // Waits for the consumers running at the start; the one that joins late is, by definition, not.
  for (std::uint32_t shard = 0; shard < args.consumers_at_start; ++shard) {
    (void)publisher.WaitForSubscribers(1, ShardTopic(shard), 10s);
  }
  Pacer pacer(args.rate);
  for (std::uint64_t i = 0; i < args.tasks; ++i) {
    pacer.Wait(i);
    (void)publisher.Publish(ShardTopic(i), EncodeTask(i, NowNs(), args.body_size));
  }
  return Field("dropped_at_hwm", publisher.stats().dropped_at_hwm);
}

std::string ProduceToBroker(zmq::context_t& context, const Addresses& at, const RoleArgs& args) {
  zmqkit::BrokerClient client(context, zmqkit::Endpoint::Connect(at.broker), BrokerClientSettings());
  std::map<std::uint64_t, Task> by_seq;  // every publish, to republish what the broker never got
  std::uint64_t republished = 0;
  auto publish = [&](const Task& task) {
    for (;;) {
      auto seq = client.Publish("tasks", EncodeTask(task.number, task.sent_ns, args.body_size));
      if (seq.ok()) {
        by_seq[*seq] = task;
        return;
      }
      std::this_thread::sleep_for(10ms);  // the broker took nothing for a heartbeat interval: back off
    }
  };
  // A publisher that cares uses confirms: what the broker rejects or never received is sent again.
  auto republish_rejected = [&] {
    for (const auto& rejection : client.TakeRejections()) {
      auto it = by_seq.find(rejection.seq);
      if (it == by_seq.end()) continue;
      ++republished;
      publish(it->second);
    }
  };
  Pacer pacer(args.rate);
  for (std::uint64_t i = 0; i < args.tasks; ++i) {
    pacer.Wait(i);
    publish({i, NowNs()});
    if (i % 256 == 0) republish_rejected();
  }
  // Done sending means every task confirmed: then the broker owns it and this producer may exit.
  const auto give_up = Clock::now() + 60s;
  bool confirmed = false;
  while (!confirmed && Clock::now() < give_up) {
    confirmed = client.WaitForConfirms(200ms).ok();
    republish_rejected();
  }
  return Field("republished", republished) + Field("confirmed", confirmed ? 1 : 0);
}

}  // namespace

int RunProducer(const RoleArgs& args) {
  DieWithParent();
  zmq::context_t context;
  const Addresses at(args.run_dir);
  Collector collector(context, at);
  const auto started = Clock::now();
  std::string summary;
  switch (args.pattern) {
    case Pattern::kPushPull: summary = ProducePushPull(context, at, args); break;
    case Pattern::kPushPullResend: summary = ProduceWithResend(context, at, args); break;
    case Pattern::kPubSub: summary = ProducePubSub(context, at, args); break;
    case Pattern::kBrokerMemory:
    case Pattern::kBrokerDurable: summary = ProduceToBroker(context, at, args); break;
  }
  const auto stayed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  collector.Send(kDone, summary + Field("stayed_ms", static_cast<std::uint64_t>(stayed.count())));
  return 0;
}

// ---- consumers -----------------------------------------------------------------------------

int RunConsumer(const RoleArgs& args) {
  DieWithParent();
  zmq::context_t context;
  const Addresses at(args.run_dir);
  Collector collector(context, at);
  ConsumerSide side(args, collector);
  // Consumers run until the orchestrator ends them; a quiet moment is not the end.
  switch (args.pattern) {
    case Pattern::kPushPull: {
      zmqkit::Worker worker(context, zmqkit::Endpoint::Connect(at.tasks));
      collector.Send(kReady);
      for (;;) {
        if (auto task = worker.Receive(100ms); task.ok()) side.Saw(task->body_view(), 0);
      }
    }
    case Pattern::kPushPullResend: {
      zmqkit::Worker worker(context, zmqkit::Endpoint::Connect(at.tasks));
      zmqkit::Producer results(context, zmqkit::Endpoint::Connect(at.results));
      collector.Send(kReady);
      for (;;) {
        auto task = worker.Receive(100ms);
        if (!task.ok()) continue;
        if (side.Saw(task->body_view(), task->attempt)) {
          (void)results.Send(zmqkit::ResultFor(*task, "done"));
        }
      }
    }
    case Pattern::kPubSub: {
      zmqkit::Subscriber subscriber(context, zmqkit::Endpoint::Connect(at.tasks));
      subscriber.Subscribe(ShardTopic(args.id - 1));
      collector.Send(kReady);
      for (;;) {
        if (auto got = subscriber.Receive(100ms); got.ok()) side.Saw(got->envelope.body_view(), 0);
      }
    }
    case Pattern::kBrokerMemory:
    case Pattern::kBrokerDurable: {
      zmqkit::BrokerClient client(context, zmqkit::Endpoint::Connect(at.broker),
                                  BrokerClientSettings());
      while (!client.Consume("tasks", kPrefetch).ok()) std::this_thread::sleep_for(100ms);
      collector.Send(kReady);
      for (;;) {
        auto delivery = client.Receive(100ms);
        if (!delivery.ok()) continue;
        side.Saw(delivery->envelope.body_view(), delivery->envelope.attempt);
        (void)client.Ack(delivery->tag);
        (void)client.TakeErrors();  // acks refused after a broker restart: expected, redelivered
      }
    }
  }
  return 2;
}

int RunBroker(const RoleArgs& args) {
  DieWithParent();
  zmq::context_t context;
  const Addresses at(args.run_dir);
  zmqkit::BrokerOptions options;
  options.clients = zmqkit::Endpoint::Bind(at.broker);
  options.workers = zmqkit::Endpoint::Bind(at.broker_workers);
  options.heartbeat_interval = kHeartbeat;
  options.queue_defaults.retry_delay = 0ms;
  if (args.pattern == Pattern::kBrokerDurable) {
    options.data_dir = at.data_dir;
    options.fsync = zmqkit::FsyncPolicy::kBatch;
  }
  try {
    zmqkit::Broker broker(context, options);
    broker.set_log([](std::string_view) {});
    broker.Run();  // until SIGKILLed: that is how this broker's life ends
  } catch (const std::exception& error) {
    std::cerr << "compare_patterns: the broker did not start: " << error.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace compare
