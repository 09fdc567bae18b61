// zmqkit::Broker: the broker's socket loop — the only part of the broker that polls, reads the clock
// or touches sockets (BrokerLoop). Each turn: do what time has made due, sleep until the next
// deadline or input, hand a burst of input to the core, flush confirms, and hand what the core
// produced to the commit scheduler (what waits for the disk) and to PeerOutput (what a full peer
// cannot take yet).
#include "zmqkit/broker.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <mutex>
#include <optional>

#include "broker/core/broker_core.h"
#include "broker/loop/commit_scheduler.h"
#include "broker/loop/peer_output.h"
#include "codec/frames.h"
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

namespace {

// One broker's socket loop: the state of a Run() and the steps of each turn.
class BrokerLoop {
 public:
  struct Parts {
    internal::BrokerCore& core;
    internal::Journal* journal;  // null: in memory
    zmq::socket_t& clients;
    zmq::socket_t& workers;
    zmq::socket_t& control;
    const Clock& clock;         // the core's time: leases, TTLs, heartbeats
    const Clock& steady_clock;  // the disk's: syncs take real time
    const BrokerOptions& options;
    const std::function<void(std::string_view)>& log;
    ZapServer* zap;
    internal::ZapLog* zap_log;
  };

  explicit BrokerLoop(const Parts& parts)
      : p_(parts),
        output_([this](internal::Outgoing& out) { return TrySend(out); }, p_.core.mutable_counters(),
                [this](std::string_view line) { p_.log(line); }) {
    if (p_.journal) {
      commits_.emplace(*p_.journal);
      commit_log_.emplace(*p_.journal, p_.core, p_.clock, p_.log);
      internal::CommitPolicy policy;
      policy.group_commit = p_.options.fsync == FsyncPolicy::kBatch;
      policy.min_sync_interval = p_.options.min_sync_interval;
      policy.max_unsynced_age = p_.options.max_unsynced_age;
      policy.retry_after_failure = kJournalRetry;
      // The spacing timer is armed on CLOCK_MONOTONIC, the steady clock's.
      scheduler_.emplace(*commits_, p_.steady_clock, policy, *commit_log_);
    }
  }

  // Until Stop() (the control socket) or the context ends.
  void Run() {
    for (;;) {
      try {
        p_.core.Tick(p_.clock.Now());
        FinishTurn();
        const Woken woken = Wait();
        if (woken.stop) return Shutdown();
        if (woken.sync_finished) {
          scheduler_->SyncFinished(to_send_);
          p_.core.mutable_counters().journal_syncs = p_.journal->syncs();
          SendAll();
          HandBackRefused();
        }
        if (woken.clients) Drain(p_.clients, internal::Side::kClients);
        if (woken.workers) Drain(p_.workers, internal::Side::kWorkers);
        if (p_.journal && p_.options.fsync == FsyncPolicy::kBatch) DrainMoreIntoTheSameWrite();
        p_.core.Flush();
        FinishTurn();
      } catch (const zmq::error_t& error) {
        if (error.num() == EINTR) continue;
        if (error.num() == ETERM) return;
        throw;
      }
    }
  }

 private:
  struct Woken {
    bool clients = false;
    bool workers = false;
    bool stop = false;
    bool sync_finished = false;
  };

