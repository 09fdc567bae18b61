#include "broker/protocol.h"

#include <algorithm>

namespace zmqkit::internal::protocol {
namespace {

Status TypeError(std::string_view key, std::string_view expected) {
  return Status::InvalidArgument("args key \"" + std::string(key) + "\" must be " +
                                 std::string(expected));
}
Status Missing(std::string_view key) {
  return Status::InvalidArgument("args key \"" + std::string(key) + "\" is required");
}

// A zone for the next Args parsed on this thread: the last one, cleared, unless an Args still
// holds it. Commands are parsed one after another, so this is nearly always the same zone, and a
// zone of its own would cost each command two allocations. The first chunk fits the objects of
// any ordinary command; a bigger frame grows the zone, and clear() gives the growth back.
std::shared_ptr<msgpack::zone> ZoneForArgs() {
  constexpr std::size_t kFirstChunk = 2048;
  thread_local std::shared_ptr<msgpack::zone> last;
  if (last && last.use_count() == 1) {
    last->clear();
  } else {
    last = std::make_shared<msgpack::zone>(kFirstChunk);
  }
  return last;
}

}  // namespace

Result<Args> Args::Parse(std::string_view bytes) {
  Args args;
  msgpack::object root;
  try {
    // Bounded by the frame: no container can declare more entries than there are bytes.
    const std::size_t bound = bytes.size();
    const msgpack::unpack_limit limits(bound, bound, bound, bound, bound, 32);
    args.zone_ = ZoneForArgs();
    std::size_t offset = 0;
    root = msgpack::unpack(*args.zone_, bytes.data(), bytes.size(), offset, nullptr, nullptr, limits);
    if (offset != bytes.size()) return Status::InvalidArgument("bytes after the args map");
  } catch (const std::exception& error) {
    return Status::InvalidArgument(std::string("args frame is not msgpack: ") + error.what());
  }
  if (root.type != msgpack::type::MAP) return Status::InvalidArgument("args frame is not a map");
  args.values_.reserve(root.via.map.size);
  for (std::uint32_t i = 0; i < root.via.map.size; ++i) {
    const msgpack::object_kv& entry = root.via.map.ptr[i];
    if (entry.key.type != msgpack::type::STR) {
      return Status::InvalidArgument("args keys must be str");
    }
    args.values_.emplace_back(std::string_view(entry.key.via.str.ptr, entry.key.via.str.size),
                              entry.val);
  }
  // Pairwise for the few keys a real command has; sorted for a map a peer made huge, which must
  // not cost the broker quadratic time.
  constexpr std::size_t kPairwise = 16;
  bool duplicate = false;
  if (args.values_.size() <= kPairwise) {
    for (std::size_t i = 0; i < args.values_.size() && !duplicate; ++i) {
      for (std::size_t j = 0; j < i && !duplicate; ++j) {
        duplicate = args.values_[i].first == args.values_[j].first;
      }
    }
  } else {
    std::vector<std::string_view> keys;
    keys.reserve(args.values_.size());
    for (const auto& entry : args.values_) keys.push_back(entry.first);
    std::sort(keys.begin(), keys.end());
    duplicate = std::adjacent_find(keys.begin(), keys.end()) != keys.end();
  }
  if (duplicate) return Status::InvalidArgument("args key appears twice");
  return args;
}

const msgpack::object* Args::Find(std::string_view key) const {
  for (const auto& [name, value] : values_) {
    if (name == key) return &value;
  }
  return nullptr;
}

Result<std::uint64_t> Args::Uint(std::string_view key,
                                 std::optional<std::uint64_t> fallback) const {
  const msgpack::object* value = Find(key);
  if (value == nullptr) {
    if (fallback) return *fallback;
    return Missing(key);
  }
  if (value->type == msgpack::type::POSITIVE_INTEGER) return value->via.u64;
  return TypeError(key, "a non-negative integer");
}

Result<std::string> Args::Str(std::string_view key, std::optional<std::string> fallback) const {
  auto view = StrView(key, fallback ? std::optional<std::string_view>(*fallback) : std::nullopt);
  if (!view.ok()) return view.error();
  return std::string(*view);
}

Result<std::string_view> Args::StrView(std::string_view key,
                                       std::optional<std::string_view> fallback) const {
  const msgpack::object* value = Find(key);
  if (value == nullptr) {
    if (fallback) return *fallback;
    return Missing(key);
  }
  if (value->type == msgpack::type::STR) return std::string_view(value->via.str.ptr, value->via.str.size);
  return TypeError(key, "str");
}

Result<bool> Args::Bool(std::string_view key, std::optional<bool> fallback) const {
  const msgpack::object* value = Find(key);
  if (value == nullptr) {
    if (fallback) return *fallback;
    return Missing(key);
  }
  if (value->type == msgpack::type::BOOLEAN) return value->via.boolean;
  return TypeError(key, "a boolean");
}

Result<std::vector<std::uint64_t>> Args::UintList(std::string_view key) const {
  const msgpack::object* value = Find(key);
  if (value == nullptr) return Missing(key);
  if (value->type != msgpack::type::ARRAY) return TypeError(key, "an array of integers");
  std::vector<std::uint64_t> values;
  values.reserve(value->via.array.size);
  for (std::uint32_t i = 0; i < value->via.array.size; ++i) {
    const msgpack::object& item = value->via.array.ptr[i];
    if (item.type != msgpack::type::POSITIVE_INTEGER) return TypeError(key, "an array of integers");
    values.push_back(item.via.u64);
  }
  return values;
}

void PackStr(msgpack::packer<msgpack::sbuffer>& packer, std::string_view text) {
  packer.pack_str(static_cast<std::uint32_t>(text.size()));
  packer.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

ArgsWriter& ArgsWriter::Key(std::string_view key) {
  ++written_;
  PackStr(packer_, key);
  return *this;
}

ArgsWriter& ArgsWriter::Uint(std::string_view key, std::uint64_t value) {
  Key(key);
  packer_.pack_uint64(value);
  return *this;
}

ArgsWriter& ArgsWriter::Str(std::string_view key, std::string_view value) {
  Key(key);
  PackStr(packer_, value);
  return *this;
}

ArgsWriter& ArgsWriter::Bool(std::string_view key, bool value) {
  Key(key);
  if (value) {
    packer_.pack_true();
  } else {
    packer_.pack_false();
  }
  return *this;
}

ArgsWriter& ArgsWriter::UintList(std::string_view key, const std::vector<std::uint64_t>& values) {
  Key(key);
  packer_.pack_array(static_cast<std::uint32_t>(values.size()));
  for (std::uint64_t value : values) packer_.pack_uint64(value);
  return *this;
}

zmq::message_t ArgsWriter::Finish() {
  if (written_ != expected_) {
    // A bug in this file's callers, never peer input: the map header would lie about its length.
    throw std::logic_error("ArgsWriter: " + std::to_string(written_) + " entries written, " +
                           std::to_string(expected_) + " declared");
  }
  return zmq::message_t(buffer_.data(), buffer_.size());
}

zmq::message_t NoArgs() { return zmq::message_t("\x80", 1); }

std::vector<zmq::message_t> Frames(std::string_view command, zmq::message_t args,
                                   std::vector<zmq::message_t> payload) {
  std::vector<zmq::message_t> frames;
  frames.reserve(3 + payload.size());
  frames.emplace_back(kSignature.data(), kSignature.size());
  frames.emplace_back(command.data(), command.size());
  frames.push_back(std::move(args));
  for (auto& frame : payload) frames.push_back(std::move(frame));
  return frames;
}

}  // namespace zmqkit::internal::protocol
