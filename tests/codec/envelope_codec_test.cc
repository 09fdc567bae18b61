#include "zmqkit/envelope_codec.h"

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <msgpack.hpp>
#include <random>
#include <stdexcept>
#include <vector>

namespace zmqkit {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

void Str(Packer& p, std::string_view s) {
  p.pack_str(static_cast<uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

// Builds a header frame by hand, as a foreign writer (say Python's msgpack) would.
std::string Pack(const std::function<void(Packer&)>& write) {
  msgpack::sbuffer buffer;
  Packer packer(buffer);
  write(packer);
  return std::string(buffer.data(), buffer.size());
}

const std::string kId16(16, '\x11');

// A version 1 header (the map form): the three required keys; `extra` entries are appended and
// counted in the map size.
std::string RequiredPlus(uint32_t extra_entries, const std::function<void(Packer&)>& extra = {}) {
  return Pack([&](Packer& p) {
    p.pack_map(3 + extra_entries);
    Str(p, "v");
    p.pack_uint64(1);
    Str(p, "id");
    p.pack_bin(16);
    p.pack_bin_body(kId16.data(), 16);
    Str(p, "ts");
    p.pack_uint64(1700000000000000);
    if (extra) extra(p);
  });
}

// A version 2 header (the array form), written by hand: version, id and ts, then `extra_elements`
// more elements written by `extra`.
std::string ArrayPlus(uint32_t extra_elements, const std::function<void(Packer&)>& extra = {}) {
  return Pack([&](Packer& p) {
    p.pack_array(3 + extra_elements);
    p.pack_uint64(2);
    p.pack_bin(16);
    p.pack_bin_body(kId16.data(), 16);
    p.pack_uint64(1700000000000000);
    if (extra) extra(p);
  });
}

std::vector<zmq::message_t> Frames(std::initializer_list<std::string_view> parts) {
  std::vector<zmq::message_t> frames;
  for (auto part : parts) frames.emplace_back(part.data(), part.size());
  return frames;
}

Result<Envelope, DecodeError> Decode(std::string_view header, std::string_view body = "body",
                                     const DecodeLimits& limits = {}) {
  auto frames = Frames({header, body});
  return DecodeFrames(frames, limits);
}

DecodeErrc ErrorOf(std::string_view header, const DecodeLimits& limits = {}) {
  auto result = Decode(header, "body", limits);
  EXPECT_FALSE(result.ok()) << "decoded although it should not";
  return result.ok() ? DecodeErrc::kExtraFrames : result.error().code;
}

std::string Encode(const Envelope& envelope) {
  std::string out;
  EncodeHeader(envelope, out);
  return out;
}

TEST(EnvelopeCodecTest, MinimalRoundTrip) {
  Envelope sent = Envelope::New("hello");
  auto frames = Frames({Encode(sent), sent.body_view()});
  auto got = DecodeFrames(frames, {});
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->id, sent.id);
  EXPECT_EQ(got->created_us, sent.created_us);
  EXPECT_EQ(got->priority, 0);
  EXPECT_EQ(got->attempt, 0u);
  EXPECT_EQ(got->seq, 0u);
  EXPECT_TRUE(got->headers.empty());
  EXPECT_EQ(got->body_view(), "hello");
}

TEST(EnvelopeCodecTest, FullRoundTripWithBinaryBody) {
  Envelope sent = Envelope::New(std::string_view("\0\x01\xff payload", 11));
  sent.priority = 9;
  sent.attempt = 4000000000u;
  sent.seq = 1ull << 40;
  sent.stream = "publisher-7";
  sent.headers = {{"type", "ORDER_CREATED"}, {"", "empty key is allowed"}, {"k", ""}};
  auto frames = Frames({Encode(sent), sent.body_view()});
  auto got = DecodeFrames(frames, {});
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->priority, 9);
  EXPECT_EQ(got->attempt, 4000000000u);
  EXPECT_EQ(got->seq, 1ull << 40);
  EXPECT_EQ(got->stream, "publisher-7");
  EXPECT_EQ(got->headers, sent.headers);
  EXPECT_EQ(got->body_view(), sent.body_view());
}

TEST(EnvelopeCodecTest, DefaultsAreLeftOutOfTheHeader) {
  Envelope envelope = Envelope::New();
  // An array of 3: version, id, ts; nothing else.
  std::string plain = Encode(envelope);
  EXPECT_EQ(static_cast<uint8_t>(plain[0]), 0x93);
  EXPECT_EQ(plain.size(), 29u);
  envelope.attempt = 1;  // a priority of 0 is still written, as attempt comes after it
  EXPECT_EQ(static_cast<uint8_t>(Encode(envelope)[0]), 0x95);
  envelope.attempt = 0;
  envelope.priority = 3;
  EXPECT_EQ(static_cast<uint8_t>(Encode(envelope)[0]), 0x94);
}

// The reason for version 2: libzmq carries a frame of at most 33 bytes inside the message itself,
// and a longer one costs an allocation on the sending thread and a free on its I/O thread. A fresh
// message and a broker's delivery (an attempt count and a priority) both fit, for attempt counts
// up to 65535 (a uint16); past that the frame is 35 bytes, which costs speed, not correctness.
TEST(EnvelopeCodecTest, PlainAndDeliveredHeadersFitLibzmqsInlineLimit) {
  constexpr std::size_t kLibzmqInlineBytes = 33;
  Envelope envelope = Envelope::New();
  envelope.created_us = std::numeric_limits<std::int64_t>::max();  // the widest timestamp
  EXPECT_LE(Encode(envelope).size(), kLibzmqInlineBytes);
  envelope.priority = kMaxPriority;
  envelope.attempt = 65535;
  EXPECT_LE(Encode(envelope).size(), kLibzmqInlineBytes);
  envelope.attempt = 65536;
  EXPECT_EQ(Encode(envelope).size(), kLibzmqInlineBytes + 2);
}

// The example in docs/wire-format.md section 3, byte for byte.
TEST(EnvelopeCodecTest, WorkedExampleFromTheSpec) {
  Envelope envelope;
  envelope.id = *MessageId::FromString("01936c8e-7b1a-7c3e-9f00-3a4b5c6d7e8f");
  envelope.created_us = 1732320000000000;
  envelope.priority = 5;
  envelope.headers = {{"type", "ORDER_CREATED"}};
  constexpr char kExpected[] =
      "\x96\x02\xc4\x10\x01\x93\x6c\x8e\x7b\x1a\x7c\x3e\x9f\x00\x3a\x4b\x5c\x6d\x7e\x8f"
      "\xcf\x00\x06\x27\x89\x2e\x3c\xc0\x00\x05\x00"
      "\x81\xa1h\x81\xa4type\xadORDER_CREATED";
  EXPECT_EQ(Encode(envelope), std::string(kExpected, sizeof kExpected - 1));
  EXPECT_EQ(sizeof kExpected - 1, 54u);
}

TEST(EnvelopeCodecTest, UnknownKeysAreIgnoredWhateverTheyHold) {
  std::string header = RequiredPlus(4, [](Packer& p) {
    Str(p, "future");
    p.pack_map(2);
    Str(p, "nested");
    p.pack_array(2);
    p.pack_nil();
    p.pack_map(1);
    Str(p, "deep");
    p.pack_double(1.5);
    Str(p, "x");
    p.pack_true();
    p.pack_uint64(42);  // a non-string key
    Str(p, "ignored");
    p.pack_array(1);    // a container as a key
    Str(p, "v");
    Str(p, "still ignored");
    Str(p, "pri");
    p.pack_uint64(3);
  });
  auto got = Decode(header);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->priority, 3);
}

