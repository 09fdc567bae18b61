// Exchanges: where a published message goes — which queues a (exchange, routing key) pair reaches.
//
// As in AMQP 0-9-1: the default exchange "" delivers to the queue named by the routing key; a
// fanout exchange copies to every bound queue, whatever the key; a topic exchange copies to every
// queue bound with a pattern that matches the key. Pure: no queues are touched here.
#ifndef ZMQKIT_SRC_BROKER_CORE_EXCHANGES_H_
#define ZMQKIT_SRC_BROKER_CORE_EXCHANGES_H_

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "zmqkit/status.h"

namespace zmqkit::internal {

enum class ExchangeType { kFanout, kTopic };
std::string_view ExchangeTypeName(ExchangeType type);  // "fanout", "topic"

// AMQP topic matching: key and pattern are words separated by '.'; in the pattern '*' matches
// exactly one word and '#' zero or more words. "orders.*.eu" matches "orders.paid.eu";
// "orders.#" matches "orders", "orders.paid" and "orders.paid.eu".
bool TopicMatches(std::string_view pattern, std::string_view key);

class Exchanges {
 public:
  // Creates an exchange, or confirms an existing one of the same type. kFailedPrecondition if it
  // exists with another type; kInvalidArgument for the reserved name "".
  Status Declare(const std::string& name, ExchangeType type);
  // Binds `queue` to `exchange` with `pattern` (ignored by fanout, stored all the same).
  // kNotFound if the exchange does not exist. Binding twice is harmless.
  Status Bind(const std::string& exchange, const std::string& queue, const std::string& pattern);
  Status Unbind(const std::string& exchange, const std::string& queue, const std::string& pattern);
  // The queues a message published to `exchange` with `key` lands in, each once, in name order.
  // For "" that is {key}. kNotFound if the exchange does not exist.
  Result<std::vector<std::string>> Route(std::string_view exchange, std::string_view key) const;

  bool Exists(std::string_view name) const { return exchanges_.contains(name); }

  struct Binding {
    std::string queue;
    std::string pattern;
    friend auto operator<=>(const Binding&, const Binding&) = default;
  };
  struct Exchange {
    ExchangeType type;
    std::set<Binding> bindings;
  };
  const std::map<std::string, Exchange, std::less<>>& all() const { return exchanges_; }

 private:
  std::map<std::string, Exchange, std::less<>> exchanges_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_BROKER_CORE_EXCHANGES_H_
