// zmqkit::Broker: the broker's socket loop — the only part of the broker that polls, reads the clock
// or touches sockets. Each turn: do what time has made due, sleep until the next deadline or input,
// hand a burst of input to the core, flush confirms, send what the core produced.
#include "zmqkit/broker.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <mutex>

#include "broker/broker_core.h"
#include "frames.h"
#include "storage/journal.h"
#include "zmqkit/zap_server.h"

namespace zmqkit {
namespace {

// Messages read from one socket per turn before the other gets a look (fairness) and before
// confirms are flushed (batching).
constexpr int kBurst = 1024;
// Group commit (FsyncPolicy::kBatch): keep reading input that is already waiting, for at most this
// long or this many records, before one sync covers it all.
constexpr auto kBatchWindow = std::chrono::milliseconds(2);
constexpr std::size_t kBatchRecords = 1000;
// While the journal cannot write, commits are retried this often.
constexpr auto kJournalRetry = std::chrono::milliseconds(100);

class JournalAdapter final : public internal::JournalSink {
 public:
  explicit JournalAdapter(internal::Journal& journal) : journal_(journal) {}
  void Append(std::string record) override { journal_.Append(std::move(record)); }

 private:
  internal::Journal& journal_;
};

internal::FsyncMode ToFsyncMode(FsyncPolicy policy) {
  switch (policy) {
    case FsyncPolicy::kAlways: return internal::FsyncMode::kAlways;
    case FsyncPolicy::kBatch: return internal::FsyncMode::kBatch;
    case FsyncPolicy::kNever: return internal::FsyncMode::kNever;
  }
  return internal::FsyncMode::kBatch;
}

bool NeedsZap(const BrokerOptions& options) {
  return options.access.active() || !options.admin_keys.empty();
}

// Checks the options and fills in what follows from them, before any socket is opened.
BrokerOptions PrepareOptions(BrokerOptions options) {
  // A PUBLISH is five frames; fewer would refuse every client.
  if (options.max_frames < 5) throw BrokerStartError("max_frames must be at least 5");
  if (options.socket.max_frame_bytes < 0) {
    // Room above the limit, so a message slightly too large reaches the core and gets a clear
    // refusal; a grossly oversized frame is dropped by libzmq (disconnecting its sender) before
    // it is allocated.
    options.socket.max_frame_bytes = static_cast<std::int64_t>(options.max_message_bytes) + 64 * 1024;
  }
  const bool keys = options.access.allowed_keys.has_value() || !options.admin_keys.empty();
  if (keys && !options.socket.curve.server()) {
    throw BrokerStartError(
        "allowed keys and admin keys need CURVE: give the broker its secret key (--curve-secret)");
  }
  for (const std::string& key : options.admin_keys) {
    if (options.access.allowed_keys) options.access.allowed_keys->insert(key);
  }
  if (NeedsZap(options)) options.socket.zap_domain = std::string(kZapDomain);
  return options;
}

std::string NextControlAddress() {
  static std::atomic<std::uint64_t> counter{0};
  return "inproc://zmqkit-broker-control-" + std::to_string(counter.fetch_add(1));
}

}  // namespace

namespace internal {
// Lines the ZAP thread logged, for the broker's thread to pass to its log.
struct ZapLog {
  std::mutex mutex;
  std::vector<std::string> lines;
};
}  // namespace internal

Broker::Broker(zmq::context_t& context, BrokerOptions options, const Clock* clock)
    : context_(context),
      options_(PrepareOptions(std::move(options))),
      clock_(clock ? *clock : steady_clock_),
      core_(std::make_unique<internal::BrokerCore>(options_)),
      clients_(OpenSocket(context, zmq::socket_type::router, options_.socket)),
      workers_(OpenSocket(context, zmq::socket_type::router, options_.socket)),
      control_(OpenSocket(context, zmq::socket_type::pull, SocketOptions{})),
      control_address_(NextControlAddress()) {
  if (!options_.data_dir.empty()) {
    internal::JournalOptions journal_options;
    journal_options.directory = options_.data_dir;
    journal_options.fsync = ToFsyncMode(options_.fsync);
    journal_options.segment_bytes = options_.segment_bytes;
    journal_options.salvage = options_.salvage;
    internal::RecoveryReport report;
    const TimePoint now = clock_.Now();
    auto journal = internal::Journal::Open(
        journal_options, [&](std::string_view record) { return core_->Replay(record, now); },
        &report);
    if (!journal.ok()) throw BrokerStartError(journal.error().message());
    journal_ = std::move(*journal);
    journal_sink_ = std::make_unique<JournalAdapter>(*journal_);
    core_->set_journal(journal_sink_.get());
    if (options_.fsync != FsyncPolicy::kNever) core_->set_confirm_level("on-disk");
    recovery_summary_ =
        "recovered " + std::to_string(report.records) + " journal records from " +
        std::to_string(report.segments) + " segment(s) in " +
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(report.took).count()) +
        " ms" +
        (report.torn_bytes_dropped > 0
             ? "; dropped a torn tail of " + std::to_string(report.torn_bytes_dropped) + " bytes"
             : "") +
        (report.corruptions.empty()
             ? ""
             : "; SALVAGED past " + std::to_string(report.corruptions.size()) +
                   " damaged place(s), first: " + report.corruptions.front());
  }
  if (NeedsZap(options_)) {
    // Before binding: libzmq asks the handler about each connection as it is accepted.
    zap_log_ = std::make_unique<internal::ZapLog>();
    zap_ = std::make_unique<ZapServer>(context, options_.access, [log = zap_log_.get()](std::string_view line) {
      std::lock_guard lock(log->mutex);
      if (log->lines.size() < 100) log->lines.emplace_back(line);
    });
  }
  clients_endpoint_ = AttachSocket(clients_, options_.clients);
  workers_endpoint_ = AttachSocket(workers_, options_.workers);
  control_.bind(control_address_);
  log_ = [](std::string_view line) { std::cerr << "zmqkit-broker: " << line << std::endl; };
}