TEST(EnvelopeCodecTest, KeyOrderDoesNotMatter) {
  std::string header = Pack([](Packer& p) {
    p.pack_map(3);
    Str(p, "ts");
    p.pack_uint64(5);
    Str(p, "id");
    p.pack_bin(16);
    p.pack_bin_body(kId16.data(), 16);
    Str(p, "v");
    p.pack_uint64(1);
  });
  auto got = Decode(header);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->created_us, 5);
}

// Any msgpack integer encoding is an integer, including signed formats holding non-negative values.
TEST(EnvelopeCodecTest, SignedIntegerFormatsWithNonNegativeValuesAreAccepted) {
  std::string header = RequiredPlus(2, [](Packer& p) {
    Str(p, "pri");
    p.pack_int8(5);  // 0xd0 0x05
    Str(p, "att");
    p.pack_int64(7);  // msgpack-c may shorten this; pack_fix_int64 keeps the 9-byte form
  });
  auto got = Decode(header);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->priority, 5);
  EXPECT_EQ(got->attempt, 7u);
  std::string fixed = RequiredPlus(1, [](Packer& p) {
    Str(p, "att");
    p.pack_fix_int64(9);  // 0xd3, eight bytes
  });
  auto got_fixed = Decode(fixed);
  ASSERT_TRUE(got_fixed.ok()) << got_fixed.error().ToString();
  EXPECT_EQ(got_fixed->attempt, 9u);
}

TEST(EnvelopeCodecTest, MissingFrames) {
  std::vector<zmq::message_t> none;
  EXPECT_EQ(DecodeFrames(none, {}).error().code, DecodeErrc::kMissingFrames);
  auto one = Frames({RequiredPlus(0)});
  EXPECT_EQ(DecodeFrames(one, {}).error().code, DecodeErrc::kMissingFrames);
}

TEST(EnvelopeCodecTest, ExtraFrames) {
  auto three = Frames({RequiredPlus(0), "body", "more"});
  EXPECT_EQ(DecodeFrames(three, {}).error().code, DecodeErrc::kExtraFrames);
}

TEST(EnvelopeCodecTest, FrameTooLarge) {
  DecodeLimits limits;
  limits.max_body_bytes = 4;
  auto big_body = Decode(RequiredPlus(0), "12345", limits);
  ASSERT_FALSE(big_body.ok());
  EXPECT_EQ(big_body.error().code, DecodeErrc::kFrameTooLarge);
  EXPECT_TRUE(Decode(RequiredPlus(0), "1234", limits).ok());
  limits.max_header_bytes = 10;
  EXPECT_EQ(ErrorOf(RequiredPlus(0), limits), DecodeErrc::kFrameTooLarge);
}