  // Sleeps until input, the sync's completion, or the first deadline of the core, the scheduler
  // or a held answer's retry.
  Woken Wait() {
    std::chrono::milliseconds timeout(-1);
    auto wake_by = [&](std::chrono::milliseconds bound) {
      bound = std::max(bound, std::chrono::milliseconds(0));
      if (timeout < std::chrono::milliseconds(0) || timeout > bound) timeout = bound;
    };
    if (auto deadline = p_.core.NextDeadline()) {
      wake_by(std::min(std::chrono::ceil<std::chrono::milliseconds>(*deadline - p_.clock.Now()),
                       std::chrono::milliseconds(60000)));
    }
    // A full peer's queue is not polled for room (POLLOUT on a ROUTER means "some peer has room").
    if (output_.holding()) wake_by(kHeldAnswersRetry);
    if (scheduler_) {
      if (auto at = scheduler_->NextWake()) {
        wake_by(std::chrono::ceil<std::chrono::milliseconds>(*at - p_.steady_clock.Now()));
      }
    }
    // The sync's completion and the spacing timer are polled only while they can fire; a negative
    // fd is ignored by poll(2), under zmq::poll too.
    const bool spacing = scheduler_ && scheduler_->sync_held_until();
    zmq::pollitem_t items[] = {{p_.clients.handle(), 0, ZMQ_POLLIN, 0},
                               {p_.workers.handle(), 0, ZMQ_POLLIN, 0},
                               {p_.control.handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, p_.journal ? p_.journal->sync_event_fd() : -1, ZMQ_POLLIN, 0},
                               {nullptr, spacing ? sync_spacing_.fd() : -1, ZMQ_POLLIN, 0}};
    zmq::poll(items, std::size(items), timeout);
    if (items[4].revents & ZMQ_POLLIN) sync_spacing_.Clear();  // the turn's end starts the sync
    Woken woken;
    woken.clients = (items[0].revents & ZMQ_POLLIN) != 0;
    woken.workers = (items[1].revents & ZMQ_POLLIN) != 0;
    woken.stop = (items[2].revents & ZMQ_POLLIN) != 0;
    woken.sync_finished = (items[3].revents & ZMQ_POLLIN) != 0;
    return woken;
  }

  void Shutdown() {
    // Whatever is not yet durable, though nothing may wait for it; then what waited for it.
    if (p_.journal && p_.journal->Commit().ok()) {
      scheduler_->Release(to_send_);
      SendAll();
    }
  }

  // Up to kBurst messages from one socket, each handed to the core.
  void Drain(zmq::socket_t& socket, internal::Side side) {
    for (int i = 0; i < kBurst; ++i) {
      std::size_t dropped = 0;
      // + 1: the routing id ROUTER puts in front.
      const std::size_t count = internal::RecvAllCapped(socket, frames_, zmq::recv_flags::dontwait,
                                                        p_.options.max_frames + 1, dropped);
      if (count == 0) return;
      const TimePoint now = p_.clock.Now();
      std::string_view peer(frames_[0].data<char>(), frames_[0].size());
      std::span<zmq::message_t> rest(frames_.data() + 1, count - 1);
      if (dropped > 0) {
        p_.core.OnOversizedMessage(side, peer, rest, dropped, now);
      } else if (side == internal::Side::kClients) {
        p_.core.OnClientMessage(peer, rest, now);
      } else {
        p_.core.OnWorkerMessage(peer, rest, now);
      }
    }
  }

  // Group commit: while more input is already waiting, it goes into the same write and sync.
  void DrainMoreIntoTheSameWrite() {
    const auto window_end = p_.steady_clock.Now() + kBatchWindow;
    while (p_.journal->pending() > 0 && p_.journal->pending() < kBatchRecords &&
           p_.steady_clock.Now() < window_end) {
      zmq::pollitem_t more[] = {{p_.clients.handle(), 0, ZMQ_POLLIN, 0},
                                {p_.workers.handle(), 0, ZMQ_POLLIN, 0}};
      if (zmq::poll(more, 2, std::chrono::milliseconds(0)) <= 0) break;
      if (more[0].revents & ZMQ_POLLIN) Drain(p_.clients, internal::Side::kClients);
      if (more[1].revents & ZMQ_POLLIN) Drain(p_.workers, internal::Side::kWorkers);
    }
  }

  void FinishTurn() {
    FinishTurnOnce();
    HandBackRefused();
  }

  // Ends a turn: writes what it journaled, then sends what it produced or hands it to the gate.
  void FinishTurnOnce() {
    if (output_.holding()) output_.RetryHeld();
    auto& outbox = p_.core.outbox();
    if (!scheduler_) {
      for (internal::Outgoing& out : outbox) output_.Send(out);
      outbox.clear();
    } else {
      scheduler_->EndTurn(outbox, to_send_);
      SendAll();
      if (auto held_until = scheduler_->sync_held_until()) sync_spacing_.ArmAt(*held_until);
      p_.core.mutable_counters().journal_syncs = p_.journal->syncs();
    }
    PassOnLogs();
  }