Broker::~Broker() = default;

const BrokerCounters& Broker::counters() const { return core_->counters(); }

void Broker::Stop() {
  zmq::socket_t stop = OpenSocket(context_, zmq::socket_type::push, SocketOptions{});
  stop.connect(control_address_);
  stop.send(zmq::str_buffer("STOP"), zmq::send_flags::dontwait);
}

void Broker::Run() {
  std::vector<zmq::message_t> frames;
  if (!recovery_summary_.empty()) log_(recovery_summary_);
  if (journal_) core_->mutable_counters().journal_syncs = journal_->syncs();
  // Confirms for records the journal could not write yet; sent once a commit succeeds.
  std::vector<internal::Outgoing> held_confirms;
  bool journal_failing = false;
  auto is_confirm = [](const internal::Outgoing& out) {
    return out.frames.size() > 1 && out.frames[1].size() == 7 &&
           std::memcmp(out.frames[1].data(), "CONFIRM", 7) == 0;
  };
  // No reply leaves before the records of its turn are durable (a confirm promises that). Under
  // kBatch, records no reply waits on (a turn that only took acks, say) are only written: safe
  // from the broker being killed, and synced by the next turn with a reply, or max_unsynced_age
  // later. Losing them to a power cut only redelivers what was acked.
  // When written-but-unsynced records must be synced at the latest; nullopt: none are waiting.
  auto lazy_sync_at = [&]() -> std::optional<std::chrono::steady_clock::time_point> {
    auto since = journal_ ? journal_->unsynced_since() : std::nullopt;
    if (!since) return std::nullopt;
    return *since + options_.max_unsynced_age;
  };
  auto lazy_sync_due = [&] {
    auto at = lazy_sync_at();
    return at && std::chrono::steady_clock::now() >= *at;
  };
  auto commit = [&](bool reply_waits) {
    if (!journal_) return;
    const bool sync = reply_waits || options_.fsync != FsyncPolicy::kBatch || lazy_sync_due();
    if (journal_->pending() == 0 && !(sync && journal_->unsynced_since())) return;
    Status committed =
        journal_->Commit(sync ? internal::Durability::kSynced : internal::Durability::kWritten);
    core_->mutable_counters().journal_syncs = journal_->syncs();
    if (!committed.ok()) {
      ++core_->mutable_counters().journal_failures;
      if (!journal_failing) {
        log_("journal write failed: " + committed.message() +
             " — holding confirms and refusing publishes until it recovers");
      }
      journal_failing = true;
      core_->set_publish_refusal("the broker cannot write its journal: " + committed.message());
      auto& outbox = core_->outbox();
      for (auto it = outbox.begin(); it != outbox.end();) {
        if (is_confirm(*it)) {
          held_confirms.push_back(std::move(*it));
          it = outbox.erase(it);
        } else {
          ++it;
        }
      }
      return;
    }
    if (journal_->NeedsCompaction([this] { return core_->LiveBytes(); })) {
      const std::uint64_t before = journal_->disk_bytes();
      Status compacted = journal_->Compact(core_->SnapshotRecords(clock_.Now()));
      if (compacted.ok()) {
        log_("journal compacted: " + std::to_string(before) + " -> " +
             std::to_string(journal_->disk_bytes()) + " bytes");
      } else {
        log_("journal compaction failed (the journal is unchanged): " + compacted.message());
      }
    }
    if (journal_failing) {
      journal_failing = false;
      core_->set_publish_refusal(std::nullopt);
      log_("journal writes again; " + std::to_string(held_confirms.size()) + " held confirm(s) sent");
      auto& outbox = core_->outbox();
      outbox.insert(outbox.begin(), std::make_move_iterator(held_confirms.begin()),
                    std::make_move_iterator(held_confirms.end()));
      held_confirms.clear();
    }
  };
  auto send = [&](internal::Outgoing& out) {
    zmq::socket_t& socket = out.side == internal::Side::kClients ? clients_ : workers_;
    // ROUTER drops what it cannot route (the peer is gone) instead of blocking: a vanished peer
    // must not stall everyone else. The core's liveness check then forgets it.
    socket.send(zmq::buffer(out.peer), zmq::send_flags::sndmore);
    internal::SendAll(socket, out.frames);
  };
  auto send_outbox = [&] {
    auto& outbox = core_->outbox();
    std::size_t sent = 0;
    bool failed_writing = false;
    if (journal_ && options_.fsync == FsyncPolicy::kBatch && !journal_failing) {
      // Deliveries promise nothing about the journal, so under group commit those at the front
      // leave once this turn's records are written, without waiting for the sync: a consumer gets
      // a message one fdatasync sooner. Written first, so a killed broker never forgets a message
      // it delivered; a power cut can, and its publisher, never confirmed, publishes it again.
      commit(/*reply_waits=*/false);
      failed_writing = journal_failing;
      while (!failed_writing && sent < outbox.size() && outbox[sent].delivery) send(outbox[sent++]);
    }
    if (!failed_writing) commit(/*reply_waits=*/outbox.size() > sent || !held_confirms.empty());
    for (; sent < outbox.size(); ++sent) send(outbox[sent]);
    outbox.clear();
    for (const std::string& line : core_->TakeLog()) log_(line);
    if (zap_) {
      core_->mutable_counters().connections_refused = zap_->refused();
      std::vector<std::string> zap_lines;
      {
        std::lock_guard lock(zap_log_->mutex);
        zap_lines.swap(zap_log_->lines);
      }
      for (const std::string& line : zap_lines) log_(line);
    }
  };
  auto drain = [&](zmq::socket_t& socket, internal::Side side) {
    for (int i = 0; i < kBurst; ++i) {
      std::size_t dropped = 0;
      // + 1: the routing id ROUTER puts in front.
      std::size_t count = internal::RecvAllCapped(socket, frames, zmq::recv_flags::dontwait,
                                                  options_.max_frames + 1, dropped);
      if (count == 0) return;
      const TimePoint now = clock_.Now();
      std::string_view peer(frames[0].data<char>(), frames[0].size());
      if (dropped > 0) {
        core_->OnOversizedMessage(side, peer, now);
        continue;
      }
      std::span<zmq::message_t> rest(frames.data() + 1, count - 1);
      if (side == internal::Side::kClients) {
        core_->OnClientMessage(peer, rest, now);
      } else {
        core_->OnWorkerMessage(peer, rest, now);
      }
    }
  };

  for (;;) {
    try {
      const TimePoint now = clock_.Now();
      core_->Tick(now);
      send_outbox();
      std::chrono::milliseconds timeout(-1);
      if (auto deadline = core_->NextDeadline()) {
        timeout = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(*deadline - now),
                             std::chrono::milliseconds(0), std::chrono::milliseconds(60000));
      }
      if (journal_failing && (timeout < std::chrono::milliseconds(0) || timeout > kJournalRetry)) {
        timeout = kJournalRetry;
      }
      if (auto at = lazy_sync_at()) {
        const auto due = std::max(std::chrono::milliseconds(0),
                                  std::chrono::ceil<std::chrono::milliseconds>(
                                      *at - std::chrono::steady_clock::now()));
        if (timeout < std::chrono::milliseconds(0) || timeout > due) timeout = due;
      }
      zmq::pollitem_t items[] = {{clients_.handle(), 0, ZMQ_POLLIN, 0},
                                 {workers_.handle(), 0, ZMQ_POLLIN, 0},
                                 {control_.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 3, timeout);
      if (items[2].revents & ZMQ_POLLIN) {
        commit(/*reply_waits=*/true);  // whatever is not yet durable, though nothing waits for it
        return;
      }
      if (items[0].revents & ZMQ_POLLIN) drain(clients_, internal::Side::kClients);
      if (items[1].revents & ZMQ_POLLIN) drain(workers_, internal::Side::kWorkers);
      if (journal_ && options_.fsync == FsyncPolicy::kBatch) {
        // Group commit: while more input is already waiting, take it into the same sync.
        const auto window_end = std::chrono::steady_clock::now() + kBatchWindow;
        while (journal_->pending() > 0 && journal_->pending() < kBatchRecords &&
               std::chrono::steady_clock::now() < window_end) {
          zmq::pollitem_t more[] = {{clients_.handle(), 0, ZMQ_POLLIN, 0},
                                    {workers_.handle(), 0, ZMQ_POLLIN, 0}};
          if (zmq::poll(more, 2, std::chrono::milliseconds(0)) <= 0) break;
          if (more[0].revents & ZMQ_POLLIN) drain(clients_, internal::Side::kClients);
          if (more[1].revents & ZMQ_POLLIN) drain(workers_, internal::Side::kWorkers);
        }
      }
      core_->Flush();
      send_outbox();
    } catch (const zmq::error_t& error) {
      if (error.num() == EINTR) continue;
      if (error.num() == ETERM) return;
      throw;
    }
  }
}

}  // namespace zmqkit