TEST(EnvelopeCodecTest, MalformedHeader) {
  std::string valid = RequiredPlus(0);
  EXPECT_EQ(ErrorOf(""), DecodeErrc::kMalformedHeader);
  EXPECT_EQ(ErrorOf(valid.substr(0, valid.size() - 1)), DecodeErrc::kMalformedHeader);
  EXPECT_EQ(ErrorOf(valid + "\x01"), DecodeErrc::kMalformedHeader);  // trailing bytes
  EXPECT_EQ(ErrorOf("\xc1"), DecodeErrc::kMalformedHeader);          // the never-used byte
  auto error = Decode(valid.substr(0, 5)).error();
  EXPECT_NE(error.detail.find("ends inside"), std::string::npos) << error.detail;
}

TEST(EnvelopeCodecTest, HeaderNeitherArrayNorMap) {
  EXPECT_EQ(ErrorOf(Pack([](Packer& p) { p.pack_uint64(2); })), DecodeErrc::kHeaderNotArrayOrMap);
  EXPECT_EQ(ErrorOf(Pack([](Packer& p) { Str(p, "v"); })), DecodeErrc::kHeaderNotArrayOrMap);
  EXPECT_EQ(ErrorOf(Pack([](Packer& p) { p.pack_nil(); })), DecodeErrc::kHeaderNotArrayOrMap);
}

TEST(EnvelopeCodecTest, WrongTypeForEachKnownKey) {
  auto with = [](std::string_view key, const std::function<void(Packer&)>& value) {
    return Pack([&](Packer& p) {
      p.pack_map(1);
      Str(p, key);
      value(p);
    });
  };
  EXPECT_EQ(ErrorOf(with("v", [](Packer& p) { Str(p, "1"); })), DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(with("id", [](Packer& p) { Str(p, kId16); })), DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(with("ts", [](Packer& p) { p.pack_double(1.5); })), DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(with("pri", [](Packer& p) { p.pack_true(); })), DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(with("att", [](Packer& p) { p.pack_nil(); })), DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(with("seq", [](Packer& p) { p.pack_array(0); })), DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(with("src", [](Packer& p) { p.pack_uint64(1); })), DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(with("h", [](Packer& p) { p.pack_array(0); })), DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(with("h", [](Packer& p) { Str(p, "x"); })), DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(with("h",
                         [](Packer& p) {
                           p.pack_map(1);
                           Str(p, "k");
                           p.pack_uint64(1);
                         })),
            DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(with("h",
                         [](Packer& p) {
                           p.pack_map(1);
                           Str(p, "k");
                           p.pack_map(0);
                         })),
            DecodeErrc::kWrongType);
}

TEST(EnvelopeCodecTest, MissingRequiredFields) {
  for (std::string_view dropped : {"v", "id", "ts"}) {
    std::string header = Pack([&](Packer& p) {
      p.pack_map(2);
      if (dropped != "v") {
        Str(p, "v");
        p.pack_uint64(1);
      }
      if (dropped != "id") {
        Str(p, "id");
        p.pack_bin(16);
        p.pack_bin_body(kId16.data(), 16);
      }
      if (dropped != "ts") {
        Str(p, "ts");
        p.pack_uint64(1);
      }
    });
    auto error = Decode(header).error();
    EXPECT_EQ(error.code, DecodeErrc::kMissingField) << dropped;
    EXPECT_NE(error.detail.find(std::string(dropped)), std::string::npos) << error.detail;
  }
  // A sequence number means nothing without the stream it counts in.
  EXPECT_EQ(ErrorOf(RequiredPlus(1,
                                 [](Packer& p) {
                                   Str(p, "seq");
                                   p.pack_uint64(3);
                                 })),
            DecodeErrc::kMissingField);
}

TEST(EnvelopeCodecTest, ValuesOutOfRange) {
  auto one = [](std::string_view key, const std::function<void(Packer&)>& value) {
    return RequiredPlus(1, [&](Packer& p) {
      Str(p, key);
      value(p);
    });
  };
  EXPECT_EQ(ErrorOf(one("pri", [](Packer& p) { p.pack_uint64(10); })),
            DecodeErrc::kValueOutOfRange);
  EXPECT_EQ(ErrorOf(one("pri", [](Packer& p) { p.pack_int64(-1); })),
            DecodeErrc::kValueOutOfRange);
  EXPECT_EQ(ErrorOf(one("att", [](Packer& p) { p.pack_uint64(1ull << 32); })),
            DecodeErrc::kValueOutOfRange);
  EXPECT_EQ(ErrorOf(one("src", [](Packer& p) { Str(p, ""); })), DecodeErrc::kValueOutOfRange);
  std::string header = Pack([](Packer& p) {
    p.pack_map(3);
    Str(p, "v");
    p.pack_uint64(1);
    Str(p, "id");
    p.pack_bin(15);
    p.pack_bin_body(kId16.data(), 15);
    Str(p, "ts");
    p.pack_uint64(1);
  });
  EXPECT_EQ(ErrorOf(header), DecodeErrc::kValueOutOfRange);
  std::string negative_time = Pack([](Packer& p) {
    p.pack_map(1);
    Str(p, "ts");
    p.pack_int64(-5);
  });
  EXPECT_EQ(ErrorOf(negative_time), DecodeErrc::kValueOutOfRange);
}

