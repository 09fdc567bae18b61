// Fuzz target: recovery on arbitrary bytes. The bytes are read as a journal segment
// (docs/journal-format.md) and every record the reader returns is replayed into a broker core, as
// start-up does. Neither may crash, hang or read out of bounds: damage is reported, skipped or
// refused with a Status.
#include <cstdlib>
#include <cstring>
#include <string>

#include "broker/core/broker_core.h"
#include "storage/file.h"
#include "storage/journal_reader.h"

namespace {

class BytesFile final : public zmqkit::internal::SequentialFile {
 public:
  explicit BytesFile(std::string_view bytes) : bytes_(bytes) {}
  zmqkit::Status Read(std::size_t n, std::string_view* result, char* scratch) override {
    n = std::min(n, bytes_.size() - position_);
    std::memcpy(scratch, bytes_.data() + position_, n);
    position_ += n;
    *result = std::string_view(scratch, n);
    return zmqkit::Status::Ok();
  }

 private:
  std::string_view bytes_;
  std::size_t position_ = 0;
};

class CountingReporter final : public zmqkit::internal::JournalReader::Reporter {
 public:
  void Corruption(std::uint64_t, std::uint64_t bytes, const std::string& reason) override {
    if (bytes == 0 || reason.empty()) std::abort();  // a report says what and how much
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  BytesFile file(std::string_view(reinterpret_cast<const char*>(data), size));
  CountingReporter reporter;
  zmqkit::internal::JournalReader reader(&file, &reporter);
  zmqkit::internal::CoreOptions options;
  zmqkit::internal::BrokerCore core(options);
  const zmqkit::TimePoint now{};
  std::string record;
  std::uint64_t offset = 0;
  std::uint64_t last_offset = 0;
  bool first = true;
  while (reader.ReadRecord(&record, &offset)) {
    if (!first && offset <= last_offset) std::abort();  // the reader must move forward
    if (offset >= size) std::abort();
    first = false;
    last_offset = offset;
    (void)core.Replay(record, now);
  }
  const auto& tail = reader.tail();
  if (tail.valid_end + tail.dropped > size) std::abort();
  return 0;
}
