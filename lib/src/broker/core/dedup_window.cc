#include "broker/core/dedup_window.h"

#include <charconv>

namespace zmqkit::internal {

std::string DedupWindow::Scope(std::string_view exchange, std::string_view key,
                               std::string_view id) {
  std::string scoped;
  scoped.reserve(exchange.size() + key.size() + id.size() + 12);
  scoped.append(std::to_string(exchange.size())).append(1, ':').append(exchange);
  scoped.append(std::to_string(key.size())).append(1, ':').append(key);
  scoped.append(id);
  return scoped;
}

bool DedupWindow::Seen(std::string_view exchange, std::string_view key, std::string_view id,
                       std::int64_t now_us) {
  Expire(now_us);
  return index_.contains(Scope(exchange, key, id));
}

void DedupWindow::Stored(std::string_view exchange, std::string_view key, std::string_view id,
                         std::int64_t at_us) {
  while (!order_.empty() && order_.size() >= limits_.max_ids) {
    // Still inside its window as seen from the id arriving now: forgetting it weakens the promise.
    if (!order_.front().replaced && at_us - order_.front().at_us < limits_.window_us) {
      ++evicted_early_;
    }
    ForgetOldest();
  }
  Remembered& entry = order_.emplace_back(Remembered{Scope(exchange, key, id), at_us});
  if (auto it = index_.find(entry.scoped_id); it != index_.end()) {
    it->second->replaced = true;
    index_.erase(it);
  }
  index_.emplace(entry.scoped_id, &entry);
}

void DedupWindow::ForgetOldest() {
  if (!order_.front().replaced) index_.erase(order_.front().scoped_id);
  order_.pop_front();
}

std::size_t DedupWindow::Expire(std::int64_t now_us) {
  std::size_t forgotten = 0;
  while (!order_.empty() && now_us - order_.front().at_us >= limits_.window_us) {
    ForgetOldest();
    ++forgotten;
  }
  return forgotten;
}

void DedupWindow::Visit(const std::function<void(const Entry&)>& visit) const {
  for (const Remembered& entry : order_) {
    if (entry.replaced) continue;
    // Split "<n>:exchange<m>:key" + id back into its parts; Scope wrote it, so it is well formed.
    std::string_view rest = entry.scoped_id;
    auto take = [&rest] {
      std::size_t size = 0;
      const std::size_t colon = rest.find(':');
      std::from_chars(rest.data(), rest.data() + colon, size);
      const std::string_view part = rest.substr(colon + 1, size);
      rest.remove_prefix(colon + 1 + size);
      return part;
    };
    const std::string_view exchange = take();
    const std::string_view key = take();
    visit(Entry{exchange, key, rest, entry.at_us});
  }
}

}  // namespace zmqkit::internal