// Each form has its own version: the map is version 1, the array version 2.
TEST(EnvelopeCodecTest, UnsupportedVersion) {
  std::string map_as_version_2 = Pack([](Packer& p) {
    p.pack_map(1);
    Str(p, "v");
    p.pack_uint64(2);
  });
  EXPECT_EQ(ErrorOf(map_as_version_2), DecodeErrc::kUnsupportedVersion);
  for (uint64_t version : {0, 1, 3}) {
    std::string array = Pack([&](Packer& p) {
      p.pack_array(3);
      p.pack_uint64(version);
      p.pack_bin(16);
      p.pack_bin_body(kId16.data(), 16);
      p.pack_uint64(1);
    });
    EXPECT_EQ(ErrorOf(array), DecodeErrc::kUnsupportedVersion) << version;
  }
}

// ---- Version 2, the array form, as a foreign writer would produce it ----

TEST(EnvelopeCodecTest, ArrayFormReadsEveryPosition) {
  std::string header = ArrayPlus(3, [](Packer& p) {
    p.pack_uint64(7);         // pri
    p.pack_uint64(3);         // att
    p.pack_map(3);            // the extension map
    Str(p, "h");
    p.pack_map(1);
    Str(p, "type");
    Str(p, "ORDER_CREATED");
    Str(p, "seq");
    p.pack_uint64(41);
    Str(p, "src");
    Str(p, "stream-1");
  });
  auto got = Decode(header);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->id.AsBytes()[0], 0x11);
  EXPECT_EQ(got->created_us, 1700000000000000);
  EXPECT_EQ(got->priority, 7);
  EXPECT_EQ(got->attempt, 3u);
  EXPECT_EQ(got->seq, 41u);
  EXPECT_EQ(got->stream, "stream-1");
  EXPECT_EQ(got->headers, (Headers{{"type", "ORDER_CREATED"}}));
}

TEST(EnvelopeCodecTest, ArrayFormLeavesOutTrailingDefaults) {
  auto got = Decode(ArrayPlus(0));
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->priority, 0);
  EXPECT_EQ(got->attempt, 0u);
  auto with_priority = Decode(ArrayPlus(1, [](Packer& p) { p.pack_uint64(4); }));
  ASSERT_TRUE(with_priority.ok()) << with_priority.error().ToString();
  EXPECT_EQ(with_priority->priority, 4);
  auto empty_extension = Decode(ArrayPlus(3, [](Packer& p) {
    p.pack_uint64(0);
    p.pack_uint64(0);
    p.pack_map(0);
  }));
  EXPECT_TRUE(empty_extension.ok()) << empty_extension.error().ToString();
}

// Elements after the extension map are for later revisions: skipped, whatever they hold. In the
// extension map, unknown keys are ignored, and so are the names of positional fields: a priority
// is read from its position only.
TEST(EnvelopeCodecTest, ArrayFormIgnoresLaterElementsAndUnknownExtensionKeys) {
  std::string header = ArrayPlus(6, [](Packer& p) {
    p.pack_uint64(2);  // pri
    p.pack_uint64(0);  // att
    p.pack_map(3);
    Str(p, "pri");
    p.pack_uint64(99);  // not a field here
    Str(p, "future");
    p.pack_array(1);
    p.pack_map(0);
    p.pack_uint64(5);  // a non-string key
    Str(p, "x");
    p.pack_map(1);  // element 6
    Str(p, "h");
    p.pack_uint64(1);
    p.pack_double(2.5);  // element 7
    p.pack_array(2);     // element 8
    p.pack_nil();
    p.pack_array(0);
  });
  auto got = Decode(header);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->priority, 2);
  EXPECT_TRUE(got->headers.empty());
}

