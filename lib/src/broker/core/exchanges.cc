#include "broker/core/exchanges.h"

namespace zmqkit::internal {
namespace {

std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t start = 0;
  for (;;) {
    std::size_t dot = text.find('.', start);
    words.push_back(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return words;
}

// Does pattern[p...] match key[k...]? '#' tries every split, so a pattern with several '#' can cost
// more; routing keys and patterns are short and bounded by the broker's name limits.
bool MatchFrom(const std::vector<std::string_view>& pattern, std::size_t p,
               const std::vector<std::string_view>& key, std::size_t k) {
  while (p < pattern.size()) {
    if (pattern[p] == "#") {
      if (p + 1 == pattern.size()) return true;
      for (std::size_t skip = k; skip <= key.size(); ++skip) {
        if (MatchFrom(pattern, p + 1, key, skip)) return true;
      }
      return false;
    }
    if (k == key.size()) return false;
    if (pattern[p] != "*" && pattern[p] != key[k]) return false;
    ++p;
    ++k;
  }
  return k == key.size();
}

}  // namespace

std::string_view ExchangeTypeName(ExchangeType type) {
  return type == ExchangeType::kFanout ? "fanout" : "topic";
}

bool TopicMatches(std::string_view pattern, std::string_view key) {
  return MatchFrom(Words(pattern), 0, Words(key), 0);
}

Status Exchanges::Declare(const std::string& name, ExchangeType type) {
  if (name.empty()) return Status::InvalidArgument("the default exchange \"\" cannot be declared");
  auto [it, inserted] = exchanges_.try_emplace(name, Exchange{type, {}});
  if (!inserted && it->second.type != type) {
    return Status::FailedPrecondition("exchange \"" + name + "\" exists as " +
                                      std::string(ExchangeTypeName(it->second.type)));
  }
  return Status::Ok();
}

Status Exchanges::Bind(const std::string& exchange, const std::string& queue,
                       const std::string& pattern) {
  auto it = exchanges_.find(exchange);
  if (it == exchanges_.end()) return Status::NotFound("no exchange \"" + exchange + "\"");
  it->second.bindings.insert({queue, pattern});
  return Status::Ok();
}

Status Exchanges::Unbind(const std::string& exchange, const std::string& queue,
                         const std::string& pattern) {
  auto it = exchanges_.find(exchange);
  if (it == exchanges_.end()) return Status::NotFound("no exchange \"" + exchange + "\"");
  it->second.bindings.erase({queue, pattern});
  return Status::Ok();
}

Result<std::vector<std::string>> Exchanges::Route(std::string_view exchange,
                                                  std::string_view key) const {
  if (exchange.empty()) return std::vector<std::string>{std::string(key)};
  auto it = exchanges_.find(exchange);
  if (it == exchanges_.end()) return Status::NotFound("no exchange \"" + std::string(exchange) + "\"");
  std::set<std::string> queues;
  for (const Binding& binding : it->second.bindings) {
    if (it->second.type == ExchangeType::kFanout || TopicMatches(binding.pattern, key)) {
      queues.insert(binding.queue);
    }
  }
  return std::vector<std::string>(queues.begin(), queues.end());
}

}  // namespace zmqkit::internal
