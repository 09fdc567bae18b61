// zmqkit bench — every figure is measured in this run, on this machine, and each layer is set
// against the limit beneath it: raw libzmq for the brokerless patterns, the disk for the durable
// broker.
//
// Everything runs in this process on threads (the broker too), so the broker and its clients
// share the machine's cores exactly as a one-box deployment does. Each run ends on a condition
// (every message counted), never on a timer.
#include "bench.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "json.h"
#include "progress.h"
#include "zmqkit/broker.h"
#include "zmqkit/broker_client.h"
#include "zmqkit/envelope_codec.h"
#include "zmqkit/fanout.h"
#include "zmqkit/work_queue.h"

namespace zmqkit::tools {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Figure {
  std::string section;
  std::string name;
  double value = 0;
  std::string unit;
  std::string versus;  // e.g. "0.83 of raw 2-frame"
};

std::string Ratio(double value, double limit, const std::string& of) {
  if (limit <= 0) return {};
  std::ostringstream out;
  out << std::fixed << std::setprecision(2) << value / limit << " of " << of;
  return out.str();
}

struct Percentiles {
  double p50 = 0, p99 = 0, p999 = 0;
};

Percentiles Percentiles_us(std::vector<double> samples_us) {
  Percentiles p;
  if (samples_us.empty()) return p;
  std::sort(samples_us.begin(), samples_us.end());
  auto at = [&](double q) {
    auto index = static_cast<std::size_t>(q * static_cast<double>(samples_us.size() - 1));
    return samples_us[index];
  };
  p.p50 = at(0.50);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  return p;
}

#if defined(__SANITIZE_ADDRESS__)
extern "C" void __sanitizer_purge_allocator();
#endif

// Gives memory that is free back to the OS before a baseline is taken, so what an earlier step
// freed cannot leave during the measurement and make the growth look smaller, even negative.
// AddressSanitizer keeps freed chunks in a quarantine of its own, which malloc_trim does not touch.
void ReturnFreeMemory() {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_purge_allocator();
#endif
  ::malloc_trim(0);
}

std::size_t RssBytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

std::string LoopbackAny() { return "tcp://127.0.0.1:*"; }

// ---- limits --------------------------------------------------------------------------------

// The size of a fresh envelope's header frame (version 2: [2, id, ts], 29 bytes), within the 33
// that libzmq carries inside a message without allocating.
std::size_t EnvelopeHeaderBytes() {
  std::string header;
  EncodeHeader(Envelope::New(), header);
  return header.size();
}

// The size of a Publisher's header: it adds a sequence number and its stream's id (a UUIDv7 as
// text), which puts it over libzmq's inline limit whatever the format; hence the packed form.
std::size_t FanoutHeaderBytes(std::uint64_t messages) {
  Envelope envelope = Envelope::New();
  envelope.seq = messages;
  envelope.stream = MessageId::Generate().ToString();
  std::string header;
  EncodeHeader(envelope, header);
  return header.size();
}

// Raw PUSH->PULL: `frames` frames per message (a header frame of `header_bytes` first when 2), no
// envelope.
double RawPushPull(std::uint64_t n, std::size_t size, int frames, std::size_t header_bytes = 24) {
  zmq::context_t context;
  zmq::socket_t pull(context, zmq::socket_type::pull);
  pull.bind(LoopbackAny());
  const std::string endpoint = pull.get(zmq::sockopt::last_endpoint);
  const std::string body(size, 'x');
  const std::string header(header_bytes, 'h');
  const auto started = Clock::now();
  std::thread sender([&] {
    zmq::socket_t push(context, zmq::socket_type::push);
    push.connect(endpoint);
    for (std::uint64_t i = 0; i < n; ++i) {
      if (frames == 2) push.send(zmq::buffer(header), zmq::send_flags::sndmore);
      push.send(zmq::buffer(body), zmq::send_flags::none);
    }
  });
  zmq::message_t message;
  for (std::uint64_t i = 0; i < n * static_cast<std::uint64_t>(frames); ++i) {
    (void)pull.recv(message);
  }
  const double elapsed = Seconds(Clock::now() - started);
  sender.join();
  return static_cast<double>(n) / elapsed;
}

// Raw PUB->SUB with `subscribers`, HWM 0 so nothing is dropped; messages/s per subscriber. With
// `header_bytes`, each message is one frame of header_bytes + size + 2 bytes, the shape of a
// topic-packed fanout envelope with an empty topic.
double RawPubSub(std::uint64_t n, std::size_t size, int subscribers, std::size_t header_bytes = 0) {
  zmq::context_t context;
  zmq::socket_t pub(context, zmq::socket_type::xpub);
  pub.set(zmq::sockopt::sndhwm, 0);
  pub.set(zmq::sockopt::xpub_verbose, 1);  // every subscriber's subscription, not just the first
  pub.bind(LoopbackAny());
  const std::string endpoint = pub.get(zmq::sockopt::last_endpoint);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (int s = 0; s < subscribers; ++s) {
    threads.emplace_back([&] {
      zmq::socket_t sub(context, zmq::socket_type::sub);
      sub.set(zmq::sockopt::rcvhwm, 0);
      sub.set(zmq::sockopt::subscribe, "");
      sub.connect(endpoint);
      ++ready;
      zmq::message_t message;
      for (std::uint64_t i = 0; i < n; ++i) {
        do {
          (void)sub.recv(message);
        } while (message.more());
      }
    });
  }
  zmq::message_t notice;
  for (int s = 0; s < subscribers; ++s) (void)pub.recv(notice);  // each subscription has arrived
  const std::string body(size, 'x');
  const auto started = Clock::now();
  const std::string packed(header_bytes + size + 2, 'p');
  const std::string& frame = header_bytes > 0 ? packed : body;
  for (std::uint64_t i = 0; i < n; ++i) pub.send(zmq::buffer(frame), zmq::send_flags::none);
  for (auto& thread : threads) thread.join();
  return static_cast<double>(n) / Seconds(Clock::now() - started);
}

struct DiskFigures {
  double syncs_per_s = 0;
  double sync_p50_us = 0;
  double sync_p99_us = 0;
  double write_mb_per_s = 0;
};

DiskFigures MeasureDisk(const std::string& dir, Clock::duration sync_for, std::size_t write_bytes) {
  DiskFigures figures;
  const std::string path = dir + "/zmqkit-bench-disk";
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write in " + dir + ": " + std::strerror(errno));
  // Appends of 100-byte records, each followed by fdatasync: what a lone durable confirm costs.
  const std::string record(100, 'r');
  std::vector<double> latencies;
  off_t offset = 0;
  const auto started = Clock::now();
  while (Clock::now() - started < sync_for) {
    const auto before = Clock::now();
    if (::pwrite(fd, record.data(), record.size(), offset) < 0 || ::fdatasync(fd) != 0) break;
    offset += static_cast<off_t>(record.size());
    latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - before).count());
  }
  figures.syncs_per_s = static_cast<double>(latencies.size()) / Seconds(Clock::now() - started);
  auto p = Percentiles_us(latencies);
  figures.sync_p50_us = p.p50;
  figures.sync_p99_us = p.p99;
  // Sequential bandwidth: 1 MiB writes, one fdatasync at the end.
  const std::string chunk(1 << 20, 'w');
  ::ftruncate(fd, 0);
  const auto write_started = Clock::now();
  std::size_t written = 0;
  for (; written < write_bytes; written += chunk.size()) {
    if (::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(written)) < 0) break;
  }
  ::fdatasync(fd);
  figures.write_mb_per_s = static_cast<double>(written) / 1e6 / Seconds(Clock::now() - write_started);
  ::close(fd);
  ::unlink(path.c_str());
  return figures;
}

