// Fuzz target: the broker's command decoder and everything behind it — whole multipart messages
// from several clients and Paranoid Pirate workers into one BrokerCore, with time passing between
// them. Nothing a peer sends may crash the core or make it throw. And the journal it writes while
// doing so must replay into a fresh core without a single refusal: what the live broker recorded
// is exactly what recovery will read after a crash.
//
// Input: a sequence of [tag][frames...] (fuzz_input.h). Tag bits: 0-1 which peer (4 per side),
// 2 side (clients/workers), 3-5 milliseconds to advance first (x 50).
#include <cstdlib>
#include <string>
#include <vector>

#include "broker/core/broker_core.h"
#include "fuzz/fuzz_input.h"

namespace {

class RecordingJournal final : public zmqkit::internal::JournalSink {
 public:
  void Append(std::string record) override { records.push_back(std::move(record)); }
  std::vector<std::string> records;
};

zmqkit::internal::CoreOptions Options() {
  zmqkit::internal::CoreOptions options;
  options.heartbeat_interval = std::chrono::milliseconds(100);
  options.queue_defaults.ack_timeout = std::chrono::milliseconds(200);
  options.queue_defaults.retry_delay = std::chrono::milliseconds(0);
  options.queue_defaults.max_attempts = 3;
  options.max_queues = 16;
  options.max_message_bytes = 4096;
  return options;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  zmqkit::fuzz::FuzzReader input(data, size);
  const zmqkit::internal::CoreOptions options = Options();
  std::int64_t wall = 1'700'000'000'000'000;
  zmqkit::internal::CoreEnvironment environment;
  environment.wall_clock = [&] { return wall; };
  zmqkit::internal::BrokerCore core(options, environment);
  RecordingJournal journal;
  core.set_journal(&journal);
  zmqkit::TimePoint now{};
  std::vector<zmq::message_t> frames;
  for (int messages = 0; !input.done() && messages < 64; ++messages) {
    const std::uint8_t tag = input.Byte();
    const auto advance = std::chrono::milliseconds(50 * ((tag >> 3) & 7));
    now += advance;
    wall += std::chrono::duration_cast<std::chrono::microseconds>(advance).count();
    core.Tick(now);
    frames.clear();
    for (std::string_view frame : input.Frames(8)) frames.emplace_back(frame.data(), frame.size());
    const std::string peer(1, static_cast<char>('a' + (tag & 3)));
    if (tag & 4) {
      core.OnWorkerMessage(peer, frames, now);
    } else {
      core.OnClientMessage(peer, frames, now);
    }
    core.Flush();
    core.outbox().clear();
    (void)core.TakeLog();
  }

  zmqkit::internal::BrokerCore recovered(options);
  for (const std::string& record : journal.records) {
    if (!recovered.Replay(record, now).ok()) std::abort();
  }
  for (const std::string& name : core.QueueNames()) {
    const auto* live = core.FindQueue(name);
    const auto* replayed = recovered.FindQueue(name);
    if (replayed == nullptr || replayed->size() != live->size()) std::abort();
  }
  return 0;
}
