#include "broker/core/journal_records.h"

#include <msgpack.hpp>

namespace zmqkit::internal::records {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

void Str(Packer& p, std::string_view s) {
  p.pack_str(static_cast<std::uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}
void Bin(Packer& p, std::string_view s) {
  p.pack_bin(static_cast<std::uint32_t>(s.size()));
  p.pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
}
std::uint64_t Ms(std::chrono::milliseconds value) { return static_cast<std::uint64_t>(value.count()); }

// `expected_bytes`: what the record will roughly take. msgpack's default (8 KiB) would cost a large
// allocation for every record, most of which are a few dozen bytes.
template <typename Fill>
std::string Build(Op op, std::uint32_t fields, const Fill& fill, std::size_t expected_bytes = 128) {
  msgpack::sbuffer buffer(expected_bytes);
  Packer packer(buffer);
  packer.pack_array(fields + 1);
  packer.pack_uint8(static_cast<std::uint8_t>(op));
  fill(packer);
  return std::string(buffer.data(), buffer.size());
}

// Typed access to the array elements of a decoded record; throws msgpack::type_error on a
// mismatch, which Decode() turns into kCorruption.
struct Reader {
  const msgpack::object_array& array;
  std::uint32_t next = 1;
  const msgpack::object& Next() {
    if (next >= array.size) throw msgpack::type_error();
    return array.ptr[next++];
  }
  std::uint64_t Uint() { return Next().as<std::uint64_t>(); }
  std::int64_t Int() { return Next().as<std::int64_t>(); }
  std::string Text() {
    const msgpack::object& o = Next();
    if (o.type == msgpack::type::STR) return std::string(o.via.str.ptr, o.via.str.size);
    if (o.type == msgpack::type::BIN) return std::string(o.via.bin.ptr, o.via.bin.size);
    throw msgpack::type_error();
  }
};

}  // namespace

std::string EncodeQueue(std::string_view name, const QueueOptions& o, std::uint64_t next_number) {
  return Build(Op::kQueue, next_number > 0 ? 9 : 8, [&](Packer& p) {
    Str(p, name);
    p.pack_uint64(Ms(o.ack_timeout));
    p.pack_uint64(o.max_attempts);
    p.pack_uint64(Ms(o.retry_delay));
    p.pack_uint64(Ms(o.max_retry_delay));
    p.pack_uint64(Ms(o.message_ttl));
    p.pack_uint64(o.max_length);
    p.pack_uint64(o.max_bytes);
    if (next_number > 0) p.pack_uint64(next_number);
  });
}

std::string EncodeRestore(std::string_view queue, std::uint64_t number, std::uint32_t attempt,
                          std::string_view history) {
  return Build(Op::kRestore, 4, [&](Packer& p) {
    Str(p, queue);
    p.pack_uint64(number);
    p.pack_uint64(attempt);
    Str(p, history);
  });
}

std::string EncodeExchange(std::string_view name, ExchangeType type) {
  return Build(Op::kExchange, 2, [&](Packer& p) {
    Str(p, name);
    Str(p, ExchangeTypeName(type));
  });
}

std::string EncodeBind(bool bind, std::string_view exchange, std::string_view queue,
                       std::string_view pattern) {
  return Build(bind ? Op::kBind : Op::kUnbind, 3, [&](Packer& p) {
    Str(p, exchange);
    Str(p, queue);
    Str(p, pattern);
  });
}

std::string EncodePublish(const std::vector<std::pair<std::string, std::uint64_t>>& targets,
                          std::string_view header, std::string_view body, std::int64_t at_unix_us,
                          std::int64_t delay_us, std::int64_t ttl_us, std::string_view reply_to,
                          std::string_view producer, std::uint64_t pseq,
                          std::string_view dedup_id, std::string_view exchange,
                          std::string_view routing_key) {
  const std::uint32_t fields = !dedup_id.empty() ? 12 : !producer.empty() ? 9 : 7;
  return Build(Op::kPublish, fields, [&](Packer& p) {
    p.pack_array(static_cast<std::uint32_t>(targets.size()));
    for (const auto& [queue, number] : targets) {
      p.pack_array(2);
      Str(p, queue);
      p.pack_uint64(number);
    }
    Bin(p, header);
    Bin(p, body);
    p.pack_int64(at_unix_us);
    p.pack_int64(delay_us);
    p.pack_int64(ttl_us);
    Bin(p, reply_to);
    if (fields >= 9) {
      Str(p, producer);
      p.pack_uint64(pseq);
    }
    if (fields >= 12) {
      Str(p, dedup_id);
      Str(p, exchange);
      Str(p, routing_key);
    }
  }, header.size() + body.size() + reply_to.size() + producer.size() + dedup_id.size() +
         exchange.size() + routing_key.size() + 96 + 32 * targets.size());
}

std::string EncodeDedup(std::string_view exchange, std::string_view routing_key,
                        std::string_view dedup_id, std::int64_t at_unix_us) {
  return Build(Op::kDedup, 4, [&](Packer& p) {
    Str(p, dedup_id);
    Str(p, exchange);
    Str(p, routing_key);
    p.pack_int64(at_unix_us);
  }, dedup_id.size() + exchange.size() + routing_key.size() + 32);
}

std::string EncodeProducer(std::string_view producer, std::uint64_t highest, std::uint64_t floor,
                           const std::vector<std::pair<std::uint64_t, std::uint64_t>>& gaps,
                           std::int64_t last_active_us) {
  return Build(Op::kProducer, 5, [&](Packer& p) {
    Str(p, producer);
    p.pack_uint64(highest);
    p.pack_uint64(floor);
    p.pack_array(static_cast<std::uint32_t>(gaps.size()));
    for (const auto& [first, last] : gaps) {
      p.pack_array(2);
      p.pack_uint64(first);
      p.pack_uint64(last);
    }
    p.pack_int64(last_active_us);
  }, producer.size() + 48 + 20 * gaps.size());
}

std::string EncodeAck(std::string_view queue, std::uint64_t number) {
  return Build(Op::kAck, 2, [&](Packer& p) {
    Str(p, queue);
    p.pack_uint64(number);
  });
}

std::string EncodeFail(std::string_view queue, std::uint64_t number, std::uint32_t attempt,
                       FailureReason reason) {
  return Build(Op::kFail, 4, [&](Packer& p) {
    Str(p, queue);
    p.pack_uint64(number);
    p.pack_uint64(attempt);
    p.pack_uint8(static_cast<std::uint8_t>(reason));
  });
}

std::string EncodeDead(std::string_view queue, std::uint64_t number, DeadLetterReason reason,
                       std::uint64_t dlq_number) {
  return Build(Op::kDead, 4, [&](Packer& p) {
    Str(p, queue);
    p.pack_uint64(number);
    p.pack_uint8(static_cast<std::uint8_t>(reason));
    p.pack_uint64(dlq_number);
  });
}

std::string EncodeRemove(std::string_view queue, const std::vector<std::uint64_t>& numbers) {
  return Build(Op::kRemove, 2, [&](Packer& p) {
    Str(p, queue);
    p.pack_array(static_cast<std::uint32_t>(numbers.size()));
    for (std::uint64_t number : numbers) p.pack_uint64(number);
  });
}

std::string EncodeRedrive(std::string_view origin,
                          const std::vector<std::pair<std::uint64_t, std::uint64_t>>& moves,
                          std::int64_t at_unix_us) {
  return Build(Op::kRedrive, 3, [&](Packer& p) {
    Str(p, origin);
    p.pack_array(static_cast<std::uint32_t>(moves.size()));
    for (const auto& [from, to] : moves) {
      p.pack_array(2);
      p.pack_uint64(from);
      p.pack_uint64(to);
    }
    p.pack_int64(at_unix_us);
  });
}

std::string EncodeEpoch(std::uint64_t epoch) {
  return Build(Op::kEpoch, 1, [&](Packer& p) { p.pack_uint64(epoch); });
}

std::string EncodeReady(std::string_view queue, std::uint64_t number, std::uint64_t order) {
  return Build(Op::kReady, 3, [&](Packer& p) {
    Str(p, queue);
    p.pack_uint64(number);
    p.pack_uint64(order);
  });
}

// One case per op, each reading that op's fields in the documented order: long as a whole (about
// 130 lines), but split up it would scatter the format's one reading across functions.
Result<Record> Decode(std::string_view bytes) {
  Record record;
  try {
    // One zone per thread, emptied for each record: recovery decodes a record per message, and a
    // fresh zone would allocate msgpack's default 8 KiB chunk each time. Every field is copied out
    // into `record` before the next call.
    thread_local msgpack::zone zone;
    zone.clear();
    const msgpack::object root = msgpack::unpack(zone, bytes.data(), bytes.size());
    if (root.type != msgpack::type::ARRAY || root.via.array.size == 0) {
      return Status::Corruption("journal record is not a non-empty array");
    }
    Reader in{root.via.array};
    record.op = static_cast<Op>(root.via.array.ptr[0].as<std::uint8_t>());
    switch (record.op) {
      case Op::kQueue:
        record.queue = in.Text();
        record.options.ack_timeout = std::chrono::milliseconds(in.Uint());
        record.options.max_attempts = static_cast<std::uint32_t>(in.Uint());
        record.options.retry_delay = std::chrono::milliseconds(in.Uint());
        record.options.max_retry_delay = std::chrono::milliseconds(in.Uint());
        record.options.message_ttl = std::chrono::milliseconds(in.Uint());
        record.options.max_length = in.Uint();
        record.options.max_bytes = in.Uint();
        if (root.via.array.size > 9) record.next_number = in.Uint();
        break;
      case Op::kRestore:
        record.queue = in.Text();
        record.number = in.Uint();
        record.attempt = static_cast<std::uint32_t>(in.Uint());
        record.history = in.Text();
        break;
      case Op::kExchange: {
        record.exchange = in.Text();
        std::string type = in.Text();
        if (type != "fanout" && type != "topic") return Status::Corruption("unknown exchange type");
        record.exchange_type = type == "fanout" ? ExchangeType::kFanout : ExchangeType::kTopic;
        break;
      }
      case Op::kBind:
      case Op::kUnbind:
        record.exchange = in.Text();
        record.queue = in.Text();
        record.pattern = in.Text();
        break;
      case Op::kPublish: {
        const msgpack::object& targets = in.Next();
        for (std::uint32_t i = 0; i < targets.via.array.size && targets.type == msgpack::type::ARRAY; ++i) {
          auto pair = targets.via.array.ptr[i].as<std::pair<std::string, std::uint64_t>>();
          record.targets.push_back(std::move(pair));
        }
        if (targets.type != msgpack::type::ARRAY) return Status::Corruption("bad publish targets");
        record.header = in.Text();
        record.body = in.Text();
        record.at_unix_us = in.Int();
        record.delay_us = in.Int();
        record.ttl_us = in.Int();
        record.reply_to = in.Text();
        if (root.via.array.size > 8) {
          record.producer = in.Text();
          record.pseq = in.Uint();
        }
        if (root.via.array.size > 10) {
          record.dedup_id = in.Text();
          record.exchange = in.Text();
          record.routing_key = in.Text();
        }
        break;
      }
      case Op::kDedup:
        record.dedup_id = in.Text();
        record.exchange = in.Text();
        record.routing_key = in.Text();
        record.at_unix_us = in.Int();
        break;
      case Op::kProducer:
        record.producer = in.Text();
        record.highest = in.Uint();
        record.floor = in.Uint();
        record.gaps = in.Next().as<std::vector<std::pair<std::uint64_t, std::uint64_t>>>();
        record.last_active_us = in.Int();
        break;
      case Op::kAck:
        record.queue = in.Text();
        record.number = in.Uint();
        break;
      case Op::kFail:
        record.queue = in.Text();
        record.number = in.Uint();
        record.attempt = static_cast<std::uint32_t>(in.Uint());
        record.reason = static_cast<std::uint8_t>(in.Uint());
        if (record.reason > static_cast<std::uint8_t>(FailureReason::kConsumerLost)) {
          return Status::Corruption("unknown failure reason");
        }
        break;
      case Op::kDead:
        record.queue = in.Text();
        record.number = in.Uint();
        record.reason = static_cast<std::uint8_t>(in.Uint());
        record.dlq_number = in.Uint();
        if (record.reason > static_cast<std::uint8_t>(DeadLetterReason::kMaxAttempts)) {
          return Status::Corruption("unknown dead-letter reason");
        }
        break;
      case Op::kRemove:
        record.queue = in.Text();
        record.numbers = in.Next().as<std::vector<std::uint64_t>>();
        break;
      case Op::kRedrive:
        record.queue = in.Text();
        record.moves = in.Next().as<std::vector<std::pair<std::uint64_t, std::uint64_t>>>();
        if (root.via.array.size > 3) record.at_unix_us = in.Int();
        break;
      case Op::kEpoch:
        record.epoch = in.Uint();
        break;
      case Op::kReady:
        record.queue = in.Text();
        record.number = in.Uint();
        record.order = in.Uint();
        break;
      default:
        return Status::Corruption("unknown journal record op " +
                                  std::to_string(static_cast<int>(record.op)));
    }
  } catch (const std::exception& error) {
    return Status::Corruption(std::string("undecodable journal record: ") + error.what());
  }
  return record;
}

}  // namespace zmqkit::internal::records
