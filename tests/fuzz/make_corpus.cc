// Writes the seed corpus (tests/fuzz/corpus/<target>/): valid inputs for each fuzz target, built
// with the real encoders, so fuzzing starts from messages the code accepts and mutates outward.
// Run after a protocol or format change:  make_corpus <repo>/tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "broker/core/journal_records.h"
#include "broker/protocol.h"
#include "fuzz/fuzz_input.h"
#include "storage/journal_format.h"
#include "storage/journal_writer.h"
#include "storage/file.h"
#include "zmqkit/curve.h"
#include "zmqkit/envelope_codec.h"

namespace fs = std::filesystem;
namespace p = zmqkit::internal::protocol;
using zmqkit::fuzz::FuzzWriter;

namespace {

void Write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string Str(const zmq::message_t& frame) { return frame.to_string(); }

std::vector<std::string> Strs(std::vector<zmq::message_t> frames) {
  std::vector<std::string> out;
  for (const auto& frame : frames) out.push_back(Str(frame));
  return out;
}

std::string Header(std::string_view body, std::uint8_t priority, bool with_headers) {
  zmqkit::Envelope envelope = zmqkit::Envelope::New(body);
  envelope.priority = priority;
  if (with_headers) envelope.headers = {{"tenant", "acme"}, {"trace", "abc123"}};
  std::string header;
  zmqkit::EncodeHeader(envelope, header);
  return header;
}

std::vector<std::string> Publish(std::uint64_t seq, const std::string& queue, std::string_view body) {
  auto frames = Strs(p::Frames(p::kPublish, p::ArgsWriter(2).Uint("seq", seq).Str("key", queue).Finish()));
  frames.push_back(Header(body, static_cast<std::uint8_t>(seq % 10), seq % 2 == 0));
  frames.emplace_back(body);
  return frames;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus <corpus directory>\n");
    return 2;
  }
  const fs::path root = argv[1];

  // envelope_decoder: [limits byte][form byte: 1 small header limit, 2 topic-packed][frames]
  for (int i = 0; i < 4; ++i) {
    FuzzWriter writer;
    writer.Byte(7).Byte(0).Frames({Header("hello", static_cast<std::uint8_t>(i), i % 2 == 1),
                                   std::string(i * 10, 'b')});
    Write(root / "envelope_decoder", "valid-" + std::to_string(i), writer.bytes());
  }
  for (int i = 0; i < 2; ++i) {  // the packed form: header and body in one frame
    FuzzWriter writer;
    writer.Byte(7).Byte(0).Frames({Header("hello", static_cast<std::uint8_t>(i), i == 1) +
                                   std::string(i * 10, 'b')});
    Write(root / "envelope_decoder", "packed-" + std::to_string(i), writer.bytes());
  }
  for (int i = 0; i < 2; ++i) {  // topic-packed: [topic, header, body, topic length]
    const std::string topic = i == 0 ? "" : "orders.eu";
    FuzzWriter writer;
    writer.Byte(7).Byte(2).Frames({topic + Header("hello", static_cast<std::uint8_t>(i), i == 1) +
                                   std::string(i * 10, 'b') + '\0' +
                                   static_cast<char>(topic.size())});
    Write(root / "envelope_decoder", "topic-packed-" + std::to_string(i), writer.bytes());
  }

