// The ZeroMQ Guide's peers: plain REQ clients (Lazy Pirate) on the client endpoint and Paranoid
// Pirate workers on the worker endpoint.
// BrokerCore is one class (broker_core.h); its definitions are split by responsibility.
#include "broker/core/broker_core.h"

#include "broker/core/core_internal.h"
#include "broker/core/journal_records.h"

namespace zmqkit::internal {

namespace p = protocol;
using namespace core_internal;

void BrokerCore::HandleRequest(std::string_view peer, std::span<zmq::message_t> frames,
                               TimePoint now) {
  auto reply_error = [&](const std::string& text) {
    std::vector<zmq::message_t> reply;
    reply.emplace_back();
    reply.emplace_back(text.data(), text.size());
    Send(Side::kClients, peer, std::move(reply));
  };
  if (frames.size() != 1) {
    ++counters_.malformed;
    return reply_error("zmqkit-broker: a request is one frame");
  }
  if (frames[0].size() > options_.max_message_bytes) {
    return reply_error("zmqkit-broker: request too large");
  }
  if (publish_refusal_) return reply_error("zmqkit-broker: " + *publish_refusal_);
  Refusal refusal;
  QueueSlot* slot = GetOrCreateQueue(options_.request_queue, refusal);
  if (slot == nullptr) return reply_error("zmqkit-broker: " + refusal.message);
  Envelope request = Envelope::New();
  request.body = std::move(frames[0]);
  EnqueueOptions publish;
  publish.reply_to = std::string(peer);
  std::string header;
  EncodeHeader(request, header);
  const std::string body(request.body_view());
  auto queued = slot->queue.Publish(std::move(request), publish, now);
  if (!queued.ok()) {
    ++counters_.refused;
    return reply_error("zmqkit-broker: " + queued.error().message());
  }
  Emit([&] { return records::EncodePublish({{options_.request_queue, *queued}}, header, body, unix_micros_(), 0,
                              0, publish.reply_to); });
  ++counters_.published;
  Dispatch(*slot, now);
}

void BrokerCore::OnWorkerMessage(std::string_view peer, std::span<zmq::message_t> frames,
                                 TimePoint now) {
  ++counters_.messages_in;
  input_time_ = now;
  SessionKey key{Side::kWorkers, std::string(peer)};
  if (frames.size() == 1 && frames[0].size() == 1 &&
      (frames[0].data<char>()[0] == p::kPppReady || frames[0].data<char>()[0] == p::kPppHeartbeat)) {
    const bool ready = frames[0].data<char>()[0] == p::kPppReady;
    const bool known = sessions_.contains(key);
    Session& session = Touch(key, now);
    if (known && ready) {
      // READY again from a live session: the worker restarted and lost whatever it held.
      for (std::uint64_t id : std::vector<std::uint64_t>(session.consumers.begin(), session.consumers.end())) {
        session.consumers.erase(id);
        RemoveConsumer(id, now);
      }
    }
    if (session.consumers.empty()) {
      Refusal refusal;
      QueueSlot* slot = GetOrCreateQueue(options_.request_queue, refusal);
      if (slot == nullptr) return;
      AddConsumer(key, session, "ppp", *slot, 1, slot->queue.options().ack_timeout, 1);
      Dispatch(*slot, now);
    }
    return;
  }
  if (frames.size() >= 3 && frames[1].size() == 0) {
    // [address][empty][reply...]: an answer, whether or not the job is still the worker's.
    const bool known = sessions_.contains(key);
    auto tag = ParseTagAddress(frames[0]);
    Delivery* delivery = known && tag ? OwnDelivery(key, *tag) : nullptr;
    if (!delivery) {
      // Its job was taken back (a timeout, or the worker fell silent and was dropped) and is
      // someone else's now: the reply is late, not malformed.
      ++counters_.late_replies;
      Log("a late reply from a worker: its job was taken back (" +
          std::string(known ? "the lease ran out" : "the worker had been dropped for silence") + ")");
      return;
    }
    Touch(key, now);
    std::string reply_to = std::move(delivery->reply_to);
    QueueSlot* slot = delivery->slot;
    if (auto number = slot->queue.Ack(*tag)) Emit([&] { return records::EncodeAck(slot->queue.name(), *number); });
    ForgetDelivery(*tag);
    if (!reply_to.empty()) {
      std::vector<zmq::message_t> reply;
      reply.emplace_back();
      for (std::size_t i = 2; i < frames.size(); ++i) reply.push_back(std::move(frames[i]));
      Send(Side::kClients, reply_to, std::move(reply));
    }
    Dispatch(*slot, now);
    return;
  }
  ++counters_.malformed;
  Log("malformed message from a worker (" + std::to_string(frames.size()) + " frames)");
}

}  // namespace zmqkit::internal