// ---- brokerless ----------------------------------------------------------------------------

double LibraryWorkQueue(std::uint64_t n, std::size_t size) {
  zmq::context_t context;
  Worker worker(context, Endpoint::Bind(LoopbackAny()));
  const std::string body(size, 'x');
  const auto started = Clock::now();
  std::thread sender([&] {
    ProducerOptions options;
    options.send_timeout = std::chrono::milliseconds(-1);
    Producer producer(context, Endpoint::Connect(worker.endpoint()), options);
    for (std::uint64_t i = 0; i < n; ++i) (void)producer.Send(body);
  });
  std::uint64_t received = 0;
  while (received < n) {
    if (worker.Receive(5s).ok()) ++received;
    else if (worker.stats().received == 0 && Seconds(Clock::now() - started) > 30) break;
  }
  const double elapsed = Seconds(Clock::now() - started);
  sender.join();
  return static_cast<double>(received) / elapsed;
}

double LibraryFanout(std::uint64_t n, std::size_t size, int subscribers) {
  zmq::context_t context;
  PublisherOptions options;
  options.hwm_wait = std::chrono::milliseconds(-1);  // nothing dropped: the slowest one paces
  options.socket.send_hwm = 0;
  Publisher publisher(context, Endpoint::Bind(LoopbackAny()), options);
  std::vector<std::thread> threads;
  for (int s = 0; s < subscribers; ++s) {
    threads.emplace_back([&] {
      SubscriberOptions sub_options;
      sub_options.socket.recv_hwm = 0;
      Subscriber subscriber(context, Endpoint::Connect(publisher.endpoint()), sub_options);
      subscriber.Subscribe("");
      for (std::uint64_t i = 0; i < n;) {
        if (subscriber.Receive(5s).ok()) ++i;
        else break;
      }
    });
  }
  (void)publisher.WaitForSubscribers(static_cast<std::size_t>(subscribers), "", 10s);
  const std::string body(size, 'x');
  const auto started = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) (void)publisher.Publish("", body);
  for (auto& thread : threads) thread.join();
  return static_cast<double>(n) / Seconds(Clock::now() - started);
}

// ---- broker --------------------------------------------------------------------------------

enum class Storage { kMemory, kNever, kBatch, kAlways };

const char* StorageName(Storage storage) {
  switch (storage) {
    case Storage::kMemory: return "in memory";
    case Storage::kNever: return "fsync never";
    case Storage::kBatch: return "fsync batch";
    case Storage::kAlways: return "fsync always";
  }
  return "";
}

// The durable brokers' sync spacing for the whole run: --min-sync-interval-us, or the broker's
// default. Set once by RunBench before any broker starts.
std::chrono::microseconds bench_min_sync_interval = BrokerOptions{}.min_sync_interval;

