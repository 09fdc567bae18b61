#include "zmqkit/broker_client.h"

#include <algorithm>
#include <atomic>
#include <map>

#include "broker/protocol.h"
#include "deadline.h"
#include "frames.h"

namespace zmqkit {
namespace {

namespace p = internal::protocol;

constexpr std::string_view kStopActor = "$STOP";

std::string_view View(const zmq::message_t& frame) { return {frame.data<char>(), frame.size()}; }

std::string NextPipeAddress() {
  static std::atomic<std::uint64_t> counter{0};
  return "inproc://zmqkit-broker-client-" + std::to_string(counter.fetch_add(1));
}


// The actor: owns the broker connection. Forwards commands from the pipe to the broker and
// everything but heartbeats from the broker to the pipe; sends heartbeats; extends held deliveries.
void RunActor(zmq::socket_t broker, zmq::socket_t pipe, BrokerClientOptions options) {
  using Clock = std::chrono::steady_clock;
  std::map<std::uint64_t, Clock::time_point> held;  // delivery tag -> when it arrived
  std::string broker_instance;  // from the broker's heartbeats; empty until the first
  std::vector<zmq::message_t> frames;
  auto next_heartbeat = Clock::now() + options.heartbeat_interval;
  // Deadlines are pushed to 3 intervals ahead, every interval: a live client never loses a delivery
  // it holds (up to max_lease), a dead one loses it within the broker's liveness window anyway.
  const auto extend_by = options.heartbeat_interval * 3;
  // A broker that is away for long fills the connection's queue; then sends time out (the socket's
  // send timeout is one heartbeat) instead of blocking, so the actor keeps answering its owner — and
  // a command it could not pass on is reported to the owner rather than silently lost.
  auto to_broker = [&](std::span<zmq::message_t> message) {
    if (internal::SendAll(broker, message)) return true;
    std::string command = message.size() > 1 ? message[1].to_string() : "";
    auto error = p::Frames(p::kError, p::ArgsWriter(3)
                                          .Str("code", "unavailable")
                                          .Str("message", "the broker is not taking messages; " +
                                                              command + " was not sent")
                                          .Str("command", command)
                                          .Finish());
    internal::SendAll(pipe, error);
    return false;
  };
  auto send_command = [&](std::string_view command, zmq::message_t args) {
    auto message = p::Frames(command, std::move(args));
    to_broker(message);
  };
  for (;;) {
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_heartbeat - Clock::now());
    zmq::pollitem_t items[] = {{pipe.handle(), 0, ZMQ_POLLIN, 0},
                               {broker.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, std::max(wait, std::chrono::milliseconds(0)));
      // One message from the owner per turn. Draining bursts here (1024 per turn) was tried and
      // made a client that published a burst just before its broker stopped send nothing to the
      // next broker in 2 of 15 runs of DurabilityTest.AConfirmNeverCoversPublishesLostWithTheBroker;
      // not understood yet, so not done. What was seen: the new broker received ~99 messages from
      // that client in 10 s (its heartbeats) and not one PUBLISH, not even one sent after the
      // restart; the actor's sends had all succeeded.
      if (items[0].revents & ZMQ_POLLIN) {
        std::size_t count = internal::RecvAll(pipe, frames, zmq::recv_flags::dontwait);
        if (count == 1 && View(frames[0]) == kStopActor) {
          send_command(p::kBye, p::NoArgs());
          return;
        }
        if (count >= 3) {
          std::string_view command = View(frames[1]);
          if (command == p::kAck || command == p::kNack) {
            auto args = p::Args::Parse(View(frames[2]));
            if (args.ok()) {
              if (auto tags = args->UintList("tags"); tags.ok()) {
                for (auto tag : *tags) held.erase(tag);
              }
              if (auto tag = args->Uint("tag"); tag.ok()) held.erase(*tag);
            }
          }
        }
        if (count > 0) to_broker(std::span(frames.data(), count));
      }
      if (items[1].revents & ZMQ_POLLIN) {
        for (std::size_t count; (count = internal::RecvAll(broker, frames, zmq::recv_flags::dontwait));) {
          if (count >= 3 && View(frames[1]) == p::kHeartbeat) {
            // A different instance is a restarted broker: it has forgotten this client's
            // consumers and deliveries. Only then does the owner hear of a heartbeat.
            auto args = p::Args::Parse(View(frames[2]));
            std::string instance = args.ok() ? args->Str("instance", "").value_or("") : "";
            if (instance.empty() || instance == broker_instance) continue;
            const bool restarted = !broker_instance.empty();
            broker_instance = std::move(instance);
            if (!restarted) continue;
            held.clear();
          }
          if (count >= 3 && View(frames[1]) == p::kError) {
            auto args = p::Args::Parse(View(frames[2]));
            // The broker took back everything this client held: nothing left to extend.
            if (args.ok() && args->Str("code", "").value_or("") == p::kErrSessionExpired) held.clear();
          }
          if (count >= 3 && View(frames[1]) == p::kDeliver) {
            auto args = p::Args::Parse(View(frames[2]));
            if (args.ok()) {
              if (auto tag = args->Uint("tag"); tag.ok()) held.emplace(*tag, Clock::now());
            }
          }
          internal::SendAll(pipe, std::span(frames.data(), count));
        }
      }
      const auto now = Clock::now();
      if (now >= next_heartbeat) {
        next_heartbeat = now + options.heartbeat_interval;
        send_command(p::kHeartbeat, p::NoArgs());
        if (options.auto_extend) {
          std::vector<std::uint64_t> tags;
          for (const auto& [tag, since] : held) {
            if (now - since < options.max_lease) tags.push_back(tag);
          }
          if (!tags.empty()) {
            send_command(p::kExtend, p::ArgsWriter(2)
                                         .UintList("tags", tags)
                                         .Uint("ms", static_cast<std::uint64_t>(extend_by.count()))
                                         .Finish());
          }
        }
      }
    } catch (const zmq::error_t& error) {
      if (error.num() == EINTR) continue;
      return;  // ETERM: the context is going away
    }
  }
}

// The unsigned integer fields of a STATS map (a queue's, or the broker's); others are skipped, so
// a newer broker may add fields of other types.
std::map<std::string, std::uint64_t> UintFields(const std::map<std::string, msgpack::object>& map) {
  std::map<std::string, std::uint64_t> fields;
  for (const auto& [key, value] : map) {
    if (value.type == msgpack::type::POSITIVE_INTEGER) fields[key] = value.via.u64;
  }
  return fields;
}

}  // namespace

