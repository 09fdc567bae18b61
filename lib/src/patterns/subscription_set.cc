#include "patterns/subscription_set.h"

#include <algorithm>

namespace zmqkit::internal {

void SubscriptionSet::Add(std::string_view prefix) {
  auto it = counts_.find(prefix);
  if (it == counts_.end()) it = counts_.emplace(std::string(prefix), 0).first;
  ++it->second;
  longest_ = std::max(longest_, prefix.size());
}

void SubscriptionSet::Remove(std::string_view prefix) {
  auto it = counts_.find(prefix);
  if (it == counts_.end()) return;
  if (--it->second > 0) return;
  counts_.erase(it);
  if (prefix.size() < longest_) return;
  longest_ = 0;
  for (const auto& [subscription, count] : counts_) {
    longest_ = std::max(longest_, subscription.size());
  }
}

bool SubscriptionSet::Admits(std::string_view topic) const {
  return topic.size() >= longest_ || Matching(topic) > 0;
}

std::size_t SubscriptionSet::Matching(std::string_view topic) const {
  std::size_t matching = 0;
  for (std::size_t length = 0; length <= std::min(topic.size(), longest_); ++length) {
    auto it = counts_.find(topic.substr(0, length));
    if (it != counts_.end()) matching += it->second;
  }
  return matching;
}

}  // namespace zmqkit::internal