// A broker on a thread of this process, with its own context; stopped and joined on destruction.
class BenchBroker {
 public:
  BenchBroker(Storage storage, const std::string& data_dir, std::uint64_t max_length) {
    BrokerOptions options;
    options.min_sync_interval = bench_min_sync_interval;
    options.clients = Endpoint::Bind(LoopbackAny());
    options.workers = Endpoint::Bind(LoopbackAny());
    options.queue_defaults.max_length = std::max<std::uint64_t>(max_length, 1'000'000);
    options.queue_defaults.max_bytes = std::size_t{16} << 30;
    options.max_queues = 100'000;  // the idle-queue step declares 10,000 besides its own
    if (storage != Storage::kMemory) {
      options.data_dir = data_dir;
      options.fsync = storage == Storage::kNever ? FsyncPolicy::kNever
                      : storage == Storage::kBatch ? FsyncPolicy::kBatch
                                                   : FsyncPolicy::kAlways;
    }
    broker_ = std::make_unique<Broker>(context_, options);
    broker_->set_log([](std::string_view) {});
    thread_ = std::thread([this] { broker_->Run(); });
  }
  ~BenchBroker() {
    broker_->Stop();
    thread_.join();
  }
  const std::string& endpoint() const { return broker_->clients_endpoint(); }
  // CPU time the broker's thread has used so far (its own clock: not the clients' threads, not
  // libzmq's I/O threads).
  double CpuSeconds() {
    clockid_t clock;
    timespec used{};
    if (pthread_getcpuclockid(thread_.native_handle(), &clock) != 0 || clock_gettime(clock, &used) != 0) {
      return 0;
    }
    return static_cast<double>(used.tv_sec) + static_cast<double>(used.tv_nsec) / 1e9;
  }

 private:
  zmq::context_t context_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
};

constexpr std::uint64_t kMaxUnconfirmed = 20'000;

// Publishes `n` to `queue` with confirms pipelined, one Publish() per message or PublishBatch()
// calls of `batch`; true if all were confirmed.
bool PublishAll(BrokerClient& client, const std::string& queue, std::uint64_t n,
                std::string_view body, std::uint64_t batch) {
  if (batch <= 1) {
    for (std::uint64_t i = 0; i < n; ++i) {
      while (!client.Publish(queue, body).ok()) std::this_thread::sleep_for(1ms);
    }
    return client.WaitForConfirms(120s).ok();
  }
  PublishOptions options;
  options.key = queue;
  std::vector<Envelope> envelopes;
  for (std::uint64_t done = 0; done < n;) {
    envelopes.clear();
    const std::uint64_t count = std::min(batch, n - done);
    for (std::uint64_t i = 0; i < count; ++i) envelopes.push_back(Envelope::New(body));
    for (std::span<Envelope> rest(envelopes); !rest.empty();) {
      auto sent = client.PublishBatch(rest, options);
      if (!sent.ok()) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      rest = rest.subspan(*sent);
    }
    done += count;
    // A real producer bounds what it has in flight; without a bound, PublishBatch fills the
    // connection's queue (send_hwm messages of up to 30 publishes each), and that memory would
    // be counted in the RSS figures of this process.
    if (client.unconfirmed() > kMaxUnconfirmed) (void)client.WaitForConfirms(120s);
  }
  return client.WaitForConfirms(120s).ok();
}

// Consumes from `queue` with prefetch, acking every message in batches of 100, until `total`
// (shared by all consumers of the run, which the broker need not serve evenly) reaches `n`. False
// if the messages stopped coming before that.
bool ConsumeAll(BrokerClient& client, const std::string& queue, std::uint64_t n,
                std::atomic<std::uint64_t>& total) {
  if (!client.Consume(queue, 1000).ok()) return false;
  std::vector<std::uint64_t> tags;
  tags.reserve(100);
  auto last_delivery = Clock::now();
  while (total.load() < n) {
    auto delivery = client.Receive(tags.empty() ? 50ms : 0ms);
    if (!delivery.ok()) {
      if (!tags.empty()) (void)client.Ack(tags);  // idle: settle what is held
      tags.clear();
      if (Clock::now() - last_delivery > 10s) return false;
      continue;
    }
    last_delivery = Clock::now();
    ++total;
    tags.push_back(delivery->tag);
    if (tags.size() == 100) {
      (void)client.Ack(tags);
      tags.clear();
    }
  }
  if (!tags.empty()) (void)client.Ack(tags);
  return true;
}

std::uint64_t Acked(BrokerClient& client, const std::string& queue) {
  auto stats = client.Stats(queue);
  if (!stats.ok() || stats->empty()) return 0;
  return stats->front().values["acked"];
}

// End to end, first publish to the broker's count of the last ack; msgs/s, 0 on failure.
double BrokerEndToEnd(Storage storage, const std::string& data_dir, std::uint64_t n,
                      std::size_t size, int pairs, std::uint64_t publish_batch) {
  std::filesystem::remove_all(data_dir);
  BenchBroker broker(storage, data_dir, n);
  zmq::context_t context;
  const std::string body(size, 'x');
  std::atomic<bool> failed{false};
  const std::uint64_t each = n / static_cast<std::uint64_t>(pairs);
  std::vector<std::unique_ptr<BrokerClient>> consumers;
  for (int c = 0; c < pairs; ++c) {
    consumers.push_back(std::make_unique<BrokerClient>(context, Endpoint::Connect(broker.endpoint())));
  }
  std::atomic<std::uint64_t> consumed{0};
  const std::uint64_t total = each * static_cast<std::uint64_t>(pairs);
  const auto started = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < pairs; ++c) {
    threads.emplace_back([&, c] {
      if (!ConsumeAll(*consumers[static_cast<std::size_t>(c)], "bench", total, consumed)) failed = true;
    });
    threads.emplace_back([&] {
      BrokerClient producer(context, Endpoint::Connect(broker.endpoint()));
      if (!PublishAll(producer, "bench", each, body, publish_batch)) failed = true;
    });
  }
  for (auto& thread : threads) thread.join();
  BrokerClient observer(context, Endpoint::Connect(broker.endpoint()));
  const auto give_up = Clock::now() + 30s;
  while (Acked(observer, "bench") < each * static_cast<std::uint64_t>(pairs) && Clock::now() < give_up) {
  }
  const double elapsed = Seconds(Clock::now() - started);
  consumers.clear();
  std::filesystem::remove_all(data_dir);
  return failed ? 0 : static_cast<double>(each * static_cast<std::uint64_t>(pairs)) / elapsed;
}