BrokerClient::BrokerClient(zmq::context_t& context, const Endpoint& broker,
                           BrokerClientOptions options)
    : options_(std::move(options)), pipe_(context, zmq::socket_type::pair) {
  zmq::socket_t connection = OpenSocket(context, zmq::socket_type::dealer, options_.socket);
  connection.set(zmq::sockopt::sndtimeo, static_cast<int>(options_.heartbeat_interval.count()));
  AttachSocket(connection, broker);  // throws here, on the caller's thread, if refused
  // The pipe is bounded from owner to actor, so a publisher faster than the broker is slowed down
  // instead of growing memory; it is unbounded from actor to owner, where prefetch already bounds
  // deliveries, so the actor can never block on an owner that is itself blocked on the actor.
  constexpr int kOwnerToActorHwm = 100000;
  std::string address = NextPipeAddress();
  pipe_.set(zmq::sockopt::linger, 0);
  pipe_.set(zmq::sockopt::sndhwm, kOwnerToActorHwm);
  pipe_.set(zmq::sockopt::rcvhwm, 0);
  pipe_.bind(address);
  zmq::socket_t actor_end(context, zmq::socket_type::pair);
  actor_end.set(zmq::sockopt::linger, 0);
  actor_end.set(zmq::sockopt::sndhwm, 0);
  actor_end.set(zmq::sockopt::rcvhwm, kOwnerToActorHwm);
  actor_end.connect(address);
  // The sockets move to the actor thread; starting a thread is the memory barrier libzmq asks for.
  actor_ = std::thread(RunActor, std::move(connection), std::move(actor_end), options_);
}

BrokerClient::~BrokerClient() {
  try {
    pipe_.send(zmq::buffer(kStopActor));
  } catch (const zmq::error_t&) {
    // The context is terminating; the actor is leaving on its own.
  }
  actor_.join();
}