TEST(EnvelopeCodecTest, ArrayFormWrongTypes) {
  std::string id_as_str = Pack([](Packer& p) {
    p.pack_array(3);
    p.pack_uint64(2);
    Str(p, kId16);
    p.pack_uint64(1);
  });
  EXPECT_EQ(ErrorOf(id_as_str), DecodeErrc::kWrongType);
  std::string version_as_str = Pack([](Packer& p) {
    p.pack_array(1);
    Str(p, "2");
  });
  EXPECT_EQ(ErrorOf(version_as_str), DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(ArrayPlus(1, [](Packer& p) { p.pack_map(0); })), DecodeErrc::kWrongType);  // pri
  EXPECT_EQ(ErrorOf(ArrayPlus(2, [](Packer& p) {
              p.pack_uint64(0);
              p.pack_nil();  // att
            })),
            DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(ArrayPlus(3, [](Packer& p) {
              p.pack_uint64(0);
              p.pack_uint64(0);
              p.pack_array(0);  // the extension must be a map
            })),
            DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(ArrayPlus(3, [](Packer& p) {
              p.pack_uint64(0);
              p.pack_uint64(0);
              Str(p, "seq");  // ... not a scalar either
            })),
            DecodeErrc::kWrongType);
  EXPECT_EQ(ErrorOf(ArrayPlus(3, [](Packer& p) {
              p.pack_uint64(0);
              p.pack_uint64(0);
              p.pack_map(1);
              Str(p, "h");
              p.pack_map(1);
              Str(p, "k");
              p.pack_uint64(1);  // header values are str
            })),
            DecodeErrc::kWrongType);
}

TEST(EnvelopeCodecTest, ArrayFormMissingFields) {
  EXPECT_EQ(ErrorOf(Pack([](Packer& p) { p.pack_array(0); })), DecodeErrc::kMissingField);
  auto two = Decode(Pack([](Packer& p) {
                      p.pack_array(2);
                      p.pack_uint64(2);
                      p.pack_bin(16);
                      p.pack_bin_body(kId16.data(), 16);
                    })).error();
  EXPECT_EQ(two.code, DecodeErrc::kMissingField);
  EXPECT_NE(two.detail.find("ts"), std::string::npos) << two.detail;
  EXPECT_EQ(ErrorOf(ArrayPlus(3, [](Packer& p) {
              p.pack_uint64(0);
              p.pack_uint64(0);
              p.pack_map(1);
              Str(p, "seq");
              p.pack_uint64(3);  // without "src"
            })),
            DecodeErrc::kMissingField);
}

TEST(EnvelopeCodecTest, ArrayFormRangesDuplicatesAndLimits) {
  EXPECT_EQ(ErrorOf(ArrayPlus(1, [](Packer& p) { p.pack_uint64(10); })), DecodeErrc::kValueOutOfRange);
  EXPECT_EQ(ErrorOf(ArrayPlus(2, [](Packer& p) {
              p.pack_uint64(0);
              p.pack_uint64(1ull << 32);
            })),
            DecodeErrc::kValueOutOfRange);
  std::string short_id = Pack([](Packer& p) {
    p.pack_array(3);
    p.pack_uint64(2);
    p.pack_bin(15);
    p.pack_bin_body(kId16.data(), 15);
    p.pack_uint64(1);
  });
  EXPECT_EQ(ErrorOf(short_id), DecodeErrc::kValueOutOfRange);
  auto extension = [](const std::function<void(Packer&)>& entries) {
    return ArrayPlus(3, [&](Packer& p) {
      p.pack_uint64(0);
      p.pack_uint64(0);
      entries(p);
    });
  };
  EXPECT_EQ(ErrorOf(extension([](Packer& p) {
              p.pack_map(2);
              Str(p, "src");
              Str(p, "a");
              Str(p, "src");
              Str(p, "b");
            })),
            DecodeErrc::kDuplicateField);
  DecodeLimits limits;
  limits.max_headers = 1;
  EXPECT_EQ(ErrorOf(extension([](Packer& p) {
                      p.pack_map(1);
                      Str(p, "h");
                      p.pack_map(2);
                      Str(p, "a");
                      Str(p, "1");
                      Str(p, "b");
                      Str(p, "2");
                    }),
                    limits),
            DecodeErrc::kTooManyHeaders);
  std::string valid = ArrayPlus(0);
  EXPECT_EQ(ErrorOf(valid + "\x01"), DecodeErrc::kMalformedHeader);  // bytes after the array
}

// A reader of both forms: version 1's map still decodes to the same envelope as version 2's array.
TEST(EnvelopeCodecTest, BothFormsDecodeToTheSameEnvelope) {
  std::string map_form = RequiredPlus(2, [](Packer& p) {
    Str(p, "pri");
    p.pack_uint64(6);
    Str(p, "h");
    p.pack_map(1);
    Str(p, "k");
    Str(p, "v");
  });
  std::string array_form = ArrayPlus(3, [](Packer& p) {
    p.pack_uint64(6);
    p.pack_uint64(0);
    p.pack_map(1);
    Str(p, "h");
    p.pack_map(1);
    Str(p, "k");
    Str(p, "v");
  });
  auto from_map = Decode(map_form);
  auto from_array = Decode(array_form);
  ASSERT_TRUE(from_map.ok()) << from_map.error().ToString();
  ASSERT_TRUE(from_array.ok()) << from_array.error().ToString();
  EXPECT_EQ(from_map->id, from_array->id);
  EXPECT_EQ(from_map->created_us, from_array->created_us);
  EXPECT_EQ(from_map->priority, from_array->priority);
  EXPECT_EQ(from_map->headers, from_array->headers);
  // And re-encoding either gives the array form.
  EXPECT_EQ(Encode(*from_map), Encode(*from_array));
}