struct BacklogFigures {
  double publish_per_s = 0;
  double drain_per_s = 0;
  double rss_bytes_per_message = 0;
};

BacklogFigures Backlog(Storage storage, const std::string& data_dir, std::uint64_t n, std::size_t size,
                       std::uint64_t publish_batch) {
  BacklogFigures figures;
  std::filesystem::remove_all(data_dir);
  BenchBroker broker(storage, data_dir, n);
  zmq::context_t context;
  const std::string body(size, 'x');
  {
    BrokerClient producer(context, Endpoint::Connect(broker.endpoint()));
    // The baseline is taken with the broker and the client already running (their threads and
    // buffers exist), so the growth measured next is the queue's alone.
    if (!producer.Stats().ok()) return figures;
    ReturnFreeMemory();
    const std::size_t rss_before = RssBytes();
    const auto started = Clock::now();
    if (!PublishAll(producer, "backlog", n, body, publish_batch)) return figures;
    figures.publish_per_s = static_cast<double>(n) / Seconds(Clock::now() - started);
    figures.rss_bytes_per_message =
        (static_cast<double>(RssBytes()) - static_cast<double>(rss_before)) / static_cast<double>(n);
  }
  BrokerClient consumer(context, Endpoint::Connect(broker.endpoint()));
  std::atomic<std::uint64_t> consumed{0};
  const auto started = Clock::now();
  if (!ConsumeAll(consumer, "backlog", n, consumed)) return figures;
  figures.drain_per_s = static_cast<double>(n) / Seconds(Clock::now() - started);
  return figures;
}

// One-way latency: the sender stamps the first 8 bytes of the body with its clock (all threads of
// this process read the same steady clock), the receiver subtracts.
std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
double MicrosSinceStamp(const void* body) {
  std::int64_t sent_ns = 0;
  std::memcpy(&sent_ns, body, sizeof sent_ns);
  return static_cast<double>(NowNs() - sent_ns) / 1000.0;
}
// Sends `samples` stamped bodies of `size` bytes, one per `gap` from `first`.
void SendStamped(std::uint64_t samples, std::size_t size, Clock::duration gap, Clock::time_point first,
                 const std::function<void(const std::string&)>& send) {
  std::string body(std::max<std::size_t>(size, 8), 'x');
  auto next = first;
  for (std::uint64_t i = 0; i < samples; ++i) {
    std::this_thread::sleep_until(next);
    next += gap;
    const std::int64_t now_ns = NowNs();
    std::memcpy(body.data(), &now_ns, sizeof now_ns);
    send(body);
  }
}

// The broker thread's CPU per message, in microseconds, at one message per `gap` through one
// queue while `idle` other declared queues hold nothing: what an idle queue costs the busy ones.
double BrokerCpuPerMessage_us(std::size_t idle, std::uint64_t messages, std::size_t size,
                              Clock::duration gap) {
  BenchBroker broker(Storage::kMemory, "", messages);
  zmq::context_t context;
  BrokerClient admin(context, Endpoint::Connect(broker.endpoint()));
  for (std::size_t i = 0; i < idle; ++i) {
    if (!admin.DeclareQueue("idle-" + std::to_string(i), QueueOptions{}).ok()) return 0;
  }
  BrokerClient consumer(context, Endpoint::Connect(broker.endpoint()));
  if (!consumer.Consume("paced", 100).ok()) return 0;
  std::atomic<std::uint64_t> received{0};
  std::thread receiving([&] {
    while (received < messages) {
      auto delivery = consumer.Receive(10s);
      if (!delivery.ok()) return;
      (void)consumer.Ack(delivery->tag);
      ++received;
    }
  });
  BrokerClient producer(context, Endpoint::Connect(broker.endpoint()));
  const double cpu_before = broker.CpuSeconds();
  SendStamped(messages, size, gap, Clock::now(),
              [&](const std::string& body) { (void)producer.Publish("paced", body); });
  receiving.join();
  const double cpu_after = broker.CpuSeconds();
  if (received < messages) return 0;
  return (cpu_after - cpu_before) * 1e6 / static_cast<double>(messages);
}

// Publish -> deliver latency at one message per `gap`, with a timestamp in the body.
Percentiles BrokerLatency(Storage storage, const std::string& data_dir, std::uint64_t samples,
                          std::size_t size, Clock::duration gap) {
  std::filesystem::remove_all(data_dir);
  BenchBroker broker(storage, data_dir, samples);
  zmq::context_t context;
  BrokerClient consumer(context, Endpoint::Connect(broker.endpoint()));
  if (!consumer.Consume("latency", 100).ok()) return {};
  std::vector<double> latencies;
  latencies.reserve(samples);
  std::thread receiving([&] {
    for (std::uint64_t i = 0; i < samples; ++i) {
      auto delivery = consumer.Receive(10s);
      if (!delivery.ok()) return;
      latencies.push_back(MicrosSinceStamp(delivery->envelope.body_view().data()));
      (void)consumer.Ack(delivery->tag);
    }
  });
  BrokerClient producer(context, Endpoint::Connect(broker.endpoint()));
  SendStamped(samples, size, gap, Clock::now(),
              [&](const std::string& body) { (void)producer.Publish("latency", body); });
  receiving.join();
  std::filesystem::remove_all(data_dir);
  return Percentiles_us(std::move(latencies));
}

