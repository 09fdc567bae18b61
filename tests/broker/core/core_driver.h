// Test support for BrokerCore: build native, PPP and REQ frames, advance a manual clock, decode the
// outbox. Shared by the core's rule tests and its journal replay tests.
#ifndef ZMQKIT_TESTS_BROKER_CORE_DRIVER_H_
#define ZMQKIT_TESTS_BROKER_CORE_DRIVER_H_

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "broker/core/broker_core.h"

namespace zmqkit::internal {

namespace p = protocol;

// One message out of the core, decoded for assertions.
struct Out {
  Side side;
  std::string peer;
  std::string command;  // native: the command; PPP/REQ: empty
  std::optional<p::Args> args;
  std::string raw_args;
  std::vector<std::string> frames;  // native: payload frames; PPP/REQ: all frames
};

// The journal a core writes to, kept in memory: what replay tests hand to a fresh core.
class RecordingJournal : public JournalSink {
 public:
  void Append(std::string record) override { records.push_back(std::move(record)); }
  std::vector<std::string> records;
};

// Drives a BrokerCore the way the socket loop does, with a manual clock, and decodes what it sends.
class CoreDriver {
 public:
  CoreDriver() {
    options_.queue_defaults.ack_timeout = std::chrono::seconds(10);
    options_.queue_defaults.retry_delay = std::chrono::milliseconds(0);
    options_.heartbeat_interval = std::chrono::seconds(1);
    options_.liveness = 3;
  }
  // Created on first use, so a test can change options_ first.
  BrokerCore& core() {
    if (!core_) core_.emplace(options_, environment_);
    return *core_;
  }

  void Client(const std::string& peer, std::string_view command, zmq::message_t args,
              std::vector<zmq::message_t> payload = {}) {
    auto frames = p::Frames(command, std::move(args), std::move(payload));
    core().OnClientMessage(peer, frames, clock_.Now());
  }
  void Publish(const std::string& peer, std::uint64_t seq, const std::string& key,
               std::string_view body, const std::string& exchange = "", std::uint8_t priority = 0) {
    Envelope envelope = Envelope::New(body);
    envelope.priority = priority;
    std::string header;
    EncodeHeader(envelope, header);
    std::vector<zmq::message_t> payload;
    payload.emplace_back(header.data(), header.size());
    payload.emplace_back(body.data(), body.size());
    Client(peer, p::kPublish,
           p::ArgsWriter(3).Uint("seq", seq).Str("exchange", exchange).Str("key", key).Finish(),
           std::move(payload));
  }
  void Consume(const std::string& peer, const std::string& queue, std::uint32_t prefetch,
               const std::string& name = "c") {
    Client(peer, p::kConsume,
           p::ArgsWriter(4).Uint("rid", 1).Str("queue", queue).Str("consumer", name)
               .Uint("prefetch", prefetch).Finish());
  }
  void Ack(const std::string& peer, std::uint64_t tag) {
    Client(peer, p::kAck, p::ArgsWriter(1).UintList("tags", {tag}).Finish());
  }
  void Nack(const std::string& peer, std::uint64_t tag, bool requeue) {
    Client(peer, p::kNack, p::ArgsWriter(2).Uint("tag", tag).Bool("requeue", requeue).Finish());
  }
  void Worker(const std::string& peer, std::vector<std::string> frames) {
    std::vector<zmq::message_t> messages;
    for (auto& frame : frames) messages.emplace_back(frame.data(), frame.size());
    core().OnWorkerMessage(peer, messages, clock_.Now());
  }
  void Advance(std::chrono::milliseconds by) {
    clock_.Advance(by);
    core().Tick(clock_.Now());
  }

  // Everything sent since the last call (after a Flush), decoded.
  std::vector<Out> Take() {
    core().Flush();
    std::vector<Out> result;
    for (Outgoing& out : core().outbox()) {
      Out decoded{out.side, out.peer, "", std::nullopt, "", {}};
      std::vector<std::string> frames;
      for (auto& frame : out.frames) frames.push_back(frame.to_string());
      if (!frames.empty() && frames[0] == p::kSignature && frames.size() >= 3) {
        decoded.command = frames[1];
        auto args = p::Args::Parse(frames[2]);
        EXPECT_TRUE(args.ok());
        if (args.ok()) decoded.args = std::move(*args);
        decoded.raw_args = frames[2];
        decoded.frames.assign(frames.begin() + 3, frames.end());
      } else {
        decoded.frames = std::move(frames);
      }
      result.push_back(std::move(decoded));
    }
    core().outbox().clear();
    return result;
  }
  // Only the messages with `command` (native) sent to `peer`.
  std::vector<Out> Of(const std::vector<Out>& all, const std::string& peer, std::string_view command) {
    std::vector<Out> selected;
    for (const Out& out : all) {
      if (out.peer == peer && out.command == command) selected.push_back(out);
    }
    return selected;
  }
  static std::uint64_t Tag(const Out& deliver) { return *deliver.args->Uint("tag"); }
  static std::string Body(const Out& deliver) { return deliver.frames.at(1); }
  // The delivered [header][body] (the first of a DELIVER), decoded as a consumer would.
  static Result<Envelope, DecodeError> Decoded(const Out& deliver) {
    zmq::message_t frames[] = {zmq::message_t(deliver.frames.at(0)), zmq::message_t(deliver.frames.at(1))};
    return DecodeFrames(frames, {});
  }
  static std::string Header(const Out& deliver, const std::string& key) {
    auto envelope = Decoded(deliver);
    EXPECT_TRUE(envelope.ok());
    if (!envelope.ok()) return "";
    auto it = envelope->headers.find(key);
    return it == envelope->headers.end() ? "" : it->second;
  }

  CoreOptions options_;
  CoreEnvironment environment_;  // the machine's wall clock and random ids unless a test sets them
  std::optional<BrokerCore> core_;
  ManualClock clock_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_TESTS_BROKER_CORE_DRIVER_H_