TEST(EnvelopeCodecTest, DuplicateKeys) {
  EXPECT_EQ(ErrorOf(RequiredPlus(1,
                                 [](Packer& p) {
                                   Str(p, "ts");
                                   p.pack_uint64(2);
                                 })),
            DecodeErrc::kDuplicateField);
  EXPECT_EQ(ErrorOf(RequiredPlus(1,
                                 [](Packer& p) {
                                   Str(p, "h");
                                   p.pack_map(2);
                                   Str(p, "k");
                                   Str(p, "1");
                                   Str(p, "k");
                                   Str(p, "2");
                                 })),
            DecodeErrc::kDuplicateField);
}

TEST(EnvelopeCodecTest, TooManyHeaders) {
  DecodeLimits limits;
  limits.max_headers = 2;
  auto headers = [](uint32_t n) {
    return RequiredPlus(1, [n](Packer& p) {
      Str(p, "h");
      p.pack_map(n);
      for (uint32_t i = 0; i < n; ++i) {
        Str(p, std::string("k").append(std::to_string(i)));
        Str(p, "v");
      }
    });
  };
  EXPECT_TRUE(Decode(headers(2), "", limits).ok());
  EXPECT_EQ(ErrorOf(headers(3), limits), DecodeErrc::kTooManyHeaders);
}

TEST(EnvelopeCodecTest, ErrorsNameTheirReason) {
  auto error = Decode(RequiredPlus(1, [](Packer& p) {
                 Str(p, "pri");
                 p.pack_uint64(12);
               })).error();
  EXPECT_EQ(error.ToString(), "value out of range: key \"pri\" is 12, at most 9 allowed");
  EXPECT_EQ(error.ToStatus().code(), StatusCode::kInvalidArgument);
}

// Every prefix and every single-byte corruption of a valid header decodes or fails cleanly.
TEST(EnvelopeCodecTest, DamagedHeadersNeverCrash) {
  Envelope envelope = Envelope::New("x");
  envelope.seq = 9;
  envelope.stream = "s";
  envelope.headers = {{"a", "b"}};
  std::string valid = Encode(envelope);
  int failures = 0;
  for (std::size_t length = 0; length < valid.size(); ++length) {
    failures += !Decode(valid.substr(0, length)).ok();
  }
  EXPECT_EQ(failures, static_cast<int>(valid.size()));  // every strict prefix is incomplete
  for (std::size_t i = 0; i < valid.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = valid;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      (void)Decode(damaged);
    }
  }
}

TEST(EnvelopeCodecTest, RandomBytesNeverCrash) {
  std::mt19937 random(12345);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(random() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(random());
    if (!bytes.empty() && i % 2 == 0) bytes[0] = static_cast<char>(0x80 | (random() % 16));
    (void)Decode(bytes);
  }
}

TEST(EnvelopeCodecTest, HugeDeclaredSizesDoNotAllocate) {
  // A map header claiming 2^32-1 entries, and a str claiming 2^32-1 bytes, in a 5-byte frame.
  EXPECT_EQ(ErrorOf(std::string("\xdf\xff\xff\xff\xff", 5)), DecodeErrc::kMalformedHeader);
  EXPECT_EQ(ErrorOf(std::string("\x81\xdb\xff\xff\xff\xff", 6)), DecodeErrc::kMalformedHeader);
}

// ---- the packed form: [header and body] in one frame ------------------------------------------

Result<Envelope, DecodeError> DecodeOnePacked(std::string_view bytes,
                                              const DecodeLimits& limits = {}) {
  zmq::message_t frame(bytes.data(), bytes.size());
  return DecodePacked(frame, limits);
}

TEST(EnvelopeCodecTest, PackedRoundTripKeepsEveryFieldAndTheBody) {
  Envelope sent = Envelope::New(std::string_view("\x93\0binary body that looks like msgpack", 38));
  sent.priority = 3;
  sent.attempt = 7;
  sent.seq = 42;
  sent.stream = "publisher-7";
  sent.headers = {{"type", "ORDER_CREATED"}};
  std::string scratch;
  zmq::message_t frame = EncodePacked(sent, scratch);
  EXPECT_EQ(frame.size(), Encode(sent).size() + sent.body.size());  // the header, then the body
  auto got = DecodePacked(frame, {});
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->id, sent.id);
  EXPECT_EQ(got->created_us, sent.created_us);
  EXPECT_EQ(got->priority, 3);
  EXPECT_EQ(got->attempt, 7u);
  EXPECT_EQ(got->seq, 42u);
  EXPECT_EQ(got->stream, "publisher-7");
  EXPECT_EQ(got->headers, sent.headers);
  EXPECT_EQ(got->body_view(), sent.body_view());
}