  // Deliveries a connection refused go back to the core, which may hand them to other consumers:
  // those are sent (or refused) in turn. Each round pauses the refusing peers, so it ends.
  void HandBackRefused() {
    while (output_.has_refused_deliveries()) {
      const std::vector<internal::Outgoing> refused = output_.TakeRefusedDeliveries();
      const TimePoint now = p_.clock.Now();
      for (const internal::Outgoing& out : refused) {
        p_.core.OnDeliveryRefused(out.side, out.peer, out.tags, now);
      }
      FinishTurnOnce();
    }
  }

  void SendAll() {
    for (internal::Outgoing& out : to_send_) output_.Send(out);
    to_send_.clear();
  }

  void PassOnLogs() {
    for (const std::string& line : p_.core.TakeLog()) p_.log(line);
    if (!p_.zap) return;
    p_.core.mutable_counters().connections_refused = p_.zap->refused();
    std::vector<std::string> zap_lines;
    {
      std::lock_guard lock(p_.zap_log->mutex);
      zap_lines.swap(p_.zap_log->lines);
    }
    for (const std::string& line : zap_lines) p_.log(line);
  }

  internal::SendResult TrySend(internal::Outgoing& out) {
    zmq::socket_t& socket = out.side == internal::Side::kClients ? p_.clients : p_.workers;
    try {
      // dontwait: ROUTER_MANDATORY would otherwise block on a full peer, stalling everyone.
      if (!socket.send(zmq::buffer(out.peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        return internal::SendResult::kFull;
      }
    } catch (const zmq::error_t& error) {
      if (error.num() == EHOSTUNREACH) return internal::SendResult::kGone;  // liveness forgets it
      throw;
    }
    // Once the routing id is taken, libzmq takes the rest of the message whole.
    internal::SendAll(socket, out.frames);
    return internal::SendResult::kSent;
  }

  // Held answers are tried again this often.
  static constexpr auto kHeldAnswersRetry = std::chrono::milliseconds(5);

  const Parts p_;
  std::vector<zmq::message_t> frames_;
  // What a peer's connection will not take is held or handed back, never dropped.
  internal::PeerOutput output_;
  // Messages waiting for the journal to sync what they depend on (docs/broker.md, "Durability").
  // The disk syncs on the journal's own thread meanwhile, and this loop goes on serving.
  std::optional<JournalCommits> commits_;
  std::optional<CommitLog> commit_log_;
  std::optional<internal::CommitScheduler> scheduler_;
  PollableTimer sync_spacing_;
  std::vector<internal::Outgoing> to_send_;
};

}  // namespace

// The rules the core enforces, from the public options (the rest is the loop's: sockets, CURVE,
// access, storage).
internal::CoreOptions internal::CoreOptionsFrom(const BrokerOptions& options) {
  internal::CoreOptions core;
  core.queue_defaults = options.queue_defaults;
  core.request_queue = options.request_queue;
  core.heartbeat_interval = options.heartbeat_interval;
  core.liveness = options.liveness;
  core.max_message_bytes = options.max_message_bytes;
  core.max_frames = options.max_frames;
  core.max_header_bytes = options.max_header_bytes;
  core.max_headers = options.max_headers;
  core.max_name_bytes = options.max_name_bytes;
  core.max_queues = options.max_queues;
  core.max_consumers_per_client = options.max_consumers_per_client;
  core.max_prefetch = options.max_prefetch;
  core.max_clients = options.max_clients;
  core.producer_window = options.producer_window;
  core.max_producers = options.max_producers;
  core.dedup_window = options.dedup_window;
  core.max_dedup_ids = options.max_dedup_ids;
  core.admin_keys = options.admin_keys;
  return core;
}

Broker::Broker(zmq::context_t& context, BrokerOptions options, const Clock* clock)
    : context_(context),
      options_(PrepareOptions(std::move(options))),
      clock_(clock ? *clock : steady_clock_),
      core_(std::make_unique<internal::BrokerCore>(internal::CoreOptionsFrom(options_))),
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
  if (!recovery_summary_.empty()) log_(recovery_summary_);
  if (journal_) core_->mutable_counters().journal_syncs = journal_->syncs();
  BrokerLoop loop({*core_, journal_.get(), clients_, workers_, control_, clock_, steady_clock_,
                   options_, log_, zap_.get(), zap_log_.get()});
  loop.Run();
}

}  // namespace zmqkit
