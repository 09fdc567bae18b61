// SubscriptionSet: subscriptions as libzmq counts them. A Subscriber keeps its own to check a
// topic-packed message's topic itself; a Publisher keeps the ones its XPUB socket reported, to count
// the subscribers a topic reaches.
//
// libzmq matches a subscription against a message's first bytes. When the topic has a frame of its
// own that is exactly the topic; in the topic-packed form (docs/wire-format.md section 1) the header
// follows the topic in the same frame, so a subscription longer than a topic can match the topic
// plus the header's first bytes: "orders.x" subscribed, a message on "orders." whose header starts
// with "x" arrives. Such a message is not one the subscriber asked for.
#ifndef ZMQKIT_SRC_PATTERNS_SUBSCRIPTION_SET_H_
#define ZMQKIT_SRC_PATTERNS_SUBSCRIPTION_SET_H_

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

namespace zmqkit::internal {

class SubscriptionSet {
 public:
  // As ZMQ_SUBSCRIBE / ZMQ_UNSUBSCRIBE: the same prefix added twice needs removing twice; removing
  // one that is not there does nothing.
  void Add(std::string_view prefix);
  void Remove(std::string_view prefix);

  // Whether a message that libzmq let through, whose topic is `topic`, matches a subscription by
  // its topic alone. A topic at least as long as every subscription needs no look-up: whichever
  // subscription libzmq matched lies within the topic. Otherwise each of the topic's prefixes is
  // looked up, so the cost follows the topic's length, not the number of subscriptions.
  bool Admits(std::string_view topic) const;

  // How many subscriptions, counted as added, are a prefix of `topic`: the subscribers a message
  // on it reaches, when this set holds a publisher's view of them.
  std::size_t Matching(std::string_view topic) const;

  bool empty() const { return counts_.empty(); }

 private:
  std::map<std::string, std::size_t, std::less<>> counts_;
  std::size_t longest_ = 0;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_PATTERNS_SUBSCRIPTION_SET_H_
