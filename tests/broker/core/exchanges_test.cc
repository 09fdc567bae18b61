#include "broker/core/exchanges.h"

#include <gtest/gtest.h>

namespace zmqkit::internal {
namespace {

TEST(TopicMatchesTest, AmqpWildcards) {
  EXPECT_TRUE(TopicMatches("orders.created", "orders.created"));
  EXPECT_FALSE(TopicMatches("orders.created", "orders.paid"));
  EXPECT_TRUE(TopicMatches("orders.*", "orders.paid"));
  EXPECT_FALSE(TopicMatches("orders.*", "orders"));
  EXPECT_FALSE(TopicMatches("orders.*", "orders.paid.eu"));
  EXPECT_TRUE(TopicMatches("orders.*.eu", "orders.paid.eu"));
  EXPECT_TRUE(TopicMatches("orders.#", "orders"));
  EXPECT_TRUE(TopicMatches("orders.#", "orders.paid"));
  EXPECT_TRUE(TopicMatches("orders.#", "orders.paid.eu"));
  EXPECT_TRUE(TopicMatches("#", "anything.at.all"));
  EXPECT_TRUE(TopicMatches("#", ""));
  EXPECT_TRUE(TopicMatches("#.eu", "orders.paid.eu"));
  EXPECT_TRUE(TopicMatches("#.eu", "eu"));
  EXPECT_FALSE(TopicMatches("#.eu", "orders.paid.us"));
  EXPECT_TRUE(TopicMatches("*.#.eu", "orders.eu"));
  EXPECT_FALSE(TopicMatches("*.#.eu", "eu"));
  EXPECT_TRUE(TopicMatches("a.#.b.#.c", "a.x.b.y.z.c"));
  EXPECT_FALSE(TopicMatches("a.#.b.#.c", "a.x.y.c"));
  EXPECT_FALSE(TopicMatches("order", "orders"));  // words, not prefixes
}

TEST(ExchangesTest, DefaultExchangeRoutesToTheQueueNamedByTheKey) {
  Exchanges exchanges;
  auto route = exchanges.Route("", "payments");
  ASSERT_TRUE(route.ok());
  EXPECT_EQ(*route, std::vector<std::string>{"payments"});
}

TEST(ExchangesTest, FanoutCopiesToEveryBoundQueue) {
  Exchanges exchanges;
  ASSERT_TRUE(exchanges.Declare("orders", ExchangeType::kFanout).ok());
  for (const char* queue : {"payment", "email", "inventory", "shipping"}) {
    ASSERT_TRUE(exchanges.Bind("orders", queue, "").ok());
  }
  ASSERT_TRUE(exchanges.Bind("orders", "email", "").ok());  // twice: still one copy
  auto route = exchanges.Route("orders", "whatever");
  ASSERT_TRUE(route.ok());
  EXPECT_EQ(*route, (std::vector<std::string>{"email", "inventory", "payment", "shipping"}));
}

TEST(ExchangesTest, TopicRoutesByPatternAndEachQueueGetsOneCopy) {
  Exchanges exchanges;
  ASSERT_TRUE(exchanges.Declare("events", ExchangeType::kTopic).ok());
  ASSERT_TRUE(exchanges.Bind("events", "eu-audit", "*.*.eu").ok());
  ASSERT_TRUE(exchanges.Bind("events", "eu-audit", "orders.#").ok());  // both match below
  ASSERT_TRUE(exchanges.Bind("events", "payments", "orders.paid.*").ok());
  ASSERT_TRUE(exchanges.Bind("events", "refunds", "orders.refunded.*").ok());
  EXPECT_EQ(*exchanges.Route("events", "orders.paid.eu"),
            (std::vector<std::string>{"eu-audit", "payments"}));
  EXPECT_EQ(*exchanges.Route("events", "users.created.us"), std::vector<std::string>{});
  ASSERT_TRUE(exchanges.Unbind("events", "payments", "orders.paid.*").ok());
  EXPECT_EQ(*exchanges.Route("events", "orders.paid.eu"), std::vector<std::string>{"eu-audit"});
}

TEST(ExchangesTest, Errors) {
  Exchanges exchanges;
  EXPECT_EQ(exchanges.Route("missing", "k").error().code(), StatusCode::kNotFound);
  EXPECT_EQ(exchanges.Bind("missing", "q", "").code(), StatusCode::kNotFound);
  EXPECT_EQ(exchanges.Declare("", ExchangeType::kFanout).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(exchanges.Declare("x", ExchangeType::kFanout).ok());
  EXPECT_TRUE(exchanges.Declare("x", ExchangeType::kFanout).ok());
  EXPECT_EQ(exchanges.Declare("x", ExchangeType::kTopic).code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace zmqkit::internal
