// Admin commands: declaring queues and exchanges, bindings, STATS, PURGE, REDRIVE and PEEK.
// BrokerCore is one class (broker_core.h); its definitions are split by responsibility.
#include "broker/core/broker_core.h"

#include "broker/core/core_internal.h"
#include "broker/core/journal_records.h"

#include <algorithm>
#include <limits>

namespace zmqkit::internal {

namespace p = protocol;
using namespace core_internal;

void BrokerCore::HandleDeclareQueue(const SessionKey& key, const p::Args& args) {
  auto name = args.Str("name");
  if (!name.ok()) return SendError(key.peer, p::kErrInvalidArgument, name.error().message(), p::kDeclareQueue);
  Refusal refusal;
  QueueSlot* slot = GetOrCreateQueue(*name, refusal);
  if (slot == nullptr) return SendError(key.peer, refusal, p::kDeclareQueue);
  QueueOptions options = slot->queue.options();
  auto millis = [&](std::string_view field, std::chrono::milliseconds& target) {
    auto value = args.Uint(field, static_cast<std::uint64_t>(target.count()));
    if (value.ok()) target = std::chrono::milliseconds(static_cast<std::int64_t>(*value));
    return value.ok();
  };
  auto count = [&](std::string_view field, auto& target) {
    auto value = args.Uint(field, static_cast<std::uint64_t>(target));
    if (value.ok()) target = static_cast<std::remove_reference_t<decltype(target)>>(*value);
    return value.ok();
  };
  bool ok = millis("ack_timeout_ms", options.ack_timeout) && count("max_attempts", options.max_attempts) &&
            millis("retry_delay_ms", options.retry_delay) &&
            millis("max_retry_delay_ms", options.max_retry_delay) &&
            millis("message_ttl_ms", options.message_ttl) && count("max_length", options.max_length) &&
            count("max_bytes", options.max_bytes);
  if (!ok || options.ack_timeout.count() == 0) {
    return SendError(key.peer, p::kErrInvalidArgument, "queue options must be non-negative integers "
                     "(ack_timeout_ms positive)", p::kDeclareQueue);
  }
  slot->queue.set_options(options);
  Emit([&] { return records::EncodeQueue(*name, options); });
  SendOk(key);
}

void BrokerCore::HandleDeclareExchange(const SessionKey& key, const p::Args& args) {
  auto name = args.Str("name");
  auto type = args.Str("type", "fanout");
  if (!name.ok() || !type.ok() || (*type != "fanout" && *type != "topic")) {
    return SendError(key.peer, p::kErrInvalidArgument,
                     "DECLARE_EXCHANGE needs name (str) and type \"fanout\" or \"topic\"",
                     p::kDeclareExchange);
  }
  if (auto invalid = CheckName("exchange", *name)) {
    return SendError(key.peer, *invalid, p::kDeclareExchange);
  }
  if (!exchanges_.Exists(*name) && exchanges_.all().size() >= options_.max_queues) {
    return SendError(key.peer, p::kErrLimit,
                     "the broker holds its maximum of " + std::to_string(options_.max_queues) +
                         " exchanges",
                     p::kDeclareExchange, std::nullopt, p::kLimitExchanges);
  }
  const ExchangeType exchange_type = *type == "fanout" ? ExchangeType::kFanout : ExchangeType::kTopic;
  Status declared = exchanges_.Declare(*name, exchange_type);
  if (!declared.ok()) {
    return SendError(key.peer, ErrorCodeFor(declared), declared.message(), p::kDeclareExchange);
  }
  Emit([&] { return records::EncodeExchange(*name, exchange_type); });
  SendOk(key);
}

void BrokerCore::HandleBind(const SessionKey& key, const p::Args& args, bool bind) {
  std::string_view command = bind ? p::kBind : p::kUnbind;
  auto exchange = args.Str("exchange");
  auto queue = args.Str("queue");
  auto pattern = args.Str("pattern", "");
  if (!exchange.ok() || !queue.ok() || !pattern.ok()) {
    return SendError(key.peer, p::kErrInvalidArgument,
                     "needs exchange and queue (str), optional pattern (str)", command);
  }
  if (pattern->size() > options_.max_name_bytes) {
    return SendError(key.peer, p::kErrLimit,
                     "binding patterns are at most " + std::to_string(options_.max_name_bytes) +
                         " bytes",
                     command, std::nullopt, p::kLimitNameBytes);
  }
  if (bind) {
    auto exchange_it = exchanges_.all().find(*exchange);
    if (exchange_it != exchanges_.all().end() &&
        exchange_it->second.bindings.size() >= options_.max_queues) {
      return SendError(key.peer, p::kErrLimit,
                       "exchange \"" + *exchange + "\" holds its maximum of " +
                           std::to_string(options_.max_queues) + " bindings",
                       command, std::nullopt, p::kLimitBindings);
    }
    Refusal refusal;
    if (GetOrCreateQueue(*queue, refusal) == nullptr) return SendError(key.peer, refusal, command);
  }
  Status status = bind ? exchanges_.Bind(*exchange, *queue, *pattern)
                       : exchanges_.Unbind(*exchange, *queue, *pattern);
  if (!status.ok()) return SendError(key.peer, ErrorCodeFor(status), status.message(), command);
  Emit([&] { return records::EncodeBind(bind, *exchange, *queue, *pattern); });
  SendOk(key);
}

void BrokerCore::HandleStats(const SessionKey& key, const p::Args& args) {
  auto only = args.Str("queue", "");
  auto with_queues = args.Bool("queues", true);
  if (!only.ok()) return SendError(key.peer, p::kErrInvalidArgument, only.error().message(), p::kStats);
  if (!with_queues.ok()) {
    return SendError(key.peer, p::kErrInvalidArgument, with_queues.error().message(), p::kStats);
  }
  std::vector<const QueueSlot*> selected;
  if (*with_queues) {
    for (const auto& [name, slot] : queues_) {
      if (only->empty() || name == *only) selected.push_back(&slot);
    }
  }
  if (*with_queues && !only->empty() && selected.empty()) {
    return SendError(key.peer, p::kErrNotFound, "no queue \"" + *only + "\"", p::kStats);
  }
  p::ArgsWriter writer(3);
  writer.Uint("rid", current_rid_);
  writer.Key("broker");
  auto& packer = writer.packer();
  const BrokerCounters& b = counters_;
  const std::pair<std::string_view, std::uint64_t> broker_fields[] = {
      {"messages_in", b.messages_in},
      {"published", b.published},
      {"unroutable", b.unroutable},
      {"refused", b.refused},
      {"malformed", b.malformed},
      {"unknown_commands", b.unknown_commands},
      {"unsupported_version", b.unsupported_version},
      {"unknown_tags", b.unknown_tags},
      {"peers_expired", b.peers_expired},
      {"deliveries_taken_back", b.deliveries_taken_back},
      {"dead_lettered", b.dead_lettered},
      {"journal_failures", b.journal_failures},
      {"journal_syncs", b.journal_syncs},
      {"forbidden", b.forbidden},
      {"connections_refused", b.connections_refused},
      {"oversized_messages", b.oversized_messages},
      {"errors_unsent", b.errors_unsent},
      {"deliveries_withheld", b.deliveries_withheld},
      {"answers_held", b.answers_held},
      {"answers_dropped", b.answers_dropped},
      {"duplicates", b.duplicates},
      {"late_replies", b.late_replies},
      {"producers", producers_.size()},
      {"dedup_ids", dedup_.size()},
      {"dedup_ids_evicted_early", dedup_.evicted_early()},
      {"sessions", sessions_.size()},
      {"consumers", consumers_.size()},
      {"queues", queues_.size()}};
  packer.pack_map(static_cast<std::uint32_t>(std::size(broker_fields)));
  for (const auto& [field, value] : broker_fields) {
    p::PackStr(packer, field);
    packer.pack_uint64(value);
  }
  writer.Key("queues");
  packer.pack_array(static_cast<std::uint32_t>(selected.size()));
  for (const QueueSlot* slot : selected) {
    const MessageQueue& queue = slot->queue;
    auto dlq = queues_.find(queue.name() + std::string(kDeadLetterSuffix));
    const QueueCounters& c = queue.counters();
    const std::pair<std::string_view, std::uint64_t> fields[] = {
        {"ready", queue.ready()},        {"in_flight", queue.in_flight()},
        {"delayed", queue.delayed()},    {"consumers", slot->consumers},
        {"bytes", queue.bytes()},        {"published", c.published},
        {"delivered", c.delivered},      {"acked", c.acked},
        {"requeued", c.requeued},        {"dead_lettered", c.dead_lettered},
        {"expired", c.expired},          {"refused_full", c.refused_full},
        {"dlq_depth", dlq == queues_.end() ? 0 : dlq->second.queue.size()}};
    packer.pack_map(static_cast<std::uint32_t>(std::size(fields) + 1));
    p::PackStr(packer, "name");
    p::PackStr(packer, queue.name());
    for (const auto& [field, value] : fields) {
      p::PackStr(packer, field);
      packer.pack_uint64(value);
    }
  }
  Send(Side::kClients, key.peer, p::Frames(p::kOk, writer.Finish()));
}

void BrokerCore::HandlePurge(const SessionKey& key, const p::Args& args) {
  auto name = args.Str("queue");
  if (!name.ok()) return SendError(key.peer, p::kErrInvalidArgument, name.error().message(), p::kPurge);
  auto it = queues_.find(*name);
  if (it == queues_.end()) return SendError(key.peer, p::kErrNotFound, "no queue \"" + *name + "\"", p::kPurge);
  std::vector<std::uint64_t> removed = it->second.queue.Purge();
  const std::size_t purged = removed.size();
  if (!removed.empty()) Emit([&] { return records::EncodeRemove(*name, removed); });
  Log("queue \"" + *name + "\" purged: " + std::to_string(purged) + " messages");
  Send(Side::kClients, key.peer,
       p::Frames(p::kOk, p::ArgsWriter(2).Uint("rid", current_rid_).Uint("purged", purged).Finish()));
}

void BrokerCore::HandleRedrive(const SessionKey& key, const p::Args& args, TimePoint now) {
  auto name = args.Str("queue");
  auto limit = args.Uint("limit", std::numeric_limits<std::uint64_t>::max());
  if (!name.ok() || !limit.ok()) {
    return SendError(key.peer, p::kErrInvalidArgument, "REDRIVE needs queue (str), optional limit",
                     p::kRedrive);
  }
  auto origin = queues_.find(*name);
  auto dlq = queues_.find(*name + std::string(kDeadLetterSuffix));
  if (origin == queues_.end() || dlq == queues_.end()) {
    return SendError(key.peer, p::kErrNotFound, "no queue \"" + *name + "\" with a dead-letter queue",
                     p::kRedrive);
  }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> moves;
  while (moves.size() < *limit) {
    // Room for the message as it will be: its redrive header in place of its death headers.
    auto next_bytes = RedrivenFrontBytes(dlq->second.queue);
    if (!next_bytes || !origin->second.queue.CheckRoom(*next_bytes).ok()) break;
    auto taken = dlq->second.queue.TakeReady(1);
    auto& [dlq_number, message] = taken.front();
    PrepareRedrive(message);
    auto number = origin->second.queue.Publish(std::move(message), {}, now);  // room checked
    if (!number.ok()) {
      Log("redrive of " + *name + ": " + number.error().ToString());  // a bug: room was checked
      break;
    }
    moves.emplace_back(dlq_number, *number);
  }
  const std::uint64_t moved = moves.size();
  if (!moves.empty()) Emit([&] { return records::EncodeRedrive(*name, moves, unix_micros_()); });
  Send(Side::kClients, key.peer,
       p::Frames(p::kOk, p::ArgsWriter(2).Uint("rid", current_rid_).Uint("moved", moved).Finish()));
  Dispatch(origin->second, now);
}

// Lists a queue's messages without touching them: no lease, no attempt, no journal record.
void BrokerCore::HandlePeek(const SessionKey& key, const p::Args& args) {
  auto name = args.Str("queue");
  auto limit = args.Uint("limit", 100);
  if (!name.ok() || !limit.ok()) {
    return SendError(key.peer, p::kErrInvalidArgument, "PEEK needs queue (str), optional limit", p::kPeek);
  }
  auto it = queues_.find(*name);
  if (it == queues_.end()) return SendError(key.peer, p::kErrNotFound, "no queue \"" + *name + "\"", p::kPeek);
  auto contents = it->second.queue.Contents(
      static_cast<std::size_t>(std::min<std::uint64_t>(*limit, SIZE_MAX)));
  p::ArgsWriter writer(2);
  writer.Uint("rid", current_rid_);
  writer.Key("messages");
  auto& packer = writer.packer();
  packer.pack_array(static_cast<std::uint32_t>(contents.size()));
  for (const auto& message : contents) {
    packer.pack_map(6);
    p::PackStr(packer, "number");
    packer.pack_uint64(message.number);
    p::PackStr(packer, "place");
    p::PackStr(packer, message.place);
    p::PackStr(packer, "priority");
    packer.pack_uint64(message.priority);
    p::PackStr(packer, "attempt");
    packer.pack_uint64(message.attempt);
    p::PackStr(packer, "headers");
    packer.pack_map(static_cast<std::uint32_t>(message.headers.size()));
    for (const auto& [header, value] : message.headers) {
      p::PackStr(packer, header);
      p::PackStr(packer, value);
    }
    p::PackStr(packer, "body");
    packer.pack_bin(static_cast<std::uint32_t>(message.body.size()));
    packer.pack_bin_body(message.body.data(), static_cast<std::uint32_t>(message.body.size()));
  }
  Send(Side::kClients, key.peer, p::Frames(p::kOk, writer.Finish()));
}

}  // namespace zmqkit::internal
