// OutputGate: what the broker holds until the journal has synced what it promises, and the order
// each peer sees.
#include "broker/loop/output_gate.h"

#include <gtest/gtest.h>

namespace zmqkit::internal {
namespace {

Outgoing Message(Side side, const std::string& peer, const std::string& text) {
  Outgoing out;
  out.side = side;
  out.peer = peer;
  out.frames.emplace_back(text.data(), text.size());
  return out;
}

std::vector<std::string> Texts(const std::vector<Outgoing>& messages) {
  std::vector<std::string> texts;
  for (const Outgoing& out : messages) texts.push_back(out.frames.at(0).to_string());
  return texts;
}

TEST(OutputGateTest, AMessageWhoseRecordsAreSyncedPassesAtOnce) {
  OutputGate gate;
  Outgoing reply = Message(Side::kClients, "a", "confirm");
  EXPECT_TRUE(gate.Pass(reply, 5, 5));
  EXPECT_EQ(gate.held(), 0u);
  EXPECT_EQ(reply.frames.at(0).to_string(), "confirm") << "a message that passes is not taken";
}

TEST(OutputGateTest, AMessageWaitsUntilItsRecordsAreSynced) {
  OutputGate gate;
  Outgoing reply = Message(Side::kClients, "a", "confirm");
  EXPECT_FALSE(gate.Pass(reply, 7, 5));
  EXPECT_EQ(gate.highest_need(), 7u);
  std::vector<Outgoing> ready;
  gate.Release(6, ready);
  EXPECT_TRUE(ready.empty()) << "record 7 is not synced yet";
  gate.Release(7, ready);
  EXPECT_EQ(Texts(ready), std::vector<std::string>{"confirm"});
  EXPECT_EQ(gate.held(), 0u);
  EXPECT_EQ(gate.highest_need(), 0u);
}

TEST(OutputGateTest, APeersLaterMessageWaitsBehindItsHeldOneAndOtherPeersDoNot) {
  OutputGate gate;
  Outgoing confirm = Message(Side::kClients, "a", "a: confirm");
  Outgoing delivery_to_a = Message(Side::kClients, "a", "a: delivery");
  Outgoing delivery_to_b = Message(Side::kClients, "b", "b: delivery");
  EXPECT_FALSE(gate.Pass(confirm, 9, 5));
  EXPECT_FALSE(gate.Pass(delivery_to_a, 0, 5)) << "needs nothing, but must not overtake a's confirm";
  EXPECT_TRUE(gate.Pass(delivery_to_b, 0, 5)) << "b has nothing held";
  std::vector<Outgoing> ready;
  gate.Release(9, ready);
  EXPECT_EQ(Texts(ready), (std::vector<std::string>{"a: confirm", "a: delivery"}));
}

TEST(OutputGateTest, EachPeerIsReleasedInItsOwnOrderAsSyncsComeIn) {
  OutputGate gate;
  Outgoing first_a = Message(Side::kClients, "a", "a1");
  Outgoing first_b = Message(Side::kClients, "b", "b1");
  Outgoing second_a = Message(Side::kClients, "a", "a2");
  Outgoing second_b = Message(Side::kClients, "b", "b2");
  EXPECT_FALSE(gate.Pass(first_a, 3, 0));
  EXPECT_FALSE(gate.Pass(first_b, 6, 0));
  EXPECT_FALSE(gate.Pass(second_a, 4, 0));
  EXPECT_FALSE(gate.Pass(second_b, 0, 0)) << "behind b1";
  std::vector<Outgoing> ready;
  gate.Release(4, ready);
  EXPECT_EQ(Texts(ready), (std::vector<std::string>{"a1", "a2"})) << "b1 still waits; a does not wait for it";
  ready.clear();
  gate.Release(6, ready);
  EXPECT_EQ(Texts(ready), (std::vector<std::string>{"b1", "b2"}));
}

TEST(OutputGateTest, TheSamePeerIdOnTheTwoSidesIsTwoPeers) {
  OutputGate gate;
  Outgoing client_reply = Message(Side::kClients, "same", "client reply");
  Outgoing worker_request = Message(Side::kWorkers, "same", "worker request");
  EXPECT_FALSE(gate.Pass(client_reply, 2, 1));
  EXPECT_TRUE(gate.Pass(worker_request, 0, 1));
}

TEST(OutputGateTest, AMessagePassedWithoutOrderMayOvertakeItsPeersHeldOne) {
  // While the journal cannot write, a refusal must reach the client before its held confirms.
  OutputGate gate;
  Outgoing confirm = Message(Side::kClients, "a", "confirm");
  Outgoing refusal = Message(Side::kClients, "a", "refusal");
  EXPECT_FALSE(gate.Pass(confirm, 8, 5));
  EXPECT_TRUE(gate.Pass(refusal, 5, 5, /*keep_order=*/false));
  EXPECT_EQ(gate.held(), 1u);
}

TEST(OutputGateTest, AMessageNeverOvertakesAHeldOneWhoseRecordsWereSyncedBeforeARelease) {
  // The journal may report more synced before the loop has released what that freed.
  OutputGate gate;
  Outgoing first = Message(Side::kClients, "a", "first");
  Outgoing second = Message(Side::kClients, "a", "second");
  EXPECT_FALSE(gate.Pass(first, 4, 3));
  EXPECT_FALSE(gate.Pass(second, 0, 4)) << "first, though synced now, has not left yet";
  std::vector<Outgoing> ready;
  gate.Release(4, ready);
  ASSERT_FALSE(ready.empty());
  EXPECT_EQ(Texts(ready).front(), "first");
  gate.Release(5, ready);
  EXPECT_EQ(Texts(ready), (std::vector<std::string>{"first", "second"}));
}

TEST(OutputGateTest, HighestNeedFollowsWhatIsStillHeld) {
  OutputGate gate;
  Outgoing low = Message(Side::kClients, "a", "low");
  Outgoing high = Message(Side::kClients, "b", "high");
  EXPECT_FALSE(gate.Pass(low, 3, 0));
  EXPECT_FALSE(gate.Pass(high, 10, 0));
  EXPECT_EQ(gate.highest_need(), 10u);
  std::vector<Outgoing> ready;
  gate.Release(3, ready);
  EXPECT_EQ(gate.highest_need(), 10u);
  gate.Release(10, ready);
  EXPECT_EQ(gate.highest_need(), 0u);
  EXPECT_EQ(gate.held(), 0u);
}

}  // namespace
}  // namespace zmqkit::internal
