#include "storage/journal_writer.h"

#include <algorithm>

#include "storage/crc32c.h"
#include "util/coding.h"

namespace zmqkit::internal {

using journal::kBlockSize;
using journal::kHeaderSize;

JournalWriter::JournalWriter(WritableFile* dest, std::uint64_t dest_length)
    : dest_(dest),
      offset_(dest_length),
      synced_offset_(dest_length),
      block_offset_(static_cast<std::size_t>(dest_length % kBlockSize)) {
  for (std::uint8_t type = 0; type <= journal::kMaxRecordType; ++type) {
    const char byte = static_cast<char>(type);
    type_crc_[type] = crc32c::Value(&byte, 1);
  }
}

Status JournalWriter::AddRecord(std::string_view record) {
  const char* data = record.data();
  std::size_t left = record.size();
  // An empty record is still one FULL fragment with no payload.
  bool begin = true;
  do {
    const std::size_t leftover = kBlockSize - block_offset_;
    if (leftover < kHeaderSize) {
      // Trailer: fewer than 7 bytes cannot hold a header; zero them and move to the next block.
      if (leftover > 0) {
        static constexpr char kZeros[kHeaderSize] = {};
        if (Status s = dest_->Append(std::string_view(kZeros, leftover)); !s.ok()) return s;
        offset_ += leftover;
      }
      block_offset_ = 0;
    }
    // Invariant: we never leave fewer than kHeaderSize bytes in a block unwritten but for the trailer.
    const std::size_t available = kBlockSize - block_offset_ - kHeaderSize;
    const std::size_t fragment_length = std::min(left, available);
    const bool end = left == fragment_length;
    journal::RecordType type = begin && end ? journal::kFullType
                               : begin      ? journal::kFirstType
                               : end        ? journal::kLastType
                                            : journal::kMiddleType;
    if (Status s = EmitFragment(type, data, fragment_length); !s.ok()) return s;
    data += fragment_length;
    left -= fragment_length;
    begin = false;
  } while (left > 0);
  return Status::Ok();
}

Status JournalWriter::EmitFragment(journal::RecordType type, const char* data, std::size_t length) {
  char header[kHeaderSize];
  const std::uint32_t crc = crc32c::Mask(crc32c::Extend(type_crc_[type], data, length));
  EncodeLittleEndian(header, crc, 4);
  EncodeLittleEndian(header + 4, length, 2);
  header[6] = static_cast<char>(type);
  if (Status s = dest_->Append(std::string_view(header, kHeaderSize)); !s.ok()) return s;
  if (Status s = dest_->Append(std::string_view(data, length)); !s.ok()) return s;
  block_offset_ += kHeaderSize + length;
  offset_ += kHeaderSize + length;
  return Status::Ok();
}

Status JournalWriter::Sync() {
  Status status = dest_->Sync();
  if (status.ok()) {
    synced_offset_ = offset_;
    return status;
  }
  if (Status undone = dest_->Truncate(synced_offset_); !undone.ok()) {
    return Status::IOError(status.message() + "; and cutting back failed: " + undone.message());
  }
  offset_ = synced_offset_;
  block_offset_ = static_cast<std::size_t>(offset_ % kBlockSize);
  return status;
}

}  // namespace zmqkit::internal
