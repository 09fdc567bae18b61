// PeerOutput: what a peer's full or vanished connection does to each kind of message — answers
// held in order, deliveries handed back, heartbeats dropped — with a send function that plays the
// socket.
#include "broker/loop/peer_output.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace zmqkit::internal {
namespace {

class PeerOutputTest : public ::testing::Test {
 protected:
  Outgoing Message(const std::string& peer, const std::string& text, WaitsFor waits_for = WaitsFor::kSync,
                   std::vector<std::uint64_t> tags = {}) {
    Outgoing out;
    out.side = Side::kClients;
    out.peer = peer;
    out.frames.emplace_back(text.data(), text.size());
    out.waits_for = waits_for;
    out.tags = std::move(tags);
    return out;
  }
  void Send(Outgoing out) { output_.Send(out); }
  std::vector<std::string> SentTo(const std::string& peer) { return sent_[peer]; }

  // Per peer: what the socket answers (kSent unless said otherwise), and what it took.
  std::map<std::string, SendResult> state_;
  std::map<std::string, std::vector<std::string>> sent_;
  BrokerCounters counters_;
  std::vector<std::string> log_;
  PeerOutput output_{[this](Outgoing& out) {
                       auto it = state_.find(out.peer);
                       const SendResult result = it == state_.end() ? SendResult::kSent : it->second;
                       if (result == SendResult::kSent) sent_[out.peer].push_back(out.frames.at(0).to_string());
                       return result;
                     },
                     counters_, [this](std::string_view line) { log_.emplace_back(line); },
                     /*max_held_per_peer=*/3};
};

using Strings = std::vector<std::string>;

TEST_F(PeerOutputTest, AnswersToAFullPeerAreHeldAndSentInOrderOnceItHasRoom) {
  state_["a"] = SendResult::kFull;
  Send(Message("a", "confirm 1"));
  Send(Message("b", "ok"));
  state_["a"] = SendResult::kSent;
  Send(Message("a", "rejected 2"));
  EXPECT_EQ(SentTo("a"), Strings{}) << "behind the held confirm, though the queue has room now";
  EXPECT_EQ(SentTo("b"), Strings{"ok"}) << "other peers are not held up";
  EXPECT_TRUE(output_.holding());
  output_.RetryHeld();
  EXPECT_EQ(SentTo("a"), (Strings{"confirm 1", "rejected 2"}));
  EXPECT_FALSE(output_.holding());
  EXPECT_EQ(counters_.answers_held, 2u);
}

TEST_F(PeerOutputTest, ADeliveryAFullPeerRefusesIsHandedBackNotHeld) {
  state_["c"] = SendResult::kFull;
  Send(Message("c", "deliver", WaitsFor::kWrite, {7, 8}));
  EXPECT_FALSE(output_.holding());
  ASSERT_TRUE(output_.has_refused_deliveries());
  auto refused = output_.TakeRefusedDeliveries();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].tags, (std::vector<std::uint64_t>{7, 8}));
  EXPECT_FALSE(output_.has_refused_deliveries());
}

TEST_F(PeerOutputTest, AGonePeersDeliveriesComeBackAndItsAnswersAreDropped) {
  state_["c"] = SendResult::kGone;
  Send(Message("c", "deliver", WaitsFor::kWrite, {5}));
  Send(Message("c", "ok"));
  EXPECT_FALSE(output_.holding()) << "no one is left to answer";
  EXPECT_EQ(output_.TakeRefusedDeliveries().size(), 1u);
}

TEST_F(PeerOutputTest, AHeartbeatToAFullPeerIsDroppedAndOvertakesHeldAnswers) {
  state_["a"] = SendResult::kFull;
  Send(Message("a", "heartbeat", WaitsFor::kNothing));
  EXPECT_FALSE(output_.holding()) << "the next heartbeat says the same";
  Send(Message("a", "confirm 1"));
  state_["a"] = SendResult::kSent;
  Send(Message("a", "heartbeat", WaitsFor::kNothing));
  EXPECT_EQ(SentTo("a"), Strings{"heartbeat"}) << "a heartbeat orders nothing";
}

TEST_F(PeerOutputTest, PastTheBoundAPeerLosesItsOldestHeldAnswersCountedAndLoggedOnce) {
  state_["a"] = SendResult::kFull;
  for (int i = 1; i <= 5; ++i) Send(Message("a", std::string("answer ").append(std::to_string(i))));
  EXPECT_EQ(counters_.answers_dropped, 2u);
  EXPECT_EQ(log_.size(), 1u);
  state_["a"] = SendResult::kSent;
  output_.RetryHeld();
  EXPECT_EQ(SentTo("a"), (Strings{"answer 3", "answer 4", "answer 5"}));
}

TEST_F(PeerOutputTest, ARetryStopsAtAPeerThatIsStillFullAndKeepsTheRest) {
  state_["a"] = SendResult::kFull;
  Send(Message("a", "one"));
  Send(Message("a", "two"));
  output_.RetryHeld();
  EXPECT_TRUE(output_.holding());
  EXPECT_EQ(SentTo("a"), Strings{});
  state_["a"] = SendResult::kSent;
  output_.RetryHeld();
  EXPECT_EQ(SentTo("a"), (Strings{"one", "two"}));
}

}  // namespace
}  // namespace zmqkit::internal