void BrokerClient::SendCommand(std::string_view command, zmq::message_t args,
                               std::vector<zmq::message_t> payload) {
  auto frames = p::Frames(command, std::move(args), std::move(payload));
  internal::SendAll(pipe_, frames);
}

Result<std::uint64_t> BrokerClient::Publish(Envelope envelope, const PublishOptions& options) {
  const std::uint64_t seq = ++last_sent_seq_;
  std::uint32_t entries = 3 + (options.delay.count() > 0) + (options.ttl.count() > 0);
  p::ArgsWriter args(entries);
  args.Uint("seq", seq).Str("exchange", options.exchange).Str("key", options.key);
  if (options.delay.count() > 0) args.Uint("delay_ms", static_cast<std::uint64_t>(options.delay.count()));
  if (options.ttl.count() > 0) args.Uint("ttl_ms", static_cast<std::uint64_t>(options.ttl.count()));
  scratch_.clear();
  EncodeHeader(envelope, scratch_);
  std::vector<zmq::message_t> payload;
  payload.emplace_back(scratch_.data(), scratch_.size());
  payload.push_back(std::move(envelope.body));
  SendCommand(p::kPublish, args.Finish(), std::move(payload));
  return seq;
}

Result<std::uint64_t> BrokerClient::Publish(const std::string& queue, std::string_view body) {
  PublishOptions options;
  options.key = queue;
  return Publish(Envelope::New(body), options);
}

bool BrokerClient::ReadOne(std::chrono::milliseconds timeout) {
  std::vector<zmq::message_t>& frames = frames_;
  const std::size_t count = internal::RecvAllWithin(pipe_, frames, timeout);
  if (count == 0) return false;
  if (count < 3 || View(frames[0]) != p::kSignature) {
    errors_.push_back("malformed message from the broker");
    return true;
  }
  std::string_view command = View(frames[1]);
  auto args = p::Args::Parse(View(frames[2]));
  if (!args.ok()) {
    errors_.push_back("malformed args from the broker: " + args.error().message());
    return true;
  }
  // Never throws on a bad value: a wrong type reads as the default.
  auto uint = [&](std::string_view key) {
    auto value = args->Uint(key, 0);
    return value.ok() ? *value : 0;
  };
  auto str = [&](std::string_view key) {
    auto value = args->Str(key, "");
    return value.ok() ? *value : std::string();
  };
  auto advance_settled = [&] {
    while (rejected_seqs_.contains(last_settled_seq_ + 1)) {
      rejected_seqs_.erase(++last_settled_seq_);
    }
  };
  if (command == p::kConfirm) {
    // Publishes before "from" never reached the session that confirms: they were lost with an
    // earlier connection or broker. Reported as rejected, never as confirmed.
    const std::uint64_t from = std::max<std::uint64_t>(uint("from"), 1);
    for (std::uint64_t seq = last_settled_seq_ + 1; seq < from; ++seq) {
      if (rejected_seqs_.insert(seq).second) {
        rejections_.push_back({seq, "lost-in-transit",
                               "the broker never received this publish (the connection or the "
                               "broker restarted before it arrived); publish it again"});
      }
    }
    advance_settled();
    last_settled_seq_ = std::max(last_settled_seq_, uint("upto"));
    confirm_level_ = str("level") == "on-disk" ? ConfirmLevel::kOnDisk : ConfirmLevel::kQueued;
    advance_settled();
  } else if (command == p::kRejected) {
    Rejection rejection{uint("seq"), str("code"), str("message")};
    if (rejection.seq > last_settled_seq_) rejected_seqs_.insert(rejection.seq);
    rejections_.push_back(std::move(rejection));
    advance_settled();
  } else if (command == p::kDeliver) {
    auto decoded = DecodeFrames(std::span(frames.data() + 3, count - 3), options_.limits);
    if (!decoded.ok()) {
      errors_.push_back("undecodable delivery: " + decoded.error().ToString());
      return true;
    }
    deliveries_.push_back(Delivery{uint("tag"), str("consumer"), str("queue"), std::move(decoded).value()});
  } else if (command == p::kOk) {
    replies_.insert_or_assign(uint("rid"), Result<std::string>(frames[2].to_string()));
  } else if (command == p::kHeartbeat) {
    // The actor passes on only a heartbeat from a new broker instance: a restart.
    Resubscribe();
    errors_.push_back(
        "broker-restarted: the broker restarted; deliveries held from before are void (acks for "
        "them are refused) and consumers were started again");
  } else if (command == p::kError) {
    if (str("code") == p::kErrSessionExpired) Resubscribe();
    std::string text = str("code") + ": " + str("message");
    if (uint("rid") != 0) {
      Status error = str("code") == p::kErrForbidden ? Status::PermissionDenied(std::move(text))
                                                     : Status::FailedPrecondition(std::move(text));
      replies_.insert_or_assign(uint("rid"), Result<std::string>(std::move(error)));
    } else {
      errors_.push_back(std::move(text));
    }
  }
  return true;
}