// The broker journals a packed publish's header as the client wrote it: header_size says where it
// ends, here inside a body that itself starts like a header.
TEST(EnvelopeCodecTest, DecodingAPackedFrameTellsWhereItsHeaderEnds) {
  Envelope sent = Envelope::New(Encode(Envelope::New("inner")));
  sent.headers = {{"k", "v"}};
  std::string scratch;
  zmq::message_t frame = EncodePacked(sent, scratch);
  std::size_t header_size = 0;
  auto got = DecodePacked(frame, {}, header_size);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(std::string_view(frame.data<char>(), header_size), Encode(sent));
  EXPECT_EQ(got->body_view(), sent.body_view());
}

TEST(EnvelopeCodecTest, PackedFrameWithNothingAfterTheHeaderHasAnEmptyBody) {
  auto got = DecodeOnePacked(ArrayPlus(0));
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->body.size(), 0u);
  // Either header form may be packed.
  auto map_form = DecodeOnePacked(RequiredPlus(0) + "body");
  ASSERT_TRUE(map_form.ok()) << map_form.error().ToString();
  EXPECT_EQ(map_form->body_view(), "body");
}

TEST(EnvelopeCodecTest, PackedFramesAreCheckedByTheHeaderRules) {
  std::string valid = ArrayPlus(0);
  EXPECT_EQ(DecodeOnePacked("").error().code, DecodeErrc::kMalformedHeader);
  EXPECT_EQ(DecodeOnePacked(valid.substr(0, valid.size() - 1)).error().code,
            DecodeErrc::kMalformedHeader);
  EXPECT_EQ(DecodeOnePacked("\xc1" "body").error().code, DecodeErrc::kMalformedHeader);
  EXPECT_EQ(DecodeOnePacked("*body").error().code, DecodeErrc::kHeaderNotArrayOrMap);
  auto missing_ts = Pack([](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(2);
    p.pack_bin(16);
    p.pack_bin_body(kId16.data(), 16);
  });
  EXPECT_EQ(DecodeOnePacked(missing_ts + "body").error().code, DecodeErrc::kMissingField);
  const std::string priority_ten = ArrayPlus(1, [](Packer& p) { p.pack_uint64(10); });
  EXPECT_EQ(DecodeOnePacked(priority_ten + "body").error().code, DecodeErrc::kValueOutOfRange);
}

TEST(EnvelopeCodecTest, PackedHeaderAndBodyEachHaveTheirLimit) {
  const std::string header = ArrayPlus(0);
  DecodeLimits limits;
  limits.max_header_bytes = header.size();
  limits.max_body_bytes = 4;
  EXPECT_TRUE(DecodeOnePacked(header + "1234", limits).ok());
  auto big_body = DecodeOnePacked(header + "12345", limits);
  ASSERT_FALSE(big_body.ok());
  EXPECT_EQ(big_body.error().code, DecodeErrc::kFrameTooLarge);
  EXPECT_NE(big_body.error().detail.find("body is 5 bytes"), std::string::npos)
      << big_body.error().detail;
  // A header that does not end within the limit is too large, not malformed, even with a body
  // after it that would make the frame long enough.
  limits.max_header_bytes = header.size() - 1;
  auto big_header = DecodeOnePacked(header + "1234", limits);
  ASSERT_FALSE(big_header.ok());
  EXPECT_EQ(big_header.error().code, DecodeErrc::kFrameTooLarge);
  // ... and a frame that ends inside a header shorter than the limit is malformed.
  limits.max_header_bytes = 1000;
  EXPECT_EQ(DecodeOnePacked(header.substr(0, 10), limits).error().code,
            DecodeErrc::kMalformedHeader);
}

TEST(EnvelopeCodecTest, DamagedPackedFramesNeverCrash) {
  Envelope envelope = Envelope::New("some body");
  envelope.seq = 9;
  envelope.stream = "s";
  envelope.headers = {{"a", "b"}};
  std::string scratch;
  zmq::message_t frame = EncodePacked(envelope, scratch);
  const std::string valid(frame.data<char>(), frame.size());
  const std::size_t header_size = Encode(envelope).size();
  for (std::size_t length = 0; length <= valid.size(); ++length) {
    // A cut inside the header is an error; a cut inside the body is a shorter body.
    EXPECT_EQ(DecodeOnePacked(valid.substr(0, length)).ok(), length >= header_size) << length;
  }
  for (std::size_t i = 0; i < header_size; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = valid;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      (void)DecodeOnePacked(damaged);
    }
  }
}

// ---- the topic-packed form: [topic, header, body, topic length] in one frame ------------------

Result<Envelope, DecodeError> DecodeOneTopicPacked(std::string_view bytes, std::string& topic,
                                                   const DecodeLimits& limits = {}) {
  zmq::message_t frame(bytes.data(), bytes.size());
  return DecodeTopicPacked(frame, limits, topic);
}

std::string TopicLength(std::size_t size) {
  return {static_cast<char>(size >> 8), static_cast<char>(size & 0xff)};
}