// Publish -> confirm latency of a lone publish, one every `gap` (or as soon as the last one's
// confirm came, if that took longer): what a publisher that waits for each confirm sees.
Percentiles ConfirmLatency(Storage storage, const std::string& data_dir, std::uint64_t samples,
                           std::size_t size, Clock::duration gap) {
  std::filesystem::remove_all(data_dir);
  BenchBroker broker(storage, data_dir, samples);
  zmq::context_t context;
  BrokerClient producer(context, Endpoint::Connect(broker.endpoint()));
  const std::string body(size, 'x');
  std::vector<double> latencies;
  latencies.reserve(samples);
  auto next = Clock::now();
  for (std::uint64_t i = 0; i < samples; ++i) {
    std::this_thread::sleep_until(next);
    next = std::max(next + gap, Clock::now());
    const auto sent = Clock::now();
    if (!producer.Publish("confirm-latency", body).ok() || !producer.WaitForConfirms(10s).ok()) {
      return {};
    }
    latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent).count());
  }
  std::filesystem::remove_all(data_dir);
  return Percentiles_us(std::move(latencies));
}

// Raw libzmq one-way latency at one message per `gap`, timestamp in the body: PUSH->PULL directly
// (one hop), or through a relay thread on its own context (two hops: producer -> relay ->
// consumer), which is the path a broker's delivery takes and so its floor. Unlike back-to-back
// round trips, a message every 500 us lets every thread on the path go idle between messages and
// pay its wake-up, as a broker's do.
Percentiles RawOneWay(std::uint64_t samples, std::size_t size, Clock::duration gap, bool relay) {
  // Each side has its own context, as separate processes would: one I/O thread carrying both ends
  // of a hop saves a wake-up no deployment gets. The producer and consumer share one, as the
  // broker rows' clients do.
  zmq::context_t relay_context, context;
  zmq::socket_t relay_in(relay_context, zmq::socket_type::pull), relay_out(relay_context, zmq::socket_type::push);
  zmq::socket_t pull(relay ? context : relay_context, zmq::socket_type::pull);
  std::string producer_endpoint;
  if (relay) {
    relay_in.bind(LoopbackAny());
    relay_out.bind(LoopbackAny());
    producer_endpoint = relay_in.get(zmq::sockopt::last_endpoint);
    pull.connect(relay_out.get(zmq::sockopt::last_endpoint));
  } else {
    pull.bind(LoopbackAny());
    producer_endpoint = pull.get(zmq::sockopt::last_endpoint);
  }
  std::thread relaying([&] {
    if (!relay) return;
    zmq::message_t message;
    for (std::uint64_t i = 0; i < samples; ++i) {
      (void)relay_in.recv(message);
      relay_out.send(message, zmq::send_flags::none);
    }
  });
  std::vector<double> latencies;
  latencies.reserve(samples);
  std::thread receiving([&] {
    zmq::message_t message;
    for (std::uint64_t i = 0; i < samples; ++i) {
      (void)pull.recv(message);
      latencies.push_back(MicrosSinceStamp(message.data()));
    }
  });
  zmq::socket_t push(context, zmq::socket_type::push);
  push.connect(producer_endpoint);
  // From 50 ms on: the connections are up before the first sample.
  SendStamped(samples, size, gap, Clock::now() + 50ms,
              [&](const std::string& body) { push.send(zmq::buffer(body), zmq::send_flags::none); });
  receiving.join();
  relaying.join();
  return Percentiles_us(std::move(latencies));
}

Percentiles RawRoundTrip(std::uint64_t samples, std::size_t size) {
  zmq::context_t context;
  zmq::socket_t rep(context, zmq::socket_type::rep);
  rep.bind(LoopbackAny());
  const std::string endpoint = rep.get(zmq::sockopt::last_endpoint);
  std::thread echo([&] {
    zmq::message_t message;
    for (std::uint64_t i = 0; i < samples; ++i) {
      (void)rep.recv(message);
      rep.send(message, zmq::send_flags::none);
    }
  });
  zmq::socket_t req(context, zmq::socket_type::req);
  req.connect(endpoint);
  const std::string body(size, 'x');
  std::vector<double> latencies;
  zmq::message_t reply;
  for (std::uint64_t i = 0; i < samples; ++i) {
    const auto before = Clock::now();
    req.send(zmq::buffer(body), zmq::send_flags::none);
    (void)req.recv(reply);
    latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - before).count());
  }
  echo.join();
  return Percentiles_us(std::move(latencies));
}

// Seconds from an unacked delivery to its redelivery, with the consumer's ack timeout `timeout`.
double RedeliveryAfter(std::chrono::milliseconds timeout) {
  BenchBroker broker(Storage::kMemory, "", 1);  // default options: timeouts do not back off
  zmq::context_t context;
  BrokerClientOptions options;
  options.auto_extend = false;  // the handler "hangs": nothing extends its lease
  BrokerClient consumer(context, Endpoint::Connect(broker.endpoint()), options);
  BrokerClient producer(context, Endpoint::Connect(broker.endpoint()));
  if (!consumer.Consume("stall", 1, "", timeout).ok()) return 0;
  (void)producer.Publish("stall", "x");
  auto first = consumer.Receive(10s);
  if (!first.ok()) return 0;
  const auto delivered = Clock::now();
  auto again = consumer.Receive(timeout * 10);
  if (!again.ok()) return 0;
  return Seconds(Clock::now() - delivered);
}