Status BrokerClient::WaitForConfirms(std::chrono::milliseconds timeout) {
  internal::Deadline deadline(timeout);
  // Reads at least once, even with a zero timeout, so what has already arrived is seen.
  while (last_settled_seq_ < last_sent_seq_) {
    const bool read = ReadOne(deadline.remaining());
    if (last_settled_seq_ >= last_sent_seq_) break;
    if (!read || deadline.expired()) {
      return Status::DeadlineExceeded(std::to_string(unconfirmed()) +
                                      " publishes not confirmed within " +
                                      std::to_string(timeout.count()) + " ms");
    }
  }
  if (!rejections_.empty()) {
    const Rejection& first = rejections_.front();
    return Status::ResourceExhausted(std::to_string(rejections_.size()) +
                                     " publishes rejected; first: seq " + std::to_string(first.seq) +
                                     " (" + first.code + ": " + first.message + ")");
  }
  return Status::Ok();
}

std::vector<Rejection> BrokerClient::TakeRejections() { return std::exchange(rejections_, {}); }
std::vector<std::string> BrokerClient::TakeErrors() { return std::exchange(errors_, {}); }

Result<std::string> BrokerClient::Call(std::string_view command, zmq::message_t args,
                                       std::uint64_t rid) {
  SendCommand(command, std::move(args));
  internal::Deadline deadline(options_.request_timeout);
  for (;;) {
    if (auto it = replies_.find(rid); it != replies_.end()) {
      Result<std::string> reply = std::move(it->second);
      replies_.erase(it);
      return reply;
    }
    const bool read = ReadOne(deadline.remaining());
    if (replies_.contains(rid)) continue;
    if (!read || deadline.expired()) {
      return Status::Unavailable("no answer from the broker to " + std::string(command) +
                                 " within " + std::to_string(options_.request_timeout.count()) +
                                 " ms — is zmqkit-broker running?");
    }
  }
}

Status BrokerClient::Consume(const std::string& queue, std::uint32_t prefetch,
                             const std::string& consumer,
                             std::optional<std::chrono::milliseconds> ack_timeout) {
  const std::uint64_t rid = next_rid_++;
  std::string name = consumer.empty() ? "consumer-" + std::to_string(next_consumer_++) : consumer;
  p::ArgsWriter args(ack_timeout ? 5 : 4);
  args.Uint("rid", rid).Str("queue", queue).Str("consumer", name).Uint("prefetch", prefetch);
  if (ack_timeout) args.Uint("ack_timeout_ms", static_cast<std::uint64_t>(ack_timeout->count()));
  auto reply = Call(p::kConsume, args.Finish(), rid);
  if (!reply.ok()) return reply.error();
  consumers_[name] = ConsumerSpec{queue, prefetch, ack_timeout};
  return Status::Ok();
}

void BrokerClient::Resubscribe() {
  // Fire and forget: answers (rid 0) are not waited for; a failure shows up in TakeErrors().
  for (const auto& [name, spec] : consumers_) {
    p::ArgsWriter args(spec.ack_timeout ? 4 : 3);
    args.Str("queue", spec.queue).Str("consumer", name).Uint("prefetch", spec.prefetch);
    if (spec.ack_timeout) args.Uint("ack_timeout_ms", static_cast<std::uint64_t>(spec.ack_timeout->count()));
    SendCommand(p::kConsume, args.Finish());
  }
}

