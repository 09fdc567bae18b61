// The args frame codec (docs/protocol.md, section 1): what a writer writes, a reader reads back; and
// what a peer may send — a duplicate key, a wrong type, a map made huge — is refused or answered
// without harm.
#include "broker/protocol.h"

#include <gtest/gtest.h>

#include <chrono>

namespace zmqkit::internal::protocol {
namespace {

std::string_view View(const zmq::message_t& frame) { return {frame.data<char>(), frame.size()}; }

TEST(ArgsTest, WhatIsWrittenIsReadBack) {
  zmq::message_t frame = ArgsWriter(4)
                             .Uint("seq", 42)
                             .Str("key", "orders")
                             .Bool("requeue", true)
                             .UintList("tags", {1, 2, 300000})
                             .Finish();
  auto args = Args::Parse(View(frame));
  ASSERT_TRUE(args.ok()) << args.error().ToString();
  EXPECT_EQ(*args->Uint("seq"), 42u);
  EXPECT_EQ(*args->Str("key"), "orders");
  EXPECT_TRUE(*args->Bool("requeue"));
  EXPECT_EQ(*args->UintList("tags"), (std::vector<std::uint64_t>{1, 2, 300000}));
  EXPECT_TRUE(args->Has("seq"));
  EXPECT_FALSE(args->Has("rid"));
  EXPECT_EQ(*args->Uint("rid", 7), 7u) << "an absent key reads as its fallback";
  EXPECT_FALSE(args->Uint("rid").ok()) << "an absent key without a fallback is an error";
  EXPECT_FALSE(args->Uint("key").ok()) << "a str is not an integer";
  EXPECT_FALSE(args->Str("seq").ok()) << "an integer is not a str";
}

// The keys point into storage the parsed args own: they stay valid after the frame is gone and
// after the args are moved.
TEST(ArgsTest, ParsedArgsOutliveTheirFrame) {
  std::optional<Args> kept;
  {
    zmq::message_t frame = ArgsWriter(2).Str("exchange", "a-longer-exchange-name").Uint("seq", 9).Finish();
    auto args = Args::Parse(View(frame));
    ASSERT_TRUE(args.ok());
    kept.emplace(std::move(*args));
  }
  EXPECT_EQ(*kept->Str("exchange"), "a-longer-exchange-name");
  EXPECT_EQ(*kept->Uint("seq"), 9u);
}

msgpack::sbuffer MapWithKeys(std::size_t count, bool repeat_first_at_end) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(static_cast<std::uint32_t>(count));
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t name = repeat_first_at_end && i + 1 == count ? 0 : i;
    std::string key = "k";
    key.append(std::to_string(name));
    PackStr(packer, key);
    packer.pack_uint64(i);
  }
  return buffer;
}

TEST(ArgsTest, ADuplicateKeyIsRefusedInASmallMapAndInALargeOne) {
  for (std::size_t count : {2, 16, 17, 1000}) {
    auto unique = MapWithKeys(count, false);
    EXPECT_TRUE(Args::Parse({unique.data(), unique.size()}).ok()) << count << " keys";
    auto repeated = MapWithKeys(count, true);
    auto args = Args::Parse({repeated.data(), repeated.size()});
    ASSERT_FALSE(args.ok()) << count << " keys";
    EXPECT_NE(args.error().message().find("appears twice"), std::string::npos);
  }
}

// A peer may send one args map with a few hundred thousand keys; checking them pairwise would keep
// the broker busy for minutes while every other client waits. This is a guard against that
// (quadratic: tens of seconds at least), not a speed figure.
TEST(ArgsTest, AHugeMapIsCheckedInLinearithmicTime) {
  auto huge = MapWithKeys(300000, true);
  const auto started = std::chrono::steady_clock::now();
  auto args = Args::Parse({huge.data(), huge.size()});
  EXPECT_FALSE(args.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

TEST(ArgsTest, WhatIsNotOneMapWithStrKeysIsRefused) {
  msgpack::sbuffer array;
  msgpack::packer<msgpack::sbuffer>(array).pack_array(0);
  EXPECT_FALSE(Args::Parse({array.data(), array.size()}).ok());
  msgpack::sbuffer int_key;
  msgpack::packer<msgpack::sbuffer> packer(int_key);
  packer.pack_map(1);
  packer.pack_uint64(1);
  packer.pack_uint64(2);
  EXPECT_FALSE(Args::Parse({int_key.data(), int_key.size()}).ok());
  zmq::message_t frame = ArgsWriter(1).Uint("seq", 1).Finish();
  std::string trailing(View(frame));
  trailing.push_back('\x01');
  EXPECT_FALSE(Args::Parse(trailing).ok());
  EXPECT_FALSE(Args::Parse(std::string_view("\x81\xa3seq", 5)).ok()) << "truncated";
}

}  // namespace
}  // namespace zmqkit::internal::protocol
