// A disk whose fdatasync takes 400 ms: under group commit a consumer gets a message without waiting
// for the sync, while its publisher's confirm still waits for it; under `always` both wait.
//
// The slow disk is this executable's own fdatasync: the library is linked statically, so its calls
// bind to the definition below, which waits and then makes the real system call. It is a separate
// test executable so no other test shares the slow disk.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "helpers/test_support.h"
#include "zmqkit/broker.h"
#include "zmqkit/broker_client.h"

namespace {
std::atomic<int> sync_delay_ms{0};
}  // namespace

extern "C" int fdatasync(int fd) {
  if (int delay = sync_delay_ms.load(); delay > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
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
  void SetUp() override {
    BrokerOptions options;
    options.clients = Endpoint::Bind(testing::IpcAddress(dir_, "clients"));
    options.workers = Endpoint::Bind(testing::IpcAddress(dir_, "workers"));
    options.data_dir = (dir_.path() / "data").string();
    options.fsync = GetParam();
    broker_ = std::make_unique<Broker>(context_, options);
    broker_->set_log([](std::string_view) {});
    thread_ = std::thread([this] { broker_->Run(); });
  }
  void TearDown() override {
    sync_delay_ms = 0;
    broker_->Stop();
    thread_.join();
  }
  std::unique_ptr<BrokerClient> Client() {
    return std::make_unique<BrokerClient>(context_, Endpoint::Connect(broker_->clients_endpoint()));
  }

  testing::TempDir dir_;
  zmq::context_t context_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
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

INSTANTIATE_TEST_SUITE_P(Policies, SlowDiskTest,
                         ::testing::Values(FsyncPolicy::kBatch, FsyncPolicy::kAlways),
                         [](const auto& info) {
                           return info.param == FsyncPolicy::kBatch ? std::string("Batch")
                                                                    : std::string("Always");
                         });

}  // namespace
}  // namespace zmqkit