Status BrokerClient::Cancel(const std::string& consumer) {
  consumers_.erase(consumer);
  const std::uint64_t rid = next_rid_++;
  auto reply = Call(p::kCancel, p::ArgsWriter(2).Uint("rid", rid).Str("consumer", consumer).Finish(), rid);
  return reply.ok() ? Status::Ok() : reply.error();
}

Result<Delivery> BrokerClient::Receive(std::chrono::milliseconds timeout) {
  internal::Deadline deadline(timeout);
  // Reads at least once, even with a zero timeout: Receive(0ms) takes a delivery that has arrived.
  while (deliveries_.empty()) {
    const bool read = ReadOne(deadline.remaining());
    if (!deliveries_.empty()) break;
    if (!read || deadline.expired()) {
      return Status::DeadlineExceeded("no delivery within " + std::to_string(timeout.count()) + " ms");
    }
  }
  Delivery delivery = std::move(deliveries_.front());
  deliveries_.pop_front();
  return delivery;
}

Status BrokerClient::Ack(std::uint64_t tag) { return Ack(std::vector<std::uint64_t>{tag}); }

Status BrokerClient::Ack(const std::vector<std::uint64_t>& tags) {
  SendCommand(p::kAck, p::ArgsWriter(1).UintList("tags", tags).Finish());
  return Status::Ok();
}

Status BrokerClient::Nack(std::uint64_t tag, bool requeue) {
  SendCommand(p::kNack, p::ArgsWriter(2).Uint("tag", tag).Bool("requeue", requeue).Finish());
  return Status::Ok();
}

Status BrokerClient::Extend(std::uint64_t tag, std::chrono::milliseconds by) {
  SendCommand(p::kExtend, p::ArgsWriter(2).UintList("tags", {tag})
                              .Uint("ms", static_cast<std::uint64_t>(by.count())).Finish());
  return Status::Ok();
}

Status BrokerClient::DeclareQueue(const std::string& name, const QueueOptions& options) {
  const std::uint64_t rid = next_rid_++;
  auto ms = [](std::chrono::milliseconds value) { return static_cast<std::uint64_t>(value.count()); };
  auto reply = Call(p::kDeclareQueue,
                    p::ArgsWriter(9)
                        .Uint("rid", rid)
                        .Str("name", name)
                        .Uint("ack_timeout_ms", ms(options.ack_timeout))
                        .Uint("max_attempts", options.max_attempts)
                        .Uint("retry_delay_ms", ms(options.retry_delay))
                        .Uint("max_retry_delay_ms", ms(options.max_retry_delay))
                        .Uint("message_ttl_ms", ms(options.message_ttl))
                        .Uint("max_length", options.max_length)
                        .Uint("max_bytes", options.max_bytes)
                        .Finish(),
                    rid);
  return reply.ok() ? Status::Ok() : reply.error();
}

Status BrokerClient::DeclareExchange(const std::string& name, const std::string& type) {
  const std::uint64_t rid = next_rid_++;
  auto reply = Call(p::kDeclareExchange,
                    p::ArgsWriter(3).Uint("rid", rid).Str("name", name).Str("type", type).Finish(), rid);
  return reply.ok() ? Status::Ok() : reply.error();
}

Status BrokerClient::Bind(const std::string& exchange, const std::string& queue,
                          const std::string& pattern) {
  const std::uint64_t rid = next_rid_++;
  auto reply = Call(p::kBind,
                    p::ArgsWriter(4).Uint("rid", rid).Str("exchange", exchange).Str("queue", queue)
                        .Str("pattern", pattern).Finish(),
                    rid);
  return reply.ok() ? Status::Ok() : reply.error();
}

