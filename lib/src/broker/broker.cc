// zmqkit::Broker: the broker's socket loop — the only part of the broker that polls, reads the clock
// or touches sockets. Each turn: do what time has made due, sleep until the next deadline or input,
// hand a burst of input to the core, flush confirms, send what the core produced.
#include "zmqkit/broker.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <iostream>
#include <mutex>

#include "broker/broker_core.h"
#include "broker/commit_scheduler.h"
#include "broker/peer_output.h"
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

// A one-shot timer the loop polls beside its sockets. zmq::poll's own timeout is in milliseconds,
// too coarse to hold a sync back for a fraction of one.
class PollableTimer {
 public:
  PollableTimer() : fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {}
  ~PollableTimer() {
    if (fd_ >= 0) ::close(fd_);
  }
  PollableTimer(const PollableTimer&) = delete;
  PollableTimer& operator=(const PollableTimer&) = delete;

  // -1 if the timer could not be made; the loop's millisecond timeout still wakes it then.
  int fd() const { return fd_; }
  // Readable from `at` on (steady_clock is CLOCK_MONOTONIC on Linux).
  void ArmAt(std::chrono::steady_clock::time_point at) {
    if (fd_ < 0) return;
    const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch());
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(since_epoch.count() / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(since_epoch.count() % 1'000'000'000);
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;  // 0 disarms
    ::timerfd_settime(fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
  }
  // Takes the expiry, so the fd is no longer readable.
  void Clear() {
    std::uint64_t expirations = 0;
    [[maybe_unused]] auto ignored = ::read(fd_, &expirations, sizeof expirations);
  }

 private:
  int fd_;
};

class JournalAdapter final : public internal::JournalSink {
 public:
  explicit JournalAdapter(internal::Journal& journal) : journal_(journal) {}
  void Append(std::string record) override { journal_.Append(std::move(record)); }

 private:
  internal::Journal& journal_;
};

// The journal as the commit scheduler sees it.
class JournalCommits final : public internal::CommitJournal {
 public:
  explicit JournalCommits(internal::Journal& journal) : journal_(journal) {}
  std::size_t pending() const override { return journal_.pending(); }
  Status Write() override { return journal_.Write(); }
  std::uint64_t written() const override { return journal_.written(); }
  std::uint64_t synced() const override { return journal_.synced(); }
  void StartSync() override { journal_.StartSync(); }
  bool syncing() const override { return journal_.syncing(); }
  Status FinishSync() override { return journal_.FinishSync(); }
  std::optional<TimePoint> unsynced_since() const override { return journal_.unsynced_since(); }

 private:
  internal::Journal& journal_;
};

// What the broker does when the commit scheduler reports: log, refuse publishes while the journal
// fails, compact once a write leaves nothing pending.
class CommitLog final : public internal::CommitEvents {
 public:
  CommitLog(internal::Journal& journal, internal::BrokerCore& core, const Clock& clock,
            const std::function<void(std::string_view)>& log)
      : journal_(journal), core_(core), clock_(clock), log_(log) {}

  void JournalFailed(const Status& failure, bool first) override {
    ++core_.mutable_counters().journal_failures;
    core_.mutable_counters().journal_syncs = journal_.syncs();
    if (first) {
      log_("journal write failed: " + failure.message() +
           " — holding confirms and refusing publishes until it recovers");
    }
    core_.set_publish_refusal("the broker cannot write its journal: " + failure.message());
  }
  void JournalRecovered(std::size_t released) override {
    core_.set_publish_refusal(std::nullopt);
    log_("journal writes again; " + std::to_string(released) + " held message(s) sent");
  }
  bool AfterWrite() override {
    if (!journal_.NeedsCompaction([this] { return core_.LiveBytes(); })) return false;
    const std::uint64_t before = journal_.disk_bytes();
    Status compacted = journal_.Compact(core_.SnapshotRecords(clock_.Now()));
    if (compacted.ok()) {
      log_("journal compacted: " + std::to_string(before) + " -> " +
           std::to_string(journal_.disk_bytes()) + " bytes");
    } else {
      log_("journal compaction failed (the journal is unchanged): " + compacted.message());
    }
    // Compacting took a sync that ran, and a snapshot counts as a sync of everything before it,
    // even when it failed part way.
    return true;
  }

 private:
  internal::Journal& journal_;
  internal::BrokerCore& core_;
  const Clock& clock_;
  const std::function<void(std::string_view)>& log_;
};

internal::FsyncMode ToFsyncMode(FsyncPolicy policy) {
  switch (policy) {
    case FsyncPolicy::kAlways: return internal::FsyncMode::kAlways;
    case FsyncPolicy::kBatch: return internal::FsyncMode::kBatch;
    case FsyncPolicy::kNever: return internal::FsyncMode::kNever;
  }
  return internal::FsyncMode::kBatch;
}

// What a salvaged start skipped, in records and messages, not only bytes: an operator must know
// what was lost. Empty if nothing was damaged.
std::string SalvageSummary(const internal::RecoveryReport& report,
                           const internal::BrokerCore::ReplayAudit& audit) {
  if (report.corruptions.empty() && report.records_unapplied == 0) return "";
  std::string summary = "; SALVAGED past " + std::to_string(report.corruptions.size()) +
                        " damaged place(s)";
  if (report.segments_missing > 0) {
    summary += " (" + std::to_string(report.segments_missing) + " whole segment(s) missing)";
  }
  if (!report.corruptions.empty()) summary += ", first: " + report.corruptions.front();
  const std::uint64_t lost = audit.messages_missing - std::min(audit.messages_missing, audit.missing_acked);
  summary += "; the damage took the records of " + std::to_string(audit.messages_missing) +
             " message(s) as numbered in their queues (" + std::to_string(audit.missing_acked) +
             " of them acked later, " + std::to_string(lost) +
             " lost); records of messages beyond the last number seen cannot be counted";
  if (report.records_unapplied > 0) {
    summary += "; skipped " + std::to_string(report.records_unapplied) +
               " record(s) naming what the damage removed, first: " + report.first_unapplied;
  }
  return summary;
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
    // Synced before anyone is served: a tag given in this run must not be given by the next. A
    // damaged journal may have lost the last run's EPOCH record: go well past what survived.
    core_->BeginJournaledEpoch(report.corruptions.empty() ? 1 : 1024);
    if (Status committed = journal_->Commit(); !committed.ok()) {
      throw BrokerStartError("cannot journal this run's delivery tag epoch: " + committed.message());
    }
    // A salvaged journal still holds its damage: rewritten as a snapshot of what was recovered,
    // the next start finds it whole instead of refusing again.
    const bool salvaged = !report.corruptions.empty() || report.records_unapplied > 0;
    if (salvaged) {
      if (Status compacted = journal_->Compact(core_->SnapshotRecords(now)); !compacted.ok()) {
        throw BrokerStartError("salvaged, but cannot rewrite the journal without its damage: " +
                               compacted.message());
      }
    }
    recovery_summary_ =
        "recovered " + std::to_string(report.records) + " journal records from " +
        std::to_string(report.segments) + " segment(s) in " +
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(report.took).count()) +
        " ms" +
        (report.torn_bytes_dropped > 0
             ? "; dropped a torn tail of " + std::to_string(report.torn_bytes_dropped) + " bytes"
             : "") +
        SalvageSummary(report, core_->replay_audit()) +
        (salvaged ? "; the journal was rewritten without the damage" : "");
  }
  if (NeedsZap(options_)) {
    // Before binding: libzmq asks the handler about each connection as it is accepted.
    zap_log_ = std::make_unique<internal::ZapLog>();
    zap_ = std::make_unique<ZapServer>(context, options_.access, [log = zap_log_.get()](std::string_view line) {
      std::lock_guard lock(log->mutex);
      if (log->lines.size() < 100) log->lines.emplace_back(line);
    });
  }
  // A send to a peer whose queue is full, or who is gone, fails instead of vanishing: the loop
  // takes the deliveries back and holds the answers (Run).
  clients_.set(zmq::sockopt::router_mandatory, 1);
  workers_.set(zmq::sockopt::router_mandatory, 1);
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
  // What a peer's connection will not take is held or handed back, never dropped (PeerOutput).
  internal::PeerOutput output(
      [this](internal::Outgoing& out) {
        zmq::socket_t& socket = out.side == internal::Side::kClients ? clients_ : workers_;
        try {
          // dontwait: ROUTER_MANDATORY would otherwise block on a full peer, stalling everyone.
          if (!socket.send(zmq::buffer(out.peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
            return internal::SendResult::kFull;
          }
        } catch (const zmq::error_t& error) {
          // The core's liveness check forgets the peer.
          if (error.num() == EHOSTUNREACH) return internal::SendResult::kGone;
          throw;
        }
        // Once the routing id is taken, libzmq takes the rest of the message whole.
        internal::SendAll(socket, out.frames);
        return internal::SendResult::kSent;
      },
      core_->mutable_counters(), [this](std::string_view line) { log_(line); });
  // Held answers are tried again this often: a full peer's queue is not polled for room.
  constexpr auto kHeldAnswersRetry = std::chrono::milliseconds(5);
  auto send = [&](internal::Outgoing& out) { output.Send(out); };
  // Messages waiting for the journal to sync what they depend on (docs/broker.md, "Durability").
  // The disk syncs on the journal's own thread meanwhile, and this loop goes on serving.
  std::optional<JournalCommits> commits;
  std::optional<CommitLog> commit_log;
  std::optional<internal::CommitScheduler> scheduler;
  if (journal_) {
    commits.emplace(*journal_);
    commit_log.emplace(*journal_, *core_, clock_, log_);
    internal::CommitPolicy policy;
    policy.group_commit = options_.fsync == FsyncPolicy::kBatch;
    policy.min_sync_interval = options_.min_sync_interval;
    policy.max_unsynced_age = options_.max_unsynced_age;
    policy.retry_after_failure = kJournalRetry;
    // The real clock, not the injected one: syncs take real time, and the spacing timer is armed
    // on CLOCK_MONOTONIC.
    scheduler.emplace(*commits, steady_clock_, policy, *commit_log);
  }
  PollableTimer sync_spacing;
  std::vector<internal::Outgoing> to_send;
  auto send_all = [&] {
    for (internal::Outgoing& out : to_send) send(out);
    to_send.clear();
  };
  // Ends a turn: writes what it journaled, then sends what it produced or hands it to the gate.
  auto finish_turn_once = [&] {
    if (output.holding()) output.RetryHeld();
    auto& outbox = core_->outbox();
    if (!scheduler) {
      for (internal::Outgoing& out : outbox) send(out);
      outbox.clear();
    } else {
      scheduler->EndTurn(outbox, to_send);
      send_all();
      if (auto held_until = scheduler->sync_held_until()) sync_spacing.ArmAt(*held_until);
      core_->mutable_counters().journal_syncs = journal_->syncs();
    }
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
  // Deliveries a connection refused go back to the core, which may hand them to other consumers:
  // those are sent (or refused) in turn. Each round pauses the refusing peers, so it ends.
  auto hand_back_refused = [&] {
    while (output.has_refused_deliveries()) {
      const std::vector<internal::Outgoing> refused = output.TakeRefusedDeliveries();
      const TimePoint now = clock_.Now();
      for (const internal::Outgoing& out : refused) {
        core_->OnDeliveryRefused(out.side, out.peer, out.tags, now);
      }
      finish_turn_once();
    }
  };
  auto finish_turn = [&] {
    finish_turn_once();
    hand_back_refused();
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
      std::span<zmq::message_t> rest(frames.data() + 1, count - 1);
      if (dropped > 0) {
        core_->OnOversizedMessage(side, peer, rest, dropped, now);
        continue;
      }
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
      finish_turn();
      std::chrono::milliseconds timeout(-1);
      auto wake_by = [&](std::chrono::milliseconds bound) {
        bound = std::max(bound, std::chrono::milliseconds(0));
        if (timeout < std::chrono::milliseconds(0) || timeout > bound) timeout = bound;
      };
      if (auto deadline = core_->NextDeadline()) {
        wake_by(std::min(std::chrono::ceil<std::chrono::milliseconds>(*deadline - now),
                         std::chrono::milliseconds(60000)));
      }
      if (output.holding()) wake_by(kHeldAnswersRetry);
      if (scheduler) {
        if (auto at = scheduler->NextWake()) {
          wake_by(std::chrono::ceil<std::chrono::milliseconds>(*at - steady_clock_.Now()));
        }
      }
      // The sync's completion and the spacing timer are polled only while they can fire.
      zmq::pollitem_t items[] = {{clients_.handle(), 0, ZMQ_POLLIN, 0},
                                 {workers_.handle(), 0, ZMQ_POLLIN, 0},
                                 {control_.handle(), 0, ZMQ_POLLIN, 0},
                                 {nullptr, journal_ ? journal_->sync_event_fd() : -1, ZMQ_POLLIN, 0},
                                 {nullptr, scheduler && scheduler->sync_held_until() ? sync_spacing.fd() : -1,
                                  ZMQ_POLLIN, 0}};
      // A negative fd is ignored by poll(2), under zmq::poll too.
      zmq::poll(items, std::size(items), timeout);
      if (items[4].revents & ZMQ_POLLIN) sync_spacing.Clear();  // finish_turn starts the sync
      if (items[2].revents & ZMQ_POLLIN) {
        if (journal_) {
          // Whatever is not yet durable, though nothing may wait for it; then what waited for it.
          if (journal_->Commit().ok()) {
            scheduler->Release(to_send);
            send_all();
          }
        }
        return;
      }
      if (items[3].revents & ZMQ_POLLIN) {
        scheduler->SyncFinished(to_send);
        core_->mutable_counters().journal_syncs = journal_->syncs();
        send_all();
        hand_back_refused();
      }
      if (items[0].revents & ZMQ_POLLIN) drain(clients_, internal::Side::kClients);
      if (items[1].revents & ZMQ_POLLIN) drain(workers_, internal::Side::kWorkers);
      if (journal_ && options_.fsync == FsyncPolicy::kBatch) {
        // Group commit: while more input is already waiting, take it into the same write.
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
      finish_turn();
    } catch (const zmq::error_t& error) {
      if (error.num() == EINTR) continue;
      if (error.num() == ETERM) return;
      throw;
    }
  }
}

}  // namespace zmqkit