// Seconds from constructing a broker on a data dir holding `n` unsettled messages to its first
// answer.
double Recovery(const std::string& data_dir, std::uint64_t n, std::size_t size) {
  std::filesystem::remove_all(data_dir);
  {
    BenchBroker broker(Storage::kNever, data_dir, n);
    zmq::context_t context;
    BrokerClient producer(context, Endpoint::Connect(broker.endpoint()));
    if (!PublishAll(producer, "recover", n, std::string(size, 'x'), 100)) return 0;
  }
  const auto started = Clock::now();
  double seconds = 0;
  {
    BenchBroker broker(Storage::kBatch, data_dir, n);
    zmq::context_t context;
    BrokerClient client(context, Endpoint::Connect(broker.endpoint()));
    auto stats = client.Stats("recover");
    seconds = Seconds(Clock::now() - started);
    if (!stats.ok() || stats->empty() || stats->front().values["ready"] != n) seconds = 0;
  }
  std::filesystem::remove_all(data_dir);
  return seconds;
}

// ---- the run -------------------------------------------------------------------------------

std::string Human(double value) {
  std::ostringstream out;
  if (value >= 100) {
    out << std::fixed << std::setprecision(0) << value;
    // Thousands separators, built forwards (g++ 12 warns falsely about insert() in a loop).
    const std::string digits = out.str();
    std::string grouped;
    for (std::size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) grouped.push_back(',');
      grouped.push_back(digits[i]);
    }
    return grouped;
  }
  out << std::fixed << std::setprecision(value >= 10 ? 1 : 2) << value;
  return out.str();
}


}  // namespace