  // broker_command: conversations of [tag][frames]
  {
    FuzzWriter writer;  // publish, consume, ack, stats
    writer.Byte(0).Frames(Publish(1, "orders", "soup"));
    writer.Byte(1).Frames(Strs(p::Frames(p::kConsume, p::ArgsWriter(4).Uint("rid", 1).Str("queue", "orders")
                                                         .Str("consumer", "c").Uint("prefetch", 10).Finish())));
    writer.Byte(1).Frames(Strs(p::Frames(p::kAck, p::ArgsWriter(1).UintList("tags", {1}).Finish())));
    writer.Byte(8).Frames(Strs(p::Frames(p::kStats, p::ArgsWriter(1).Uint("rid", 2).Finish())));
    Write(root / "broker_command", "publish-consume-ack", writer.bytes());
  }
  {
    FuzzWriter writer;  // nack to the dead-letter queue, redrive, peek, purge
    writer.Byte(0).Frames(Publish(1, "work", "a")).Byte(0).Frames(Publish(2, "work", "b"));
    writer.Byte(1).Frames(Strs(p::Frames(p::kConsume, p::ArgsWriter(4).Uint("rid", 1).Str("queue", "work")
                                                         .Str("consumer", "c").Uint("prefetch", 1).Finish())));
    writer.Byte(1).Frames(Strs(p::Frames(p::kNack, p::ArgsWriter(2).Uint("tag", 1).Bool("requeue", false).Finish())));
    writer.Byte(2).Frames(Strs(p::Frames(p::kRedrive, p::ArgsWriter(2).Uint("rid", 3).Str("queue", "work").Finish())));
    writer.Byte(2).Frames(Strs(p::Frames(p::kPeek, p::ArgsWriter(3).Uint("rid", 4).Str("queue", "work").Uint("limit", 5).Finish())));
    writer.Byte(56).Frames(Strs(p::Frames(p::kPurge, p::ArgsWriter(2).Uint("rid", 5).Str("queue", "work").Finish())));
    Write(root / "broker_command", "dead-letter-redrive", writer.bytes());
  }
  {
    FuzzWriter writer;  // exchanges and bindings, delayed and expiring publishes
    writer.Byte(3).Frames(Strs(p::Frames(p::kDeclareExchange, p::ArgsWriter(3).Uint("rid", 1).Str("name", "events").Str("type", "topic").Finish())));
    writer.Byte(3).Frames(Strs(p::Frames(p::kBind, p::ArgsWriter(4).Uint("rid", 2).Str("exchange", "events").Str("queue", "audit").Str("pattern", "order.*").Finish())));
    auto delayed = Strs(p::Frames(p::kPublish, p::ArgsWriter(5).Uint("seq", 1).Str("exchange", "events").Str("key", "order.new")
                                                   .Uint("delay_ms", 100).Uint("ttl_ms", 300).Finish()));
    delayed.push_back(Header("x", 1, true));
    delayed.emplace_back("x");
    writer.Byte(3).Frames(delayed);
    writer.Byte(3).Frames(Strs(p::Frames(p::kDeclareQueue, p::ArgsWriter(4).Uint("rid", 3).Str("name", "audit").Uint("max_length", 10).Uint("ack_timeout_ms", 50).Finish())));
    writer.Byte(59).Frames(Strs(p::Frames(p::kHeartbeat, p::NoArgs())));
    Write(root / "broker_command", "exchanges-delays", writer.bytes());
  }
  {
    FuzzWriter writer;  // batched and packed forms: PUBLISHes of two messages, a consumer taking batches
    auto packed = Strs(p::Frames(p::kPublish, p::ArgsWriter(3).Uint("seq", 1).Uint("count", 2).Str("key", "jobs").Finish()));
    for (std::string_view body : {"one", "two"}) {
      packed.push_back(Header(body, 0, false));
      packed.emplace_back(body);
    }
    writer.Byte(0).Frames(packed);
    // The same two as [header+body] frames, then one alone.
    auto one_frame = Strs(p::Frames(p::kPublish, p::ArgsWriter(3).Uint("seq", 3).Uint("count", 2).Str("key", "jobs").Finish()));
    for (std::string_view body : {"three", "four"}) one_frame.push_back(Header(body, 0, true) + std::string(body));
    writer.Byte(0).Frames(one_frame);
    auto alone = Strs(p::Frames(p::kPublish, p::ArgsWriter(2).Uint("seq", 5).Str("key", "jobs").Finish()));
    alone.push_back(Header("five", 1, false) + "five");
    writer.Byte(0).Frames(alone);
    writer.Byte(1).Frames(Strs(p::Frames(p::kConsume, p::ArgsWriter(5).Uint("rid", 1).Str("queue", "jobs")
                                                         .Str("consumer", "c").Uint("prefetch", 10).Uint("batch", 5).Finish())));
    writer.Byte(1).Frames(Strs(p::Frames(p::kAck, p::ArgsWriter(1).UintList("tags", {1, 2}).Finish())));
    Write(root / "broker_command", "packed-publish-and-deliver", writer.bytes());
  }
  {
    FuzzWriter writer;  // a plain REQ client served by a Paranoid Pirate worker
    writer.Byte(0).Frames({"", "what time is it?"});
    writer.Byte(4).Frames({std::string(1, p::kPppReady)});
    std::string tag(8, '\0');
    tag[7] = 1;
    writer.Byte(4).Frames({tag, "", "noon"});
    writer.Byte(12).Frames({std::string(1, p::kPppHeartbeat)});
    Write(root / "broker_command", "req-and-ppp-worker", writer.bytes());
  }

  // journal_reader: a segment holding every kind of record, written by the real writer.
  {
    namespace records = zmqkit::internal::records;
    const fs::path file = fs::temp_directory_path() / "zmqkit-corpus-segment";
    fs::remove(file);
    {
      auto out = zmqkit::internal::PosixWritableFile::Open(file);
      if (!out.ok()) return 1;
      zmqkit::internal::JournalWriter writer(out->get(), 0);
      zmqkit::QueueOptions queue;
      (void)writer.AddRecord(records::EncodeQueue("orders", queue));
      (void)writer.AddRecord(records::EncodePublish({{"orders", 1}}, Header("soup", 3, true), "soup", 1'700'000'000'000'000, 0, 0, ""));
      (void)writer.AddRecord(records::EncodePublish({{"orders", 2}}, Header(std::string(40000, 'z'), 0, false), std::string(40000, 'z'), 1'700'000'000'000'000, 1000, 0, ""));
      (void)writer.AddRecord(records::EncodeAck("orders", 1));
      (void)writer.Sync();
    }
    std::ifstream in(file, std::ios::binary);
    Write(root / "journal_reader", "segment", std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
    fs::remove(file);
  }

  // certificate: both halves of a pair, as keygen writes them.
  {
    const fs::path dir = fs::temp_directory_path() / "zmqkit-corpus-cert";
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto keys = zmqkit::GenerateCurveKeyPair();
    if (!keys.ok() || !zmqkit::WriteCertificate((dir / "key").string(), *keys).ok()) return 1;
    for (const char* name : {"key", "key_secret"}) {
      std::ifstream in(dir / name);
      Write(root / "certificate", name, std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
    }
    fs::remove_all(dir);
  }
  std::printf("wrote the corpus under %s\n", root.c_str());
  return 0;
}
