#include "zmqkit/outstanding_tasks.h"

#include <gtest/gtest.h>

namespace zmqkit {
namespace {

using namespace std::chrono_literals;

class OutstandingTasksTest : public ::testing::Test {
 protected:
  MessageId a_ = MessageId::Generate(1);
  MessageId b_ = MessageId::Generate(2);
  MessageId c_ = MessageId::Generate(3);
  ManualClock clock_;
};

TEST_F(OutstandingTasksTest, NothingIsDueBeforeItsDeadline) {
  OutstandingTasks tasks(1s, 0);
  ASSERT_TRUE(tasks.Track(a_, clock_.Now()));
  EXPECT_EQ(tasks.NextDeadline(), clock_.Now() + 1s);
  clock_.Advance(999ms);
  EXPECT_TRUE(tasks.Expire(clock_.Now()).resend.empty());
  clock_.Advance(1ms);
  auto expired = tasks.Expire(clock_.Now());
  EXPECT_EQ(expired.resend, std::vector<MessageId>{a_});
  EXPECT_EQ(tasks.attempts(a_), 2u);
  EXPECT_EQ(tasks.NextDeadline(), clock_.Now() + 1s);  // re-armed from the resend
}

TEST_F(OutstandingTasksTest, CompletedTasksAreNeverResent) {
  OutstandingTasks tasks(1s, 0);
  tasks.Track(a_, clock_.Now());
  tasks.Track(b_, clock_.Now());
  EXPECT_TRUE(tasks.Complete(a_));
  EXPECT_FALSE(tasks.Complete(a_));  // a duplicate completion
  EXPECT_FALSE(tasks.Complete(c_));  // never tracked
  clock_.Advance(2s);
  EXPECT_EQ(tasks.Expire(clock_.Now()).resend, std::vector<MessageId>{b_});
  EXPECT_EQ(tasks.size(), 1u);
}

TEST_F(OutstandingTasksTest, ExpiresInSendOrderAndOnlyWhatIsDue) {
  OutstandingTasks tasks(1s, 0);
  tasks.Track(a_, clock_.Now());
  clock_.Advance(300ms);
  tasks.Track(b_, clock_.Now());
  clock_.Advance(300ms);
  tasks.Track(c_, clock_.Now());
  clock_.Advance(500ms);  // a (1.1 s old) and b (0.8 s)... only a is due
  EXPECT_EQ(tasks.Expire(clock_.Now()).resend, std::vector<MessageId>{a_});
  clock_.Advance(500ms);  // b and c are due now, a (resent 0.5 s ago) is not
  EXPECT_EQ(tasks.Expire(clock_.Now()).resend, (std::vector<MessageId>{b_, c_}));
}

TEST_F(OutstandingTasksTest, NextDeadlineSkipsCompletedTasks) {
  OutstandingTasks tasks(1s, 0);
  tasks.Track(a_, clock_.Now());
  clock_.Advance(100ms);
  tasks.Track(b_, clock_.Now());
  tasks.Complete(a_);
  EXPECT_EQ(tasks.NextDeadline(), clock_.Now() + 1s);
  tasks.Complete(b_);
  EXPECT_FALSE(tasks.NextDeadline().has_value());
}

TEST_F(OutstandingTasksTest, AbandonsAfterMaxAttempts) {
  OutstandingTasks tasks(1s, /*max_attempts=*/3);
  tasks.Track(a_, clock_.Now());
  for (int resend = 0; resend < 2; ++resend) {
    clock_.Advance(1s);
    EXPECT_EQ(tasks.Expire(clock_.Now()).resend.size(), 1u);
  }
  EXPECT_EQ(tasks.attempts(a_), 3u);
  clock_.Advance(1s);
  auto expired = tasks.Expire(clock_.Now());
  EXPECT_TRUE(expired.resend.empty());
  EXPECT_EQ(expired.abandoned, std::vector<MessageId>{a_});
  EXPECT_EQ(tasks.size(), 0u);
  EXPECT_FALSE(tasks.Complete(a_));  // a completion arriving after that is stray
}

TEST_F(OutstandingTasksTest, TrackingTwiceIsRefused) {
  OutstandingTasks tasks(1s, 0);
  EXPECT_TRUE(tasks.Track(a_, clock_.Now()));
  EXPECT_FALSE(tasks.Track(a_, clock_.Now()));
  EXPECT_EQ(tasks.size(), 1u);
}

}  // namespace
}  // namespace zmqkit