int RunBench(BenchOptions options) {
  if (options.quick) {
    options.messages = std::min<std::uint64_t>(options.messages, 20'000);
    options.broker_messages = std::min<std::uint64_t>(options.broker_messages, 5'000);
    options.backlog = std::min<std::uint64_t>(options.backlog, 20'000);
    options.latency_samples = std::min<std::uint64_t>(options.latency_samples, 200);
  }
  if (options.min_sync_interval_us >= 0) {
    bench_min_sync_interval = std::chrono::microseconds(options.min_sync_interval_us);
  }
  const std::string data_dir =
      (std::filesystem::absolute(options.data_dir) / ("zmqkit-bench-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(data_dir);
  const std::string broker_dir = data_dir + "/broker";
  const std::size_t size = std::max<std::size_t>(options.size, 8);

  std::vector<Figure> figures;
  std::vector<std::string> failures;
  double raw1 = 0, raw2 = 0, raw2_envelope = 0, raw_packed = 0;
  double rawpub1 = 0, rawpub1_packed = 0, rawpub2 = 0;
  double disk_sync_p99_us = 0;

  using Step = std::pair<std::string, std::function<void()>>;
  const std::string per_s = "msgs/s";
  std::vector<Step> steps = {
      {"limits", [&] {
         raw1 = RawPushPull(options.messages, size, 1);
         raw2 = RawPushPull(options.messages, size, 2);
         // With header frames the size of the library's: a frame over libzmq's inline limit (33
         // bytes) costs raw libzmq itself about a quarter of its rate (docs/performance.md).
         const std::size_t header_bytes = EnvelopeHeaderBytes();
         const std::size_t fanout_header_bytes = FanoutHeaderBytes(options.messages);
         raw2_envelope = RawPushPull(options.messages, size, 2, header_bytes);
         // A Producer's messages as they travel (packed: header and body in one frame).
         raw_packed = RawPushPull(options.messages, header_bytes + size, 1);
         figures.push_back({"limits", "raw libzmq PUSH->PULL tcp, 1 frame", raw1, per_s, ""});
         figures.push_back({"limits", "raw libzmq PUSH->PULL tcp, 2 frames", raw2, per_s, Ratio(raw2, raw1, "1 frame")});
         figures.push_back({"limits", "raw libzmq PUSH->PULL tcp, 2 frames, " + std::to_string(header_bytes) +
                                          "-byte header", raw2_envelope, per_s,
                            Ratio(raw2_envelope, raw2, "24-byte header")});
         figures.push_back({"limits", "raw libzmq PUSH->PULL tcp, 1 frame of " +
                                          std::to_string(header_bytes + size) + " bytes (packed envelope)",
                            raw_packed, per_s, Ratio(raw_packed, raw1, "1 frame")});
         rawpub1 = RawPubSub(options.messages, size, 1);
         rawpub2 = RawPubSub(options.messages, size, 2);
         rawpub1_packed = RawPubSub(options.messages, size, 1, fanout_header_bytes);
         figures.push_back({"limits", "raw libzmq PUB->SUB tcp, 1 subscriber", rawpub1, per_s, ""});
         figures.push_back({"limits", "raw libzmq PUB->SUB tcp, 1 subscriber, 1 frame of " +
                                          std::to_string(fanout_header_bytes + size + 2) +
                                          " bytes (topic-packed envelope)",
                            rawpub1_packed, per_s, Ratio(rawpub1_packed, rawpub1, "1 frame")});
         figures.push_back({"limits", "raw libzmq PUB->SUB tcp, 2 subscribers (each)", rawpub2, per_s, ""});
       }},
      {"disk", [&] {
         auto disk = MeasureDisk(data_dir, options.quick ? 200ms : 2s,
                                 options.quick ? (std::size_t{16} << 20) : (std::size_t{256} << 20));
         disk_sync_p99_us = disk.sync_p99_us;
         figures.push_back({"limits", "disk: 100 B append + fdatasync", disk.syncs_per_s, "syncs/s",
                            "p50 " + Human(disk.sync_p50_us) + " us, p99 " + Human(disk.sync_p99_us) + " us"});
         figures.push_back({"limits", "disk: sequential write", disk.write_mb_per_s, "MB/s", ""});
       }},
      {"brokerless", [&] {
         const double queue = LibraryWorkQueue(options.messages, size);
         figures.push_back({"brokerless", "work queue Producer->Worker", queue, per_s,
                            raw2 > 0 ? Ratio(queue, raw2, "raw 2-frame") + ", " +
                                           Ratio(queue, raw_packed, "raw, packed-envelope-sized")
                                     : "run with limits for the ratio"});
         const double fan1 = LibraryFanout(options.messages, size, 1);
         const double fan2 = LibraryFanout(options.messages, size, 2);
         figures.push_back({"brokerless", "fanout Publisher->1 Subscriber", fan1, per_s,
                            Ratio(fan1, rawpub1, "raw PUB/SUB") + ", " +
                                Ratio(fan1, rawpub1_packed, "raw, topic-packed-envelope-sized")});
         figures.push_back({"brokerless", "fanout Publisher->2 Subscribers (each)", fan2, per_s, Ratio(fan2, rawpub2, "raw PUB/SUB")});
       }},
      {"broker", [&] {
         // Each case twice: one Publish() call per message, then PublishBatch() of publish_batch
         // envelopes (packed PUBLISH messages, as Redis pipelines and SQS's SendMessageBatch).
         const std::string batched = "PublishBatch(" + std::to_string(options.publish_batch) + ")";
         for (Storage storage : {Storage::kMemory, Storage::kNever, Storage::kBatch, Storage::kAlways}) {
           for (std::uint64_t batch : {std::uint64_t{1}, options.publish_batch}) {
             const std::string what = std::string("1 producer, 1 consumer, ") + StorageName(storage) + ", " +
                                      (batch == 1 ? std::string("Publish()") : batched);
             const double rate = BrokerEndToEnd(storage, broker_dir, options.broker_messages, size, 1, batch);
             if (rate == 0) failures.push_back("broker " + what);
             figures.push_back({"broker", "end to end " + what, rate, per_s, Ratio(rate, raw2, "raw 2-frame")});
           }
         }
         for (Storage storage : {Storage::kMemory, Storage::kBatch}) {
           const std::string what = std::string("4 producers, 4 consumers, ") + StorageName(storage) + ", " + batched;
           const double rate = BrokerEndToEnd(storage, broker_dir, options.broker_messages, size, 4,
                                              options.publish_batch);
           if (rate == 0) failures.push_back("broker " + what);
           figures.push_back({"broker", "end to end " + what, rate, per_s, ""});
         }
       }},
      {"idle", [&] {
         // Idle declared queues must cost nothing per message: time is looked up in one index
         // across queues, not by walking them all on every turn.
         const std::uint64_t paced = options.quick ? 300 : 4000;
         const double few = BrokerCpuPerMessage_us(10, paced, size, 500us);
         const double many = BrokerCpuPerMessage_us(options.quick ? 1000 : 10000, paced, size, 500us);
         if (few == 0 || many == 0) failures.push_back("idle queues");
         figures.push_back({"idle", "broker CPU per message, 1 message per 500 us, 10 idle queues", few, "us", ""});
         figures.push_back({"idle", std::string("broker CPU per message, 1 message per 500 us, ") +
                                        (options.quick ? "1,000" : "10,000") + " idle queues",
                            many, "us", Ratio(many, few, "10 idle queues")});
       }},
      {"backlog", [&] {
         for (Storage storage : {Storage::kMemory, Storage::kBatch}) {
           auto backlog = Backlog(storage, broker_dir, options.backlog, size, options.publish_batch);
           const std::string what = std::string(" (") + Human(static_cast<double>(options.backlog)) + ", " + StorageName(storage) + ")";
           if (backlog.drain_per_s == 0) failures.push_back("backlog" + what);
           figures.push_back({"backlog", "publish with no consumer" + what, backlog.publish_per_s, per_s,
                              "PublishBatch(" + std::to_string(options.publish_batch) + ")"});
           figures.push_back({"backlog", "drain" + what, backlog.drain_per_s, per_s, ""});
           figures.push_back({"memory", "RSS per queued message" + what, backlog.rss_bytes_per_message, "bytes",
                              "body " + std::to_string(size) + " B"});
         }
         std::filesystem::remove_all(broker_dir);
       }},
      {"scaling", [&] {
         // Costs must grow linearly with depth: the same publish-then-drain at 1K to 1M messages
         // queued, as time per message, against the smallest depth's (no O(n) work per message
         // hidden in a queue or an index).
         double smallest_us = 0;
         for (std::uint64_t depth = 1'000; depth <= options.backlog; depth *= 10) {
           auto run = Backlog(Storage::kMemory, broker_dir, depth, size, options.publish_batch);
           const std::string what = "publish then drain, " + Human(static_cast<double>(depth)) + " queued, in memory";
           if (run.drain_per_s == 0) {
             failures.push_back("scaling " + what);
             continue;
           }
           const double per_message_us = 1e6 / run.publish_per_s + 1e6 / run.drain_per_s;
           if (smallest_us == 0) smallest_us = per_message_us;
           figures.push_back({"scaling", what, per_message_us, "us/msg",
                              Ratio(per_message_us, smallest_us, "the 1K cost")});
         }
         std::filesystem::remove_all(broker_dir);
       }},
      {"latency", [&] {
         auto spread = [](const Percentiles& p) { return "p99 " + Human(p.p99) + ", p999 " + Human(p.p999); };
         auto raw = RawRoundTrip(options.latency_samples, size);
         figures.push_back({"latency", "raw libzmq REQ/REP round trip p50, back to back", raw.p50, "us", spread(raw)});
         auto one_hop = RawOneWay(options.latency_samples, size, 500us, /*relay=*/false);
         figures.push_back({"latency", "raw libzmq PUSH->PULL at 500 us gaps p50, 1 hop", one_hop.p50, "us", spread(one_hop)});
         auto two_hops = RawOneWay(options.latency_samples, size, 500us, /*relay=*/true);
         figures.push_back({"latency", "raw libzmq PUSH->relay->PULL at 500 us gaps p50, 2 hops", two_hops.p50, "us",
                            spread(two_hops)});
         // "never" writes the journal without syncing: it tells the write path's share of the
         // durable tail from the sync's.
         for (Storage storage : {Storage::kMemory, Storage::kNever, Storage::kBatch}) {
           auto p = BrokerLatency(storage, broker_dir, options.latency_samples, size, 500us);
           if (p.p50 == 0) failures.push_back(std::string("latency ") + StorageName(storage));
           std::string versus = spread(p) + "; p50 " + Ratio(p.p50, two_hops.p50, "raw 2 hops");
           if (storage == Storage::kBatch && disk_sync_p99_us > 0) {
             // The bound for durable p99: one sync (the disk's p99 in this run) + 0.5 ms.
             versus += "; p99 " + Ratio(p.p99, disk_sync_p99_us + 500, "disk p99 + 0.5 ms");
           }
           figures.push_back({"latency", std::string("broker publish->deliver at 500 us gaps p50, ") + StorageName(storage),
                              p.p50, "us", versus});
         }
         // What a confirm costs a publisher that waits for each: the other side of the sync
         // spacing that keeps the delivery tail above short (BrokerOptions::min_sync_interval).
         const std::string interval = std::to_string(bench_min_sync_interval.count()) + " us apart";
         for (Storage storage : {Storage::kBatch, Storage::kAlways}) {
           auto p = ConfirmLatency(storage, broker_dir, options.latency_samples, size, 500us);
           if (p.p50 == 0) failures.push_back(std::string("confirm latency ") + StorageName(storage));
           std::string versus = spread(p);
           if (storage == Storage::kBatch) versus += "; syncs at least " + interval;
           figures.push_back({"latency", std::string("broker publish->confirm, one at a time, p50, ") + StorageName(storage),
                              p.p50, "us", versus});
         }
         const auto timeout = options.quick ? 200ms : 1000ms;
         const double redelivered = RedeliveryAfter(timeout);
         if (redelivered == 0) failures.push_back("redelivery");
         figures.push_back({"latency", "redelivery after a " + std::to_string(timeout.count()) + " ms ack timeout",
                            redelivered, "s", "broker defaults"});
       }},
      {"recovery", [&] {
         const double seconds = Recovery(broker_dir, options.backlog, size);
         if (seconds == 0) failures.push_back("recovery");
         figures.push_back({"recovery", "start to serving, " + Human(static_cast<double>(options.backlog)) + " unsettled messages",
                            seconds, "s", ""});
       }},
  };
  // --only names steps exactly, comma-separated ("broker" is not "brokerless").
  std::vector<Step> chosen;
  const std::string only = "," + options.only + ",";
  for (auto& step : steps) {
    if (options.only.empty() || only.find("," + step.first + ",") != std::string::npos) {
      chosen.push_back(std::move(step));
    }
  }
  if (chosen.empty()) {
    std::cerr << "zmqkit bench: no step named " << options.only
              << " (steps: limits disk brokerless broker idle backlog scaling latency recovery)\n";
    return 2;
  }

  Progress progress(std::cerr, "bench", chosen.size(),
                    ::isatty(STDERR_FILENO) ? Progress::Style::kBar : Progress::Style::kNone);
  std::uint64_t done = 0;
  for (auto& [name, run] : chosen) {
    if (!::isatty(STDERR_FILENO)) std::cerr << "bench: " << name << "\n";
    try {
      run();
    } catch (const std::exception& error) {
      failures.push_back(name + ": " + error.what());
    }
    progress.Update(++done);
  }
  progress.Finish();
  std::filesystem::remove_all(data_dir);

  if (options.json) {
    std::cout << "{\"size\": " << size << ", \"quick\": " << (options.quick ? "true" : "false")
              << ", \"figures\": [";
    for (std::size_t i = 0; i < figures.size(); ++i) {
      const Figure& f = figures[i];
      std::cout << (i ? ",\n  " : "\n  ") << "{\"section\": " << JsonString(f.section) << ", \"name\": "
                << JsonString(f.name) << ", \"value\": " << std::fixed << std::setprecision(2)
                << f.value << ", \"unit\": " << JsonString(f.unit) << ", \"versus\": " << JsonString(f.versus)
                << "}";
    }
    std::cout << "\n], \"failures\": [";
    for (std::size_t i = 0; i < failures.size(); ++i) {
      std::cout << (i ? ", " : "") << JsonString(failures[i]);
    }
    std::cout << "]}\n";
  } else {
    std::cout << size << "-byte messages" << (options.quick ? " (quick: small counts, figures are rough)" : "")
              << "\n\n";
    // The name column is as wide as the longest name, so every row's figures line up.
    int name_width = 12;
    for (const Figure& f : figures) name_width = std::max(name_width, static_cast<int>(f.name.size()) + 2);
    std::cout << std::left << std::setw(12) << "section" << std::setw(name_width) << "measurement" << std::right
              << std::setw(13) << "value" << "  " << std::left << std::setw(8) << "unit" << "versus\n";
    for (const Figure& f : figures) {
      std::cout << std::left << std::setw(12) << f.section << std::setw(name_width) << f.name << std::right
                << std::setw(13) << Human(f.value) << "  " << std::left << std::setw(8) << f.unit
                << f.versus << "\n";
    }
    for (const std::string& failure : failures) std::cout << "FAILED: " << failure << "\n";
  }
  return failures.empty() ? 0 : 1;
}

}  // namespace zmqkit::tools