Result<std::vector<QueueStats>> BrokerClient::Stats(const std::string& queue) {
  const std::uint64_t rid = next_rid_++;
  p::ArgsWriter args(queue.empty() ? 1 : 2);
  args.Uint("rid", rid);
  if (!queue.empty()) args.Str("queue", queue);
  auto reply = Call(p::kStats, args.Finish(), rid);
  if (!reply.ok()) return reply.error();
  std::vector<QueueStats> stats;
  try {
    auto handle = msgpack::unpack(reply->data(), reply->size());
    auto root = handle.get().as<std::map<std::string, msgpack::object>>();
    for (const auto& entry : root.at("queues").as<std::vector<std::map<std::string, msgpack::object>>>()) {
      QueueStats queue_stats;
      if (auto name = entry.find("name"); name != entry.end()) queue_stats.name = name->second.as<std::string>();
      queue_stats.values = UintFields(entry);
      stats.push_back(std::move(queue_stats));
    }
  } catch (const std::exception& error) {
    return Status::Internal(std::string("unreadable STATS reply: ") + error.what());
  }
  return stats;
}

Result<std::map<std::string, std::uint64_t>> BrokerClient::ServerCounters() {
  const std::uint64_t rid = next_rid_++;
  // queues=false: the broker's counters only, not an entry for each of its queues.
  auto reply = Call(p::kStats, p::ArgsWriter(2).Uint("rid", rid).Bool("queues", false).Finish(), rid);
  if (!reply.ok()) return reply.error();
  try {
    auto handle = msgpack::unpack(reply->data(), reply->size());
    auto root = handle.get().as<std::map<std::string, msgpack::object>>();
    auto broker = root.find("broker");
    if (broker == root.end()) return Status::Unavailable("this broker does not report its counters");
    return UintFields(broker->second.as<std::map<std::string, msgpack::object>>());
  } catch (const std::exception& error) {
    return Status::Internal(std::string("unreadable STATS reply: ") + error.what());
  }
}

Result<std::uint64_t> BrokerClient::Purge(const std::string& queue) {
  const std::uint64_t rid = next_rid_++;
  auto reply = Call(p::kPurge, p::ArgsWriter(2).Uint("rid", rid).Str("queue", queue).Finish(), rid);
  if (!reply.ok()) return reply.error();
  auto args = p::Args::Parse(*reply);
  if (!args.ok()) return args.error();
  return args->Uint("purged", 0);
}

Result<std::vector<PeekedMessage>> BrokerClient::Peek(const std::string& queue,
                                                     std::uint64_t limit) {
  const std::uint64_t rid = next_rid_++;
  auto reply = Call(p::kPeek, p::ArgsWriter(3).Uint("rid", rid).Str("queue", queue).Uint("limit", limit).Finish(), rid);
  if (!reply.ok()) return reply.error();
  std::vector<PeekedMessage> messages;
  try {
    auto handle = msgpack::unpack(reply->data(), reply->size());
    auto root = handle.get().as<std::map<std::string, msgpack::object>>();
    for (const auto& entry : root.at("messages").as<std::vector<std::map<std::string, msgpack::object>>>()) {
      PeekedMessage message;
      message.number = entry.at("number").as<std::uint64_t>();
      message.place = entry.at("place").as<std::string>();
      message.priority = entry.at("priority").as<std::uint32_t>();
      message.attempt = entry.at("attempt").as<std::uint32_t>();
      for (const auto& [key, value] : entry.at("headers").as<std::map<std::string, std::string>>()) {
        message.headers.emplace(key, value);
      }
      const msgpack::object& body = entry.at("body");
      if (body.type == msgpack::type::BIN) message.body.assign(body.via.bin.ptr, body.via.bin.size);
      messages.push_back(std::move(message));
    }
  } catch (const std::exception& error) {
    return Status::Internal(std::string("unreadable PEEK reply: ") + error.what());
  }
  return messages;
}

Result<std::uint64_t> BrokerClient::Redrive(const std::string& queue,
                                            std::optional<std::uint64_t> limit) {
  const std::uint64_t rid = next_rid_++;
  p::ArgsWriter args(limit ? 3 : 2);
  args.Uint("rid", rid).Str("queue", queue);
  if (limit) args.Uint("limit", *limit);
  auto reply = Call(p::kRedrive, args.Finish(), rid);
  if (!reply.ok()) return reply.error();
  auto parsed = p::Args::Parse(*reply);
  if (!parsed.ok()) return parsed.error();
  return parsed->Uint("moved", 0);
}

}  // namespace zmqkit