TEST(EnvelopeCodecTest, TopicPackedRoundTripKeepsTopicFieldsAndBody) {
  Envelope sent = Envelope::New();
  sent.seq = 7;
  sent.stream = "publisher-7";
  sent.headers = {{"type", "ORDER_CREATED"}};
  const std::string body = std::string("\x92\0body", 6) + ", ending in what looks like a length" +
                           std::string("\0\5", 2);
  // Topics of any bytes and length, including none, bytes that look like msgpack, and the longest.
  for (const std::string& topic :
       {std::string(), std::string("orders.eu"), std::string("\x96\0\xff", 3),
        std::string(300, 't'), std::string(kTopicPackedMaxTopic, 'm')}) {
    std::string scratch;
    zmq::message_t frame = EncodeTopicPacked(topic, sent, body, scratch);
    const std::string bytes(frame.data<char>(), frame.size());
    // The topic first, as libzmq matches subscriptions against the first bytes, then the header,
    // the body, and the topic's length.
    EXPECT_EQ(bytes, topic + Encode(sent) + body + TopicLength(topic.size()));
    DecodeLimits limits;
    limits.max_topic_bytes = kTopicPackedMaxTopic;
    std::string got_topic = "left over";
    auto got = DecodeTopicPacked(frame, limits, got_topic);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(got_topic, topic);
    EXPECT_EQ(got->id, sent.id);
    EXPECT_EQ(got->created_us, sent.created_us);
    EXPECT_EQ(got->seq, 7u);
    EXPECT_EQ(got->stream, "publisher-7");
    EXPECT_EQ(got->headers, sent.headers);
    EXPECT_EQ(got->body_view(), body);
  }
  std::string scratch;
  EXPECT_THROW(EncodeTopicPacked(std::string(kTopicPackedMaxTopic + 1, 't'), sent, body, scratch),
               std::length_error);
}

TEST(EnvelopeCodecTest, TopicPackedFramesAreCheckedByTheirTrailerTopicAndHeaderRules) {
  const std::string header = ArrayPlus(0);
  std::string topic = "unchanged";
  // No room for the trailer.
  EXPECT_EQ(DecodeOneTopicPacked("", topic).error().code, DecodeErrc::kMalformedHeader);
  EXPECT_EQ(DecodeOneTopicPacked("t", topic).error().code, DecodeErrc::kMalformedHeader);
  // A topic length past the frame's bytes.
  auto past_end = DecodeOneTopicPacked("ab" + header + TopicLength(header.size() + 3), topic);
  ASSERT_FALSE(past_end.ok());
  EXPECT_EQ(past_end.error().code, DecodeErrc::kMalformedHeader);
  EXPECT_NE(past_end.error().detail.find("topic length"), std::string::npos)
      << past_end.error().detail;
  // The topic's limit, found from the trailer before anything is parsed.
  DecodeLimits limits;
  limits.max_topic_bytes = 2;
  EXPECT_TRUE(DecodeOneTopicPacked("ab" + header + TopicLength(2), topic, limits).ok());
  EXPECT_EQ(topic, "ab");
  topic = "unchanged";
  auto long_topic = DecodeOneTopicPacked("abc" + header + TopicLength(3), topic, limits);
  ASSERT_FALSE(long_topic.ok());
  EXPECT_EQ(long_topic.error().code, DecodeErrc::kFrameTooLarge);
  // The header and body rules and limits are the packed form's, applied after the topic.
  EXPECT_EQ(DecodeOneTopicPacked("ab*body" + TopicLength(2), topic).error().code,
            DecodeErrc::kHeaderNotArrayOrMap);
  EXPECT_EQ(DecodeOneTopicPacked("ab" + header.substr(0, 10) + TopicLength(2), topic).error().code,
            DecodeErrc::kMalformedHeader);
  limits = {};
  limits.max_body_bytes = 4;
  EXPECT_TRUE(DecodeOneTopicPacked("ab" + header + "1234" + TopicLength(2), topic, limits).ok());
  EXPECT_EQ(
      DecodeOneTopicPacked("ab" + header + "12345" + TopicLength(2), topic, limits).error().code,
      DecodeErrc::kFrameTooLarge);
  // A frame that is only a topic (a three-frame message's first frame on its own) is rejected.
  topic = "unchanged";
  EXPECT_FALSE(DecodeOneTopicPacked("orders", topic).ok());
  EXPECT_EQ(topic, "unchanged");  // left alone on failure
}

TEST(EnvelopeCodecTest, DamagedTopicPackedFramesNeverCrash) {
  Envelope envelope = Envelope::New();
  envelope.seq = 9;
  envelope.stream = "s";
  std::string scratch;
  zmq::message_t frame = EncodeTopicPacked("topic", envelope, "body", scratch);
  const std::string valid(frame.data<char>(), frame.size());
  std::string topic;
  for (std::size_t length = 0; length < valid.size(); ++length) {
    (void)DecodeOneTopicPacked(valid.substr(0, length), topic);
    (void)DecodeOneTopicPacked(valid.substr(valid.size() - length), topic);
  }
  for (std::size_t i = 0; i < valid.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = valid;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      (void)DecodeOneTopicPacked(damaged, topic);
    }
  }
  EXPECT_TRUE(DecodeOneTopicPacked(valid, topic).ok());
  EXPECT_EQ(topic, "topic");
}

}  // namespace
}  // namespace zmqkit
