#include "zmqkit/reliable_tasks.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <set>
#include <thread>

#include "helpers/test_support.h"
#include "zmqkit/work_queue.h"

namespace zmqkit {
namespace {

using namespace std::chrono_literals;
using testing::kAnyLoopbackPort;

class ReliableTasksTest : public ::testing::Test {
 protected:
  zmq::context_t context_;
  SteadyClock clock_;
};

// The Guide's promise for this pattern: a worker dies holding work (SIGKILL, mid-task, with more
// queued), the ventilator notices the missing completions and sends that work again, and every task
// completes exactly once out of the sink.
TEST_F(ReliableTasksTest, WorkOfAWorkerKilledMidTaskIsResentAndEveryTaskCompletes) {
  VentilatorOptions options;
  options.resend_after = 500ms;
  TaskVentilator ventilator(context_, Endpoint::Bind(kAnyLoopbackPort),
                            Endpoint::Bind(kAnyLoopbackPort), clock_, options);
  TaskSink sink(context_, Endpoint::Bind(kAnyLoopbackPort),
                Endpoint::Connect(ventilator.completions_endpoint()));
  const std::string worker = testing::HelperPath("task_worker");
  testing::ChildProcess doomed(worker,
                               {ventilator.tasks_endpoint(), sink.results_endpoint(), "doomed", "20"});
  testing::ChildProcess survivor(
      worker, {ventilator.tasks_endpoint(), sink.results_endpoint(), "survivor", "1"});
  ASSERT_TRUE(ventilator.WaitForWorkers(2, 10s).ok());

  constexpr int kTasks = 60;
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_TRUE(ventilator.Submit(Envelope::New("task " + std::to_string(i))).ok());
  }

  std::set<std::string> done;
  int from_doomed = 0;
  int resent_results = 0;
  bool killed = false;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (done.size() < kTasks && std::chrono::steady_clock::now() < deadline) {
    ventilator.Poll(5ms);
    for (auto result = sink.Receive(0ms); result.ok(); result = sink.Receive(0ms)) {
      done.insert(std::string(result->body_view()));
      from_doomed += result->headers["worker"] == "doomed";
      resent_results += result->headers["attempt"] != "1";
    }
    if (!killed && from_doomed >= 2) {
      doomed.Signal(SIGKILL);
      auto status = doomed.Wait(5s);
      ASSERT_TRUE(status && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
      killed = true;
    }
  }
  ASSERT_TRUE(killed) << "the doomed worker never got work";
  EXPECT_EQ(done.size(), std::size_t{kTasks});
  EXPECT_LT(from_doomed, kTasks / 2) << "the kill came too late to matter";
  EXPECT_GE(ventilator.stats().resent, 1u);
  EXPECT_GE(resent_results, 1);
  EXPECT_TRUE(ventilator.Drain(5s).ok());
  EXPECT_EQ(sink.stats().results, std::uint64_t{kTasks});
}

// Duplicate results (a resent task finishing twice) reach the caller once; the ventilator counts
// the extra completion as stray.
TEST_F(ReliableTasksTest, SinkDropsDuplicateResults) {
  TaskVentilator ventilator(context_, Endpoint::Bind(kAnyLoopbackPort),
                            Endpoint::Bind(kAnyLoopbackPort), clock_);
  TaskSink sink(context_, Endpoint::Bind(kAnyLoopbackPort),
                Endpoint::Connect(ventilator.completions_endpoint()));
  Worker worker(context_, Endpoint::Connect(ventilator.tasks_endpoint()));
  Producer results(context_, Endpoint::Connect(sink.results_endpoint()));
  ASSERT_TRUE(ventilator.WaitForWorkers(1, 5s).ok());
  ASSERT_TRUE(ventilator.Submit(Envelope::New("once")).ok());
  auto task = worker.Receive(5s);
  ASSERT_TRUE(task.ok());
  ASSERT_TRUE(results.Send(ResultFor(*task, "done")).ok());
  ASSERT_TRUE(results.Send(ResultFor(*task, "done again")).ok());

  auto first = sink.Receive(5s);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->body_view(), "done");
  EXPECT_EQ(sink.Receive(300ms).error().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(sink.stats().duplicates, 1u);
  ASSERT_TRUE(testing::WaitUntil([&] {
    ventilator.Poll(5ms);
    return ventilator.stats().completed == 1 && ventilator.stats().stray_completions == 1;
  }));
  EXPECT_EQ(ventilator.outstanding(), 0u);
}

TEST_F(ReliableTasksTest, TasksNobodyCompletesAreAbandonedAfterMaxAttempts) {
  VentilatorOptions options;
  options.resend_after = 30ms;
  options.max_attempts = 3;
  options.send_timeout = 0ms;
  TaskVentilator ventilator(context_, Endpoint::Bind(kAnyLoopbackPort),
                            Endpoint::Bind(kAnyLoopbackPort), clock_, options);
  Envelope task = Envelope::New("nobody home");
  MessageId id = task.id;
  EXPECT_EQ(ventilator.Submit(std::move(task)).code(), StatusCode::kUnavailable);
  EXPECT_EQ(ventilator.outstanding(), 1u);  // still tracked, will be retried
  ASSERT_TRUE(ventilator.Drain(5s).ok());
  EXPECT_EQ(ventilator.abandoned(), std::vector<MessageId>{id});
  EXPECT_EQ(ventilator.stats().resent, 2u);
  EXPECT_EQ(ventilator.stats().send_failures, 3u);
}

TEST_F(ReliableTasksTest, SubmittingAnOutstandingIdIsRefused) {
  VentilatorOptions options;
  options.send_timeout = 0ms;
  TaskVentilator ventilator(context_, Endpoint::Bind(kAnyLoopbackPort),
                            Endpoint::Bind(kAnyLoopbackPort), clock_, options);
  Envelope task = Envelope::New("x");
  Envelope copy = task.Clone();
  (void)ventilator.Submit(std::move(task));
  EXPECT_EQ(ventilator.Submit(std::move(copy)).code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace zmqkit
