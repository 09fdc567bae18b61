// The broker's journal records: each state change of the broker as one logical record
// (docs/journal-format.md, section 7). Encoding and decoding only; BrokerCore decides what to record
// and applies records on replay.
#ifndef ZMQKIT_SRC_BROKER_CORE_JOURNAL_RECORDS_H_
#define ZMQKIT_SRC_BROKER_CORE_JOURNAL_RECORDS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "broker/core/exchanges.h"
#include "broker/core/message_queue.h"
#include "zmqkit/queue_options.h"
#include "zmqkit/status.h"

namespace zmqkit::internal::records {

enum class Op : std::uint8_t {
  kQueue = 1,     // a queue exists, with these options
  kExchange = 2,  // an exchange exists, of this type
  kBind = 3,
  kUnbind = 4,
  kPublish = 5,   // a message entered one or more queues, with these numbers
  kAck = 6,       // a message was settled
  kFail = 7,      // a delivery failed; the message stayed (history and attempt recorded)
  kDead = 8,      // a message left for the dead-letter queue, with this number there
  kRemove = 9,    // messages purged
  kRedrive = 10,  // messages moved from the dead-letter queue back to their queue
  kRestore = 11,  // (snapshots) a message's attempt count and failure history
  kEpoch = 12,    // the delivery tags of this run (or from here on) carry this epoch
  kProducer = 13, // (snapshots) what an idempotent producer's sequence numbers say was stored
  kDedup = 14,    // (snapshots) a message id the deduplication window remembers
  kReady = 15,    // a message's publish delay ended: it joined the ready order here
};

// Every field any record has; each op uses a subset (see the format document).
struct Record {
  Op op;
  std::string queue;     // kQueue, kBind/kUnbind, kAck, kFail, kDead, kRemove, kRedrive (origin)
  QueueOptions options;  // kQueue
  std::uint64_t next_number = 0;  // kQueue (snapshots): the queue's next message number; 0 = unset
  std::string exchange;  // kExchange, kBind/kUnbind
  ExchangeType exchange_type = ExchangeType::kFanout;
  std::string pattern;   // kBind/kUnbind
  std::vector<std::pair<std::string, std::uint64_t>> targets;  // kPublish: (queue, number)
  std::string header;    // kPublish: the envelope's header frame (wire format)
  std::string body;      // kPublish
  std::int64_t at_unix_us = 0;  // kPublish, kRedrive (0: an older REDRIVE without it): when, on the broker's wall clock
  std::int64_t delay_us = 0;    // kPublish: 0 = none
  std::int64_t ttl_us = 0;      // kPublish: 0 = the queue's default, negative = none
  std::string reply_to;         // kPublish
  std::uint64_t number = 0;     // kAck, kFail, kDead, kRestore, kReady
  std::uint64_t order = 0;      // kReady: its place in the ready order (from the queue's numbers)
  std::uint32_t attempt = 0;    // kFail, kRestore
  std::string history;          // kRestore
  std::uint8_t reason = 0;      // kFail: FailureReason; kDead: DeadLetterReason
  std::uint64_t dlq_number = 0; // kDead
  std::vector<std::uint64_t> numbers;                          // kRemove
  std::vector<std::pair<std::uint64_t, std::uint64_t>> moves;  // kRedrive: (dlq number, new number)
  std::uint64_t epoch = 0;      // kEpoch
  std::string producer;         // kPublish (optional), kProducer
  std::uint64_t pseq = 0;       // kPublish: the producer's sequence number, if producer is set
  std::uint64_t highest = 0;    // kProducer
  std::uint64_t floor = 0;      // kProducer
  std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps;  // kProducer
  std::int64_t last_active_us = 0;                            // kProducer
  // kPublish (optional), kDedup: a "dedup-id" and the exchange and routing key it is scoped by
  // (the exchange is `exchange`); at_unix_us is when it was stored.
  std::string routing_key;
  std::string dedup_id;
};

std::string EncodeQueue(std::string_view name, const QueueOptions& options,
                        std::uint64_t next_number = 0);
std::string EncodeRestore(std::string_view queue, std::uint64_t number, std::uint32_t attempt,
                          std::string_view history);
std::string EncodeExchange(std::string_view name, ExchangeType type);
std::string EncodeBind(bool bind, std::string_view exchange, std::string_view queue,
                       std::string_view pattern);
// `producer` and `pseq`: an idempotent producer's id and sequence number ("": none). `dedup_id`:
// the message's "dedup-id" ("": none), scoped by the publish's exchange and routing key.
std::string EncodePublish(const std::vector<std::pair<std::string, std::uint64_t>>& targets,
                          std::string_view header, std::string_view body, std::int64_t at_unix_us,
                          std::int64_t delay_us, std::int64_t ttl_us, std::string_view reply_to,
                          std::string_view producer = {}, std::uint64_t pseq = 0,
                          std::string_view dedup_id = {}, std::string_view exchange = {},
                          std::string_view routing_key = {});
std::string EncodeDedup(std::string_view exchange, std::string_view routing_key,
                        std::string_view dedup_id, std::int64_t at_unix_us);
std::string EncodeProducer(std::string_view producer, std::uint64_t highest, std::uint64_t floor,
                           const std::vector<std::pair<std::uint64_t, std::uint64_t>>& gaps,
                           std::int64_t last_active_us);
std::string EncodeAck(std::string_view queue, std::uint64_t number);
std::string EncodeFail(std::string_view queue, std::uint64_t number, std::uint32_t attempt,
                       FailureReason reason);
std::string EncodeDead(std::string_view queue, std::uint64_t number, DeadLetterReason reason,
                       std::uint64_t dlq_number);
std::string EncodeRemove(std::string_view queue, const std::vector<std::uint64_t>& numbers);
// `at_unix_us`: when (the broker's wall clock); a queue's default TTL runs from then.
std::string EncodeRedrive(std::string_view origin,
                          const std::vector<std::pair<std::uint64_t, std::uint64_t>>& moves,
                          std::int64_t at_unix_us);
std::string EncodeEpoch(std::uint64_t epoch);
std::string EncodeReady(std::string_view queue, std::uint64_t number, std::uint64_t order);

// kCorruption if `bytes` is not a record of this format (it passed the journal's checksum, so a
// record that does not decode is a bug or a foreign writer, not a torn write).
Result<Record> Decode(std::string_view bytes);

}  // namespace zmqkit::internal::records

#endif  // ZMQKIT_SRC_BROKER_CORE_JOURNAL_RECORDS_H_
