#include "subscription_set.h"

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
  if (topic.size() >= longest_) return true;
  for (std::size_t length = 0; length <= topic.size(); ++length) {
    if (counts_.find(topic.substr(0, length)) != counts_.end()) return true;
  }
  return false;
}

}  // namespace zmqkit::internal
