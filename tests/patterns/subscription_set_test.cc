// SubscriptionSet: which topics a SUB socket's subscriptions admit by the topic alone, counted as
// libzmq counts them.
#include "patterns/subscription_set.h"

#include <gtest/gtest.h>

#include <string>

namespace zmqkit::internal {
namespace {

TEST(SubscriptionSetTest, ATopicIsAdmittedWhenASubscriptionIsAPrefixOfIt) {
  SubscriptionSet subscriptions;
  subscriptions.Add("orders.");
  subscriptions.Add("orders.eu.paris");
  EXPECT_TRUE(subscriptions.Admits("orders."));
  EXPECT_TRUE(subscriptions.Admits("orders.eu"));
  EXPECT_TRUE(subscriptions.Admits("orders.eu.paris.5"));
  // Shorter than the longest subscription and matching none: libzmq matched "orders.eu.paris"
  // against the topic and the header's first bytes.
  EXPECT_FALSE(subscriptions.Admits("orders"));
  EXPECT_FALSE(subscriptions.Admits("order"));
  EXPECT_FALSE(subscriptions.Admits(""));
}

TEST(SubscriptionSetTest, TheEmptySubscriptionAdmitsEverything) {
  SubscriptionSet subscriptions;
  subscriptions.Add("a much longer subscription");
  EXPECT_FALSE(subscriptions.Admits("a"));
  subscriptions.Add("");
  EXPECT_TRUE(subscriptions.Admits("a"));
  EXPECT_TRUE(subscriptions.Admits(""));
}

TEST(SubscriptionSetTest, BinaryTopicsAndSubscriptionsAreBytes) {
  SubscriptionSet subscriptions;
  const std::string with_nul("t\0\x96", 3);
  subscriptions.Add(with_nul);
  EXPECT_TRUE(subscriptions.Admits(std::string("t\0\x96z", 4)));
  EXPECT_FALSE(subscriptions.Admits(std::string("t\0", 2)));
  EXPECT_FALSE(subscriptions.Admits("t"));
}

TEST(SubscriptionSetTest, ASubscriptionAddedTwiceNeedsRemovingTwice) {
  SubscriptionSet subscriptions;
  subscriptions.Add("abcd");
  subscriptions.Add("abcd");
  subscriptions.Remove("abcd");
  EXPECT_FALSE(subscriptions.empty());
  EXPECT_FALSE(subscriptions.Admits("ab"));
  subscriptions.Remove("never added");
  EXPECT_FALSE(subscriptions.empty());
  subscriptions.Remove("abcd");
  EXPECT_TRUE(subscriptions.empty());
}

TEST(SubscriptionSetTest, RemovingTheLongestSubscriptionShortensTheCheck) {
  SubscriptionSet subscriptions;
  subscriptions.Add("x");
  subscriptions.Add("abcd");
  EXPECT_FALSE(subscriptions.Admits("ab"));  // looked up: neither "", "a" nor "ab" is subscribed
  subscriptions.Remove("abcd");
  // "x" is now the longest: a topic of a byte or more holds whatever libzmq matched.
  EXPECT_TRUE(subscriptions.Admits("ab"));
  EXPECT_FALSE(subscriptions.Admits(""));
}

TEST(SubscriptionSetTest, MatchingCountsEverySubscriptionThatPrefixesATopic) {
  // A publisher's view: each subscriber's filter counts once, duplicates included.
  SubscriptionSet subscriptions;
  subscriptions.Add("");
  subscriptions.Add("orders.");
  subscriptions.Add("orders.");
  subscriptions.Add("orders.eu");
  subscriptions.Add("payments.");
  EXPECT_EQ(subscriptions.Matching("orders.eu.paris"), 4u);
  EXPECT_EQ(subscriptions.Matching("orders.us"), 3u);
  EXPECT_EQ(subscriptions.Matching("orders"), 1u);
  subscriptions.Remove("orders.");
  EXPECT_EQ(subscriptions.Matching("orders.us"), 2u);
  EXPECT_EQ(SubscriptionSet().Matching("anything"), 0u);
}

TEST(SubscriptionSetTest, WithNoSubscriptionsItTrustsLibzmq) {
  // Nothing known (subscriptions made on the raw socket): whatever libzmq let through is admitted,
  // as it was before the topic-packed form.
  SubscriptionSet subscriptions;
  EXPECT_TRUE(subscriptions.Admits(""));
  EXPECT_TRUE(subscriptions.Admits("anything"));
}

}  // namespace
}  // namespace zmqkit::internal
