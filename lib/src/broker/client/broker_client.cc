#include "zmqkit/broker_client.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <system_error>

#include "broker/protocol.h"
#include "util/deadline.h"
#include "codec/frames.h"

namespace zmqkit {
namespace {

namespace p = internal::protocol;

std::string_view View(const zmq::message_t& frame) { return {frame.data<char>(), frame.size()}; }

using Clock = std::chrono::steady_clock;

}  // namespace

// The connection to the broker, shared by the owner's thread and the keeper thread.
//
// The owner sends and receives on the socket itself, so a publish or a delivery costs no hop
// through another thread (an inproc pipe to a background "actor" used to cost two wake-ups per
// message, and halved the broker's end-to-end rate). The keeper only wakes once per heartbeat
// interval: it sends HEARTBEAT and, with auto_extend, EXTEND for every delivery the owner holds, so
// a handler that runs long is not taken for a dead one.
//
// libzmq allows a socket to be used from several threads if every hand-over is a full memory
// barrier; `mutex` is that barrier. The owner never blocks while holding it except in a send the
// broker is not taking (bounded by the send timeout, one heartbeat interval). It waits for input
// with poll(2) on ZMQ_FD, outside the lock. ZMQ_FD is edge-triggered: it signals when the socket's
// state may have changed since a zmq call last looked, and any zmq call, from either thread, may
// consume that signal. So after the keeper has used the socket it also writes `wake_fd`, and the
// owner looks again.
struct BrokerClient::Connection {
  Connection(zmq::context_t& context, const SocketOptions& options)
      : socket(OpenSocket(context, zmq::socket_type::dealer, options)),
        socket_fd(socket.get(zmq::sockopt::fd)),
        wake_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (wake_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  ~Connection() { ::close(wake_fd); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // False if the broker did not take the message's first frame within the send timeout; nothing
  // was sent then. `publish_seq`: the message is that PUBLISH.
  bool Send(std::span<zmq::message_t> frames, std::uint64_t publish_seq = 0) {
    std::lock_guard lock(mutex);
    if (!internal::SendAll(socket, frames)) return false;
    if (publish_seq != 0) published = publish_seq;
    return true;
  }

  // Reads one whole message into `frames` if one is waiting; returns its frame count or 0.
  std::size_t TryReceive(std::vector<zmq::message_t>& frames) {
    std::lock_guard lock(mutex);
    return internal::RecvAll(socket, frames, zmq::recv_flags::dontwait);
  }

  // Blocks until the socket may have input or `timeout` passes (negative: no limit).
  void WaitForInput(std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{socket_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int wait = timeout.count() < 0 ? -1
                     : static_cast<int>(std::min<std::int64_t>(timeout.count(), 1 << 30));
    if (::poll(fds, 2, wait) > 0 && (fds[1].revents & POLLIN)) {
      std::uint64_t count;
      [[maybe_unused]] auto ignored = ::read(wake_fd, &count, sizeof count);
    }
  }

  void Hold(std::span<const std::uint64_t> tags) {
    const auto now = Clock::now();
    std::lock_guard lock(mutex);
    for (auto tag : tags) held.emplace(tag, now);
  }
  void Release(std::span<const std::uint64_t> tags) {
    std::lock_guard lock(mutex);
    for (auto tag : tags) held.erase(tag);
  }
  void ReleaseAll() {
    std::lock_guard lock(mutex);
    held.clear();
  }

  std::mutex mutex;
  zmq::socket_t socket;  // DEALER to the broker
  int socket_fd;
  int wake_fd;  // eventfd: "the keeper used the socket; look again"
  std::map<std::uint64_t, Clock::time_point> held;  // delivery tag -> when it arrived
  // The last publish seq handed to the socket. Heartbeats carry it, so a broker whose session got
  // none of them — they were written into a connection that died — can report them lost.
  std::uint64_t published = 0;
  // The broker instance the held tags came from (its greeting), for the keeper's EXTENDs.
  std::string instance;
  std::condition_variable keeper_cv;
  bool stopping = false;
};

void BrokerClient::RunKeeper(Connection& connection, const BrokerClientOptions& options) {
  // Deadlines are pushed to 3 intervals ahead, every interval: a live client never loses a delivery
  // it holds (up to max_lease), a dead one loses it within the broker's liveness window anyway.
  const auto extend_by = options.heartbeat_interval * 3;
  std::unique_lock lock(connection.mutex);
  for (;;) {
    const auto next = Clock::now() + options.heartbeat_interval;
    if (connection.keeper_cv.wait_until(lock, next, [&] { return connection.stopping; })) return;
    try {
      // dontwait: if the broker is not reading, a heartbeat queued behind the rest tells it nothing.
      auto heartbeat = p::Frames(p::kHeartbeat,
                                 connection.published == 0
                                     ? p::NoArgs()
                                     : p::ArgsWriter(1).Uint("published", connection.published).Finish());
      internal::SendAll(connection.socket, heartbeat, zmq::send_flags::dontwait);
      if (options.auto_extend) {
        const auto now = Clock::now();
        std::vector<std::uint64_t> tags;
        for (const auto& [tag, since] : connection.held) {
          if (now - since < options.max_lease) tags.push_back(tag);
        }
        if (!tags.empty()) {
          // Naming the instance the tags came from: a broker that restarted since ignores them.
          auto extend = p::Frames(p::kExtend,
                                  p::ArgsWriter(3)
                                      .UintList("tags", tags)
                                      .Uint("ms", static_cast<std::uint64_t>(extend_by.count()))
                                      .Str("instance", connection.instance)
                                      .Finish());
          internal::SendAll(connection.socket, extend, zmq::send_flags::dontwait);
        }
      }
    } catch (const zmq::error_t& error) {
      if (error.num() != EINTR) return;  // ETERM: the context is going away
    }
    std::uint64_t one = 1;
    [[maybe_unused]] auto ignored = ::write(connection.wake_fd, &one, sizeof one);
  }
}

namespace {

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
    : options_(std::move(options)),
      connection_(std::make_unique<Connection>(context, options_.socket)) {
  if (options_.producer_id.empty()) {
    // 60 random bits in 12 characters: short, because every PUBLISH carries it.
    std::random_device device;
    std::uint64_t bits = (std::uint64_t{device()} << 32) ^ device();
    constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuv";
    for (int i = 0; i < 12; ++i, bits >>= 5) options_.producer_id.push_back(kDigits[bits & 31]);
  }
  // A broker that is away for long fills the connection's queue; then a send gives up after one
  // heartbeat interval and the call reports it, instead of blocking its caller indefinitely.
  connection_->socket.set(zmq::sockopt::sndtimeo,
                          static_cast<int>(options_.heartbeat_interval.count()));
  AttachSocket(connection_->socket, broker);  // throws here, on the caller's thread, if refused
  keeper_ = std::thread(RunKeeper, std::ref(*connection_), std::cref(options_));
}

BrokerClient::~BrokerClient() {
  {
    std::lock_guard lock(connection_->mutex);
    connection_->stopping = true;
  }
  connection_->keeper_cv.notify_one();
  keeper_.join();
  try {
    // The broker takes back unacked deliveries at once instead of after its liveness limit.
    auto bye = p::Frames(p::kBye, p::NoArgs());
    internal::SendAll(connection_->socket, bye, zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // The context is terminating: there is no one left to tell.
  }
}

Status BrokerClient::SendCommand(std::string_view command, zmq::message_t args,
                                 std::vector<zmq::message_t> payload, std::uint64_t publish_seq) {
  auto frames = p::Frames(command, std::move(args), std::move(payload));
  if (connection_->Send(frames, publish_seq)) return Status::Ok();
  std::string message = "the broker is not taking messages; ";
  message.append(command).append(" was not sent within ");
  message.append(std::to_string(options_.heartbeat_interval.count())).append(" ms");
  return Status::Unavailable(std::move(message));
}

zmq::message_t BrokerClient::PublishArgs(std::uint64_t seq, std::size_t count,
                                         const PublishOptions& options, std::uint64_t pseq) const {
  const bool delay = options.delay.count() > 0;
  const bool ttl = options.ttl.count() > 0;
  // pseq defaults to seq; a publish sent again under a new seq keeps its first one.
  const bool own_pseq = pseq != 0 && pseq != seq;
  p::ArgsWriter args(4 + (count > 1) + delay + ttl + own_pseq);
  args.Uint("seq", seq).Str("exchange", options.exchange).Str("key", options.key);
  args.Str("producer", options_.producer_id);
  if (own_pseq) args.Uint("pseq", pseq);
  if (count > 1) args.Uint("count", count);
  if (delay) args.Uint("delay_ms", static_cast<std::uint64_t>(options.delay.count()));
  if (ttl) args.Uint("ttl_ms", static_cast<std::uint64_t>(options.ttl.count()));
  return args.Finish();
}

Result<std::uint64_t> BrokerClient::Publish(Envelope envelope, const PublishOptions& options) {
  auto sent = PublishBatch(std::span(&envelope, 1), options);
  if (!sent.ok()) return sent.error();
  return last_sent_seq_;
}

Result<std::size_t> BrokerClient::PublishBatch(std::span<Envelope> envelopes,
                                               const PublishOptions& options) {
  // Until the broker's greeting has said how many one PUBLISH may carry and whether it reads them
  // packed, each goes alone as [header][body]; the greeting answers the first message of a
  // connection, so it is usually here after one. Looked for only until it is heard.
  if (max_publish_batch_ == 0) {
    while (max_publish_batch_ == 0 && ReadOne(std::chrono::milliseconds(0))) {
    }
  }
  // Confirms are read as they come, not only by WaitForConfirms: each publish is kept until its
  // confirm is read, so memory follows what is in flight rather than what was ever sent.
  if (published_since_read_ >= kPublishesBetweenReads) {
    published_since_read_ = 0;
    for (int i = 0; i < 64 && ReadOne(std::chrono::milliseconds(0)); ++i) {
    }
  }
  published_since_read_ += envelopes.size();
  std::size_t per_message = std::max<std::uint64_t>(max_publish_batch_, 1);
  if (options_.max_unconfirmed > 0) per_message = std::min(per_message, options_.max_unconfirmed);
  std::size_t sent = 0;
  std::vector<zmq::message_t> payload;
  // Kept with each publish until it is settled, to send it again if its outcome becomes unknown;
  // one copy shared by every publish with the same options.
  if (!last_options_ || last_options_->exchange != options.exchange ||
      last_options_->key != options.key || last_options_->delay != options.delay ||
      last_options_->ttl != options.ttl) {
    last_options_ = std::make_shared<const PublishOptions>(options);
  }
  while (sent < envelopes.size()) {
    const std::size_t count = std::min(per_message, envelopes.size() - sent);
    if (Status room = AwaitPublishRoom(count); !room.ok()) {
      if (sent == 0) return room;
      return sent;
    }
    const std::uint64_t first_seq = last_sent_seq_ + 1;
    const std::span<Envelope> chunk = envelopes.subspan(sent, count);
    // One PUBLISH is all packed or all [header][body]: the broker tells the forms apart by the
    // number of frames. Packing saves each small message a frame, which both sides' libzmq
    // would otherwise move on its own.
    const bool packed =
        packed_publish_ && std::ranges::all_of(chunk, [](const Envelope& envelope) {
          return envelope.body.size() <= internal::kPackedBodyLimit;
        });
    payload.clear();
    payload.reserve(packed ? count : 2 * count);
    for (Envelope& envelope : chunk) {
      if (packed) {
        payload.push_back(EncodePacked(envelope, scratch_));
        continue;
      }
      scratch_.clear();
      EncodeHeader(envelope, scratch_);
      payload.emplace_back(scratch_.data(), scratch_.size());
      // Shares the body (a reference count); the caller's envelope keeps it if this is not sent.
      payload.emplace_back().copy(envelope.body);
    }
    // Kept until settled, to be sent again if need be. The frames are shared with what is sent
    // (a reference count, not a copy, for all but the smallest), so keeping them costs little.
    for (std::size_t i = 0; i < count; ++i) {
      PendingPublish& entry = PushPending();
      entry.first_seq = entry.pseq = first_seq + i;
      entry.options = last_options_;
      entry.packed = packed;
      if (packed) {
        entry.header.copy(payload[i]);
      } else {
        entry.header.copy(payload[2 * i]);
        entry.body.copy(payload[2 * i + 1]);
      }
    }
    Status status = SendCommand(p::kPublish, PublishArgs(first_seq, count, options),
                                std::move(payload), first_seq + count - 1);
    if (!status.ok()) {
      // Nothing of this message was sent: its seqs stay free, and nothing is kept for them.
      for (std::size_t i = 0; i < count; ++i) ReleasePending(PendingAt(--pending_count_));
      if (pending_count_ == 0) pending_front_seq_ = last_sent_seq_ + 1;
      if (sent == 0) return status;
      return sent;
    }
    last_sent_seq_ = first_seq + count - 1;
    sent += count;
  }
  return sent;
}

Status BrokerClient::AwaitPublishRoom(std::size_t count) {
  const std::size_t limit = options_.max_unconfirmed;
  if (limit == 0 || pending_count_ + count <= limit) return Status::Ok();
  internal::Deadline deadline(options_.request_timeout);
  while (pending_count_ + count > limit) {
    if (!ReadOne(deadline.remaining()) || deadline.expired()) {
      if (pending_count_ + count <= limit) break;
      return Status::Unavailable(
          std::to_string(pending_count_) + " publishes (max_unconfirmed) await their confirms, "
          "and the broker settled none of them within " +
          std::to_string(options_.request_timeout.count()) + " ms; nothing more was sent");
    }
  }
  published_since_read_ = 0;
  return Status::Ok();
}

Result<std::uint64_t> BrokerClient::Publish(const std::string& queue, std::string_view body) {
  PublishOptions options;
  options.key = queue;
  return Publish(Envelope::New(body), options);
}

namespace {

// Never fail on a bad value: a wrong type reads as the default.
std::uint64_t UintOr0(const p::Args& args, std::string_view key) {
  auto value = args.Uint(key, 0);
  return value.ok() ? *value : 0;
}
std::string StrOrEmpty(const p::Args& args, std::string_view key) {
  auto value = args.Str(key, "");
  return value.ok() ? *value : std::string();
}

}  // namespace

bool BrokerClient::ReadOne(std::chrono::milliseconds timeout) {
  std::vector<zmq::message_t>& frames = frames_;
  internal::Deadline deadline(timeout);
  std::size_t count = 0;
  // Tries at least once, even with a zero timeout, so what has already arrived is taken.
  while ((count = connection_->TryReceive(frames)) == 0) {
    const auto remaining = deadline.remaining();
    if (remaining == std::chrono::milliseconds(0)) return false;
    connection_->WaitForInput(remaining);
  }
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
  if (command == p::kConfirm) {
    OnConfirm(*args);
  } else if (command == p::kRejected) {
    const std::uint64_t seq = UintOr0(*args, "seq");
    const PendingPublish* pending = FindPending(seq);
    Rejection rejection{pending ? pending->first_seq : seq, StrOrEmpty(*args, "code"),
                        StrOrEmpty(*args, "message")};
    if (seq > last_settled_seq_) settled_ahead_.insert(seq);
    rejections_.push_back(std::move(rejection));
    AdvanceSettled();
  } else if (command == p::kDeliver) {
    OnDeliver(*args, std::span(frames.data() + 3, count - 3));
  } else if (command == p::kOk) {
    replies_.insert_or_assign(UintOr0(*args, "rid"), Result<std::string>(frames[2].to_string()));
  } else if (command == p::kHeartbeat) {
    OnHeartbeat(*args);
  } else if (command == p::kError) {
    OnError(*args);
  }
  return true;
}

void BrokerClient::AdvanceSettled() {
  while (settled_ahead_.contains(last_settled_seq_ + 1)) {
    settled_ahead_.erase(++last_settled_seq_);
  }
  DropSettledPending();
}

void BrokerClient::OnConfirm(const p::Args& args) {
  // Publishes before "from" never reached the session that confirms: the connection or the
  // broker they went to is gone, and whether it stored them is unknown (a broker may journal a
  // publish and die before its confirm leaves). Never counted as confirmed: sent again to a
  // broker that recognises a second copy, else reported.
  const std::uint64_t from = std::max<std::uint64_t>(UintOr0(args, "from"), 1);
  std::vector<std::uint64_t> unknown;
  for (std::uint64_t seq = last_settled_seq_ + 1; seq < from; ++seq) {
    if (!settled_ahead_.insert(seq).second) continue;  // rejected, or sent again, before
    if (options_.republish_unknown && broker_idempotent_ && FindPending(seq) != nullptr) {
      unknown.push_back(seq);
      continue;
    }
    const PendingPublish* pending = FindPending(seq);
    rejections_.push_back({pending ? pending->first_seq : seq, "outcome-unknown",
                           "sent, but the connection or the broker went away before its "
                           "confirm: it may or may not have been stored"});
  }
  last_settled_seq_ = std::max(last_settled_seq_, UintOr0(args, "upto"));
  confirm_level_ = StrOrEmpty(args, "level") == "on-disk" ? ConfirmLevel::kOnDisk : ConfirmLevel::kQueued;
  // Before the entries are dropped: sending again needs them.
  if (!unknown.empty()) Republish(unknown);
  AdvanceSettled();
}

void BrokerClient::OnDeliver(const p::Args& args, std::span<zmq::message_t> payload) {
  // One delivery ("tag", [header][body]) or, to a consumer that asked for batches, several
  // ("tags", then [header][body] for each in that order).
  std::vector<std::uint64_t> tags;
  if (args.Has("tags")) {
    auto list = args.UintList("tags");
    if (!list.ok()) {
      errors_.push_back("malformed delivery: " + list.error().message());
      return;
    }
    tags = std::move(*list);
  } else {
    tags.push_back(UintOr0(args, "tag"));
  }
  if (payload.size() != 2 * tags.size()) {
    errors_.push_back("malformed delivery: " + std::to_string(tags.size()) + " tags but " +
                      std::to_string(payload.size()) + " payload frames");
    return;
  }
  const std::string consumer = StrOrEmpty(args, "consumer");
  const std::string queue = StrOrEmpty(args, "queue");
  std::size_t taken = 0;  // tags[0, taken): the decodable ones, which this client now holds
  for (std::size_t i = 0; i < tags.size(); ++i) {
    auto decoded = DecodeFrames(payload.subspan(2 * i, 2), options_.limits);
    if (!decoded.ok()) {
      // Not held, so not extended: the broker takes it back when its lease runs out.
      errors_.push_back("undecodable delivery: " + decoded.error().ToString());
      continue;
    }
    tags[taken++] = tags[i];
    // With auto_extend the keeper's held map already tracks them (Connection::Hold).
    if (!options_.auto_extend) unsettled_.insert(tags[i]);
    deliveries_.push_back(Delivery{tags[i], consumer, queue, std::move(decoded).value()});
  }
  if (options_.auto_extend) connection_->Hold(std::span(tags.data(), taken));
}

void BrokerClient::OnHeartbeat(const p::Args& args) {
  // Absent from a broker that takes one message per PUBLISH only.
  max_publish_batch_ = std::max<std::uint64_t>(UintOr0(args, "max_publish_batch"), 1);
  auto packed_publish = args.Bool("packed_publish", false);
  packed_publish_ = packed_publish.ok() && *packed_publish;
  auto idempotent = args.Bool("idempotent", false);
  broker_idempotent_ = idempotent.ok() && *idempotent;
  // A different instance is a restarted broker: it has forgotten this client's consumers and
  // deliveries.
  std::string instance = StrOrEmpty(args, "instance");
  if (instance.empty() || instance == broker_instance_) return;
  const bool restarted = !broker_instance_.empty();
  broker_instance_ = std::move(instance);
  {
    std::lock_guard lock(connection_->mutex);
    connection_->instance = broker_instance_;
  }
  if (!restarted) return;
  VoidDeliveries();
  Resubscribe();
  errors_.push_back(
      "broker-restarted: the broker restarted; deliveries held from before are void (the broker "
      "gives the messages again; Ack refuses their tags) and consumers were started again");
}

void BrokerClient::OnError(const p::Args& args) {
  const std::string code = StrOrEmpty(args, "code");
  if (code == p::kErrSessionExpired) {
    // The broker took back everything this client held: nothing left to extend or ack.
    VoidDeliveries();
    Resubscribe();
  }
  std::string text = code + ": " + StrOrEmpty(args, "message");
  if (const std::uint64_t rid = UintOr0(args, "rid"); rid != 0) {
    Status error = code == p::kErrForbidden ? Status::PermissionDenied(std::move(text))
                                            : Status::FailedPrecondition(std::move(text));
    replies_.insert_or_assign(rid, Result<std::string>(std::move(error)));
  } else {
    errors_.push_back(std::move(text));
  }
}

BrokerClient::PendingPublish* BrokerClient::FindPending(std::uint64_t seq) {
  if (seq < pending_front_seq_ || seq - pending_front_seq_ >= pending_count_) return nullptr;
  return &PendingAt(seq - pending_front_seq_);
}

BrokerClient::PendingPublish& BrokerClient::PendingAt(std::size_t index) {
  return pending_[(pending_head_ + index) & (pending_.size() - 1)];
}

BrokerClient::PendingPublish& BrokerClient::PushPending() {
  if (pending_count_ == pending_.size()) {
    // Full: twice the room, in order from index 0. Rare: max_unconfirmed bounds the count.
    std::vector<PendingPublish> larger(std::max<std::size_t>(64, 2 * pending_.size()));
    for (std::size_t i = 0; i < pending_count_; ++i) larger[i] = std::move(PendingAt(i));
    pending_ = std::move(larger);
    pending_head_ = 0;
  }
  return PendingAt(pending_count_++);
}

void BrokerClient::ReleasePending(PendingPublish& entry) {
  // Its frames go now (a settled 1 MiB body is not kept until its slot is used again); the slot
  // itself stays, so a queue at its usual size allocates nothing.
  entry.options.reset();
  entry.header.rebuild();
  if (!entry.packed) entry.body.rebuild();
}

void BrokerClient::DropSettledPending() {
  while (pending_count_ > 0 && pending_front_seq_ <= last_settled_seq_) {
    PendingPublish& settled = PendingAt(0);
    if (settled.first_seq != pending_front_seq_) {
      copies_outstanding_.erase(copies_outstanding_.find(settled.first_seq));
    }
    ReleasePending(settled);
    pending_head_ = (pending_head_ + 1) & (pending_.size() - 1);
    --pending_count_;
    ++pending_front_seq_;
  }
  if (pending_count_ == 0) pending_front_seq_ = last_sent_seq_ + 1;
}

void BrokerClient::Republish(const std::vector<std::uint64_t>& seqs) {
  for (std::uint64_t old_seq : seqs) {
    PendingPublish* pending = FindPending(old_seq);
    if (pending == nullptr) continue;
    // The seqs before it are pending too (one entry per seq): this one's index is the next.
    PendingPublish again;
    again.first_seq = pending->first_seq;
    again.pseq = pending->pseq;
    again.options = pending->options;
    again.packed = pending->packed;
    again.header.copy(pending->header);
    if (!pending->packed) again.body.copy(pending->body);
    std::vector<zmq::message_t> payload;
    payload.emplace_back().copy(again.header);
    if (!again.packed) payload.emplace_back().copy(again.body);
    const std::uint64_t seq = last_sent_seq_ + 1;
    Status sent = SendCommand(p::kPublish, PublishArgs(seq, 1, *again.options, again.pseq),
                              std::move(payload), seq);
    if (!sent.ok()) {
      rejections_.push_back({again.first_seq, "outcome-unknown",
                             "its connection or broker went away before its confirm, and sending "
                             "it again failed: " + sent.message()});
      continue;
    }
    last_sent_seq_ = seq;
    ++republished_;
    copies_outstanding_.insert(again.first_seq);
    PushPending() = std::move(again);  // `pending` may move with this
  }
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
  if (Status sent = SendCommand(command, std::move(args)); !sent.ok()) return sent;
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
  p::ArgsWriter args(ack_timeout ? 6 : 5);
  args.Uint("rid", rid).Str("queue", queue).Str("consumer", name).Uint("prefetch", prefetch)
      .Uint("batch", DeliveryBatch(prefetch));
  if (ack_timeout) args.Uint("ack_timeout_ms", static_cast<std::uint64_t>(ack_timeout->count()));
  auto reply = Call(p::kConsume, args.Finish(), rid);
  if (!reply.ok()) return reply.error();
  consumers_[name] = ConsumerSpec{queue, prefetch, ack_timeout};
  return Status::Ok();
}

std::uint32_t BrokerClient::DeliveryBatch(std::uint32_t prefetch) const {
  return std::max<std::uint32_t>(1, std::min(prefetch, options_.delivery_batch));
}

void BrokerClient::Resubscribe() {
  // Fire and forget: answers (rid 0) are not waited for; a failure shows up in TakeErrors().
  for (const auto& [name, spec] : consumers_) {
    p::ArgsWriter args(spec.ack_timeout ? 5 : 4);
    args.Str("queue", spec.queue).Str("consumer", name).Uint("prefetch", spec.prefetch)
        .Uint("batch", DeliveryBatch(spec.prefetch));
    if (spec.ack_timeout) args.Uint("ack_timeout_ms", static_cast<std::uint64_t>(spec.ack_timeout->count()));
    if (Status sent = SendCommand(p::kConsume, args.Finish()); !sent.ok()) {
      errors_.push_back("consumer " + name + " could not be started again: " + sent.message());
    }
  }
}

Status BrokerClient::Cancel(const std::string& consumer) {
  consumers_.erase(consumer);
  const std::uint64_t rid = next_rid_++;
  auto reply = Call(p::kCancel, p::ArgsWriter(2).Uint("rid", rid).Str("consumer", consumer).Finish(), rid);
  return reply.ok() ? Status::Ok() : reply.error();
}

Result<Delivery> BrokerClient::Receive(std::chrono::milliseconds timeout) {
  // Deliveries already here are handed out without reading the socket, which a slow handler of a
  // large prefetch would then not read for long. Looking now and then (at most once a millisecond)
  // notices a restarted broker's greeting, which voids them. One clock read per delivery: the
  // deadline is only needed, and only read, when there is nothing to hand out.
  if (!deliveries_.empty()) {
    const auto now = Clock::now();
    if (now - last_look_ >= std::chrono::milliseconds(1)) {
      last_look_ = now;
      for (int i = 0; i < 64 && ReadOne(std::chrono::milliseconds(0)); ++i) {
      }
    }
  }
  std::optional<internal::Deadline> deadline;
  if (deliveries_.empty()) deadline.emplace(timeout);
  // Reads at least once, even with a zero timeout: Receive(0ms) takes a delivery that has arrived.
  while (deliveries_.empty()) {
    const bool read = ReadOne(deadline->remaining());
    if (!deliveries_.empty()) break;
    if (!read || deadline->expired()) {
      return Status::DeadlineExceeded("no delivery within " + std::to_string(timeout.count()) + " ms");
    }
  }
  Delivery delivery = std::move(deliveries_.front());
  deliveries_.pop_front();
  return delivery;
}

void BrokerClient::VoidDeliveries() {
  // Every tag given and not settled: the keeper's held map has them, with auto_extend.
  if (options_.auto_extend) {
    std::lock_guard lock(connection_->mutex);
    for (const auto& [tag, since] : connection_->held) unsettled_.insert(tag);
  }
  connection_->ReleaseAll();
  // Prefetched and never handed out: the broker gives them again, to this client or another.
  for (const Delivery& delivery : deliveries_) unsettled_.erase(delivery.tag);
  deliveries_.clear();
  // Handed out: the handler may still settle them; those tags must not reach the new broker.
  void_tags_.merge(unsettled_);
  unsettled_.clear();
}

Status BrokerClient::DropVoidTags(std::vector<std::uint64_t>& tags) {
  const std::size_t voided =
      std::erase_if(tags, [this](std::uint64_t tag) { return void_tags_.erase(tag) > 0; });
  if (voided == 0) return Status::Ok();
  return Status::FailedPrecondition(
      "broker-restarted: " + std::to_string(voided) +
      " delivery tag(s) are from before the broker restarted or expired this client's session; "
      "it took those deliveries back and gives the messages again, so they were not settled");
}

void BrokerClient::ForgetSettled(std::span<const std::uint64_t> tags) {
  if (options_.auto_extend) {
    connection_->Release(tags);
  } else {
    for (std::uint64_t tag : tags) unsettled_.erase(tag);
  }
}

Status BrokerClient::Ack(std::uint64_t tag) { return Ack(std::vector<std::uint64_t>{tag}); }

Status BrokerClient::Ack(const std::vector<std::uint64_t>& tags) {
  // A copy only when some tag may be void (after a restart): acks are on every consumer's path.
  Status kept = Status::Ok();
  std::vector<std::uint64_t> filtered;
  const bool filtering = !void_tags_.empty();
  if (filtering) {
    filtered = tags;
    kept = DropVoidTags(filtered);
  }
  const std::vector<std::uint64_t>& settle = filtering ? filtered : tags;
  ForgetSettled(settle);
  if (!settle.empty()) {
    if (Status sent = SendCommand(p::kAck, p::ArgsWriter(1).UintList("tags", settle).Finish());
        !sent.ok()) {
      return sent;
    }
  }
  return kept;
}

Status BrokerClient::Nack(std::uint64_t tag, bool requeue) {
  if (void_tags_.contains(tag)) {
    std::vector<std::uint64_t> one{tag};
    return DropVoidTags(one);
  }
  ForgetSettled(std::span(&tag, 1));
  return SendCommand(p::kNack, p::ArgsWriter(2).Uint("tag", tag).Bool("requeue", requeue).Finish());
}

Status BrokerClient::Extend(std::uint64_t tag, std::chrono::milliseconds by) {
  if (void_tags_.contains(tag)) {
    return Status::FailedPrecondition("broker-restarted: delivery tag " + std::to_string(tag) +
                                      " is from before the broker restarted; it cannot be extended");
  }
  return SendCommand(p::kExtend, p::ArgsWriter(2).UintList("tags", {tag})
                                     .Uint("ms", static_cast<std::uint64_t>(by.count())).Finish());
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
