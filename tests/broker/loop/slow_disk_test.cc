// A disk whose fdatasync is slow or fails. While the journal syncs, the broker goes on serving:
// under group commit a consumer gets a message without waiting for any sync, its publisher's
// confirm still waits for its own; under `always` both wait; heartbeats never do. A failed sync
// holds confirms back and loses nothing.
//
// The disk is this executable's own fdatasync: the library is linked statically, so its calls bind
// to the definition below, which waits (or fails with EIO) and otherwise makes the real system
// call. It is a separate test executable so no other test shares this disk.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "helpers/test_support.h"
#include "storage/journal.h"
#include "zmqkit/broker.h"
#include "zmqkit/broker_client.h"

namespace {
std::atomic<int> sync_delay_ms{0};
std::atomic<bool> sync_fails{false};
}  // namespace

extern "C" int fdatasync(int fd) {
  if (int delay = sync_delay_ms.load(); delay > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
  if (sync_fails.load()) {
    errno = EIO;
    return -1;
  }
  return static_cast<int>(::syscall(SYS_fdatasync, fd));
}

namespace zmqkit {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kSlowSync = 400ms;

class SlowDiskTest : public ::testing::TestWithParam<FsyncPolicy> {
 protected:
  void SetUp() override { StartBroker(); }
  void TearDown() override {
    sync_delay_ms = 0;
    sync_fails = false;
    StopBroker();
  }
  void StartBroker(std::chrono::milliseconds heartbeat_interval = std::chrono::milliseconds(1000)) {
    BrokerOptions options;
    options.clients = Endpoint::Bind(testing::IpcAddress(dir_, "clients"));
    options.workers = Endpoint::Bind(testing::IpcAddress(dir_, "workers"));
    options.data_dir = (dir_.path() / "data").string();
    options.fsync = GetParam();
    options.heartbeat_interval = heartbeat_interval;
    broker_ = std::make_unique<Broker>(context_, options);
    broker_->set_log([this](std::string_view line) {
      std::lock_guard lock(log_mutex_);
      log_.emplace_back(line);
    });
    thread_ = std::thread([this] { broker_->Run(); });
  }
  void StopBroker() {
    if (!broker_) return;
    broker_->Stop();
    thread_.join();
    broker_.reset();
  }
  std::unique_ptr<BrokerClient> Client() {
    return std::make_unique<BrokerClient>(context_, Endpoint::Connect(broker_->clients_endpoint()));
  }
  bool LogMentions(const std::string& text) {
    std::lock_guard lock(log_mutex_);
    for (const std::string& line : log_) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

  testing::TempDir dir_;
  zmq::context_t context_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
  std::mutex log_mutex_;
  std::vector<std::string> log_;
};

TEST_P(SlowDiskTest, ADeliveryWaitsForTheSyncOnlyUnderAlwaysAndAConfirmAlwaysDoes) {
  auto consumer = Client();
  ASSERT_TRUE(consumer->Consume("slow", 10).ok());
  auto producer = Client();
  // Declared on first use, with the disk still fast: the queue's first records are synced now.
  ASSERT_TRUE(producer->Publish("slow", "warm-up").ok());
  ASSERT_TRUE(producer->WaitForConfirms(5s).ok());
  auto warm_up = consumer->Receive(5s);
  ASSERT_TRUE(warm_up.ok());
  ASSERT_TRUE(consumer->Ack(warm_up->tag).ok());

  sync_delay_ms = static_cast<int>(kSlowSync.count());
  const auto published = Clock::now();
  ASSERT_TRUE(producer->Publish("slow", "through a slow disk").ok());
  auto delivery = consumer->Receive(10s);
  ASSERT_TRUE(delivery.ok());
  const auto delivered_after = Clock::now() - published;
  EXPECT_EQ(delivery->envelope.body_view(), "through a slow disk");
  ASSERT_TRUE(producer->WaitForConfirms(10s).ok());
  const auto confirmed_after = Clock::now() - published;

  EXPECT_GE(confirmed_after, kSlowSync) << "a confirm means the record is synced";
  if (GetParam() == FsyncPolicy::kBatch) {
    EXPECT_LT(delivered_after, kSlowSync / 2) << "the delivery did not wait for the sync";
  } else {
    EXPECT_GE(delivered_after, kSlowSync) << "always: nothing leaves before the sync";
  }
}

TEST_P(SlowDiskTest, APublishDuringAnotherOnesSyncIsDeliveredAtOnceUnderBatchAndAfterASyncUnderAlways) {
  auto consumer = Client();
  ASSERT_TRUE(consumer->Consume("second", 10).ok());
  auto first_producer = Client();
  auto second_producer = Client();
  for (auto* producer : {first_producer.get(), second_producer.get()}) {
    ASSERT_TRUE(producer->Publish(producer == first_producer.get() ? "first" : "second", "warm-up").ok());
    ASSERT_TRUE(producer->WaitForConfirms(5s).ok());
  }
  auto warm_up = consumer->Receive(5s);
  ASSERT_TRUE(warm_up.ok());
  ASSERT_TRUE(consumer->Ack(warm_up->tag).ok());

  sync_delay_ms = static_cast<int>(kSlowSync.count());
  const auto first_published = Clock::now();
  ASSERT_TRUE(first_producer->Publish("first", "starts a slow sync").ok());
  std::this_thread::sleep_for(50ms);  // the first publish's sync is under way
  const auto second_published = Clock::now();
  ASSERT_TRUE(second_producer->Publish("second", "arrives during it").ok());
  auto delivery = consumer->Receive(10s);
  ASSERT_TRUE(delivery.ok());
  const auto delivered_after = Clock::now() - second_published;
  EXPECT_EQ(delivery->envelope.body_view(), "arrives during it");
  ASSERT_TRUE(first_producer->WaitForConfirms(10s).ok());
  EXPECT_GE(Clock::now() - first_published, kSlowSync) << "the first sync was slow";
  if (GetParam() == FsyncPolicy::kBatch) {
    EXPECT_LT(delivered_after, kSlowSync / 2)
        << "the broker read, wrote and delivered while the first sync ran";
  } else {
    // The running sync began before the second record was written, so it cannot cover it: the
    // delivery waits for the next one, which starts when the first ends.
    EXPECT_GE(delivered_after, kSlowSync) << "always: a delivery waits for a sync that covers it";
  }
  EXPECT_TRUE(second_producer->WaitForConfirms(10s).ok());
}

TEST_P(SlowDiskTest, PeersHearHeartbeatsWhileTheDiskSyncs) {
  // A sync longer than the liveness limit (3 x 50 ms): a broker stuck in it would fall silent
  // and its workers would give it up.
  StopBroker();
  StartBroker(50ms);
  zmq::socket_t worker(context_, zmq::socket_type::dealer);
  worker.connect(broker_->workers_endpoint());
  const char ready = '\x01', heartbeat = '\x02';
  worker.send(zmq::buffer(&ready, 1));
  auto heartbeats_within = [&](std::chrono::milliseconds window) {
    int heard = 0;
    const auto end = Clock::now() + window;
    auto next_own = Clock::now();
    while (Clock::now() < end) {
      if (Clock::now() >= next_own) {  // the worker's side of the heartbeat, so it stays alive
        worker.send(zmq::buffer(&heartbeat, 1));
        next_own += 50ms;
      }
      zmq::pollitem_t item{worker.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 10ms);
      zmq::message_t message;
      while (worker.recv(message, zmq::recv_flags::dontwait)) {
        if (message.size() == 1 && *message.data<char>() == heartbeat) ++heard;
      }
    }
    return heard;
  };
  ASSERT_GT(heartbeats_within(300ms), 0) << "the worker is known and heartbeated";

  auto producer = Client();
  sync_delay_ms = 1000;
  const auto published = Clock::now();
  ASSERT_TRUE(producer->Publish("elsewhere", "makes the journal sync").ok());
  const int heard = heartbeats_within(700ms);
  ASSERT_TRUE(producer->WaitForConfirms(10s).ok());
  EXPECT_GE(Clock::now() - published, 1000ms) << "the whole window fell within the slow sync";
  EXPECT_GE(heard, 5) << "about 14 heartbeats are due in 700 ms at 50 ms";
}

TEST_P(SlowDiskTest, AFailedSyncHoldsConfirmsAndLosesNothing) {
  auto producer = Client();
  ASSERT_TRUE(producer->Publish("q", "before").ok());
  ASSERT_TRUE(producer->WaitForConfirms(5s).ok());

  sync_fails = true;
  std::map<std::uint64_t, std::string> body_of_seq;
  for (int i = 0; i < 10; ++i) {
    auto seq = producer->Publish("q", "during " + std::to_string(i));
    ASSERT_TRUE(seq.ok());
    body_of_seq[*seq] = "during " + std::to_string(i);
  }
  EXPECT_FALSE(producer->WaitForConfirms(1s).ok()) << "nothing is confirmed while syncs fail";
  EXPECT_TRUE(testing::WaitUntil([&] { return LogMentions("journal write failed"); }));
  EXPECT_GT(broker_->counters().journal_failures, 0u);

  sync_fails = false;
  ASSERT_TRUE(testing::WaitUntil([&] { return LogMentions("journal writes again"); }));
  // Publishes that came in after the first failure were refused; the rest are confirmed now.
  (void)producer->WaitForConfirms(5s);
  EXPECT_EQ(producer->unconfirmed(), 0u);
  std::set<std::string> refused;
  for (const auto& rejection : producer->TakeRejections()) {
    EXPECT_EQ(rejection.code, "storage-unavailable");
    refused.insert(body_of_seq[rejection.seq]);
  }
  std::vector<std::string> expected{"before"};
  for (int i = 0; i < 10; ++i) {
    if (!refused.contains("during " + std::to_string(i))) expected.push_back("during " + std::to_string(i));
  }

  // After a restart: each confirmed message once, in order. The records a failed sync put back
  // were written again where they had been, not after a second copy.
  producer.reset();
  StopBroker();
  StartBroker();
  auto consumer = Client();
  ASSERT_TRUE(consumer->Consume("q", 100).ok());
  std::vector<std::string> got;
  while (got.size() < expected.size()) {
    auto delivery = consumer->Receive(5s);
    ASSERT_TRUE(delivery.ok()) << "after " << got.size() << " of " << expected.size();
    got.emplace_back(delivery->envelope.body_view());
  }
  EXPECT_EQ(got, expected);
  EXPECT_FALSE(consumer->Receive(300ms).ok()) << "no second copy";
}

INSTANTIATE_TEST_SUITE_P(Policies, SlowDiskTest,
                         ::testing::Values(FsyncPolicy::kBatch, FsyncPolicy::kAlways),
                         [](const auto& info) {
                           return info.param == FsyncPolicy::kBatch ? std::string("Batch")
                                                                    : std::string("Always");
                         });

// The journal itself on this disk: a sync runs beside the caller, and a failed one loses nothing.
class JournalSyncTest : public ::testing::Test {
 protected:
  void TearDown() override {
    sync_delay_ms = 0;
    sync_fails = false;
  }
  Result<std::unique_ptr<internal::Journal>> Open(std::vector<std::string>* replayed) {
    internal::JournalOptions options;
    options.directory = dir_.path();
    options.fsync = internal::FsyncMode::kBatch;
    return internal::Journal::Open(options, [replayed](std::string_view record) {
      replayed->emplace_back(record);
      return Status::Ok();
    }, nullptr);
  }
  // Waits (with a deadline) for the running sync to finish and books it.
  static Status FinishWhenDone(internal::Journal& journal) {
    pollfd event{journal.sync_event_fd(), POLLIN, 0};
    if (::poll(&event, 1, 10000) != 1) return Status::DeadlineExceeded("the sync did not finish");
    return journal.FinishSync();
  }

  testing::TempDir dir_;
};

TEST_F(JournalSyncTest, StartSyncReturnsAtOnceAndFinishSyncBooksIt) {
  std::vector<std::string> replayed;
  auto journal = Open(&replayed);
  ASSERT_TRUE(journal.ok()) << journal.error().ToString();
  (*journal)->Append("one");
  ASSERT_TRUE((*journal)->Write().ok());
  EXPECT_EQ((*journal)->written(), 1u);
  EXPECT_EQ((*journal)->synced(), 0u);

  sync_delay_ms = 300;
  const auto started = Clock::now();
  (*journal)->StartSync();
  EXPECT_LT(Clock::now() - started, 100ms) << "StartSync does not wait for the disk";
  EXPECT_TRUE((*journal)->syncing());
  // Written while the sync runs: not covered by it.
  (*journal)->Append("two");
  ASSERT_TRUE((*journal)->Write().ok());
  EXPECT_TRUE((*journal)->FinishSync().ok());
  EXPECT_EQ((*journal)->synced(), 0u) << "FinishSync before the end changes nothing";

  ASSERT_TRUE(FinishWhenDone(**journal).ok());
  EXPECT_GE(Clock::now() - started, 300ms);
  EXPECT_EQ((*journal)->synced(), 1u) << "the sync covers what was written before it began";
  EXPECT_EQ((*journal)->written(), 2u);
  ASSERT_TRUE((*journal)->unsynced_since().has_value()) << "\"two\" still waits";

  sync_delay_ms = 0;
  (*journal)->StartSync();
  ASSERT_TRUE(FinishWhenDone(**journal).ok());
  EXPECT_EQ((*journal)->synced(), 2u);
  EXPECT_FALSE((*journal)->unsynced_since().has_value());
}

TEST_F(JournalSyncTest, AFailedSyncMakesItsRecordsPendingAndTheyAreWrittenOnceInOrder) {
  {
    std::vector<std::string> replayed;
    auto journal = Open(&replayed);
    ASSERT_TRUE(journal.ok()) << journal.error().ToString();
    (*journal)->Append("synced");
    ASSERT_TRUE((*journal)->Commit().ok());

    (*journal)->Append("a");
    (*journal)->Append("b");
    ASSERT_TRUE((*journal)->Write().ok());
    sync_fails = true;
    sync_delay_ms = 100;
    (*journal)->StartSync();
    (*journal)->Append("c");  // written while the failing sync runs
    ASSERT_TRUE((*journal)->Write().ok());
    Status failed = FinishWhenDone(**journal);
    EXPECT_FALSE(failed.ok());
    EXPECT_EQ((*journal)->pending(), 3u) << "a, b and c are all to be written again";
    EXPECT_EQ((*journal)->written(), 1u);
    EXPECT_EQ((*journal)->synced(), 1u);

    sync_fails = false;
    sync_delay_ms = 0;
    (*journal)->Append("d");
    ASSERT_TRUE((*journal)->Commit().ok());
    EXPECT_EQ((*journal)->synced(), 5u);
  }
  std::vector<std::string> replayed;
  ASSERT_TRUE(Open(&replayed).ok());
  EXPECT_EQ(replayed, (std::vector<std::string>{"synced", "a", "b", "c", "d"}));
}

}  // namespace
}  // namespace zmqkit
