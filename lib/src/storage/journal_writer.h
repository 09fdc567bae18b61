// JournalWriter: appends logical records to a journal segment in the physical format of
// docs/journal-format.md (blocks, fragments, masked CRC32C).
#ifndef ZMQKIT_SRC_STORAGE_JOURNAL_WRITER_H_
#define ZMQKIT_SRC_STORAGE_JOURNAL_WRITER_H_

#include <array>
#include <cstdint>
#include <string_view>

#include "storage/file.h"
#include "storage/journal_format.h"
#include "zmqkit/status.h"

namespace zmqkit::internal {

class JournalWriter {
 public:
  // Appends to `*dest`, which already holds `dest_length` bytes written in this format (0 for a
  // new segment). "*dest" must remain live while this writer is in use.
  JournalWriter(WritableFile* dest, std::uint64_t dest_length);
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  // Appends one logical record (buffered: durable only after Sync()).
  Status AddRecord(std::string_view record);
  // Makes every record added so far durable. If that fails, the records added since the last
  // successful Sync are discarded — the file is cut back to it — so the segment never holds a
  // partial record before later ones; the caller reports those records as not stored.
  Status Sync();

  // Bytes in the segment including unsynced records, and up to the last successful Sync.
  std::uint64_t offset() const { return offset_; }
  std::uint64_t synced_offset() const { return synced_offset_; }

 private:
  Status EmitFragment(journal::RecordType type, const char* data, std::size_t length);

  WritableFile* dest_;
  std::uint64_t offset_;
  std::uint64_t synced_offset_;
  std::size_t block_offset_;  // offset_ % kBlockSize: where the next fragment starts in its block
  // crc32c of each type byte, precomputed so a fragment's checksum only adds its payload.
  std::array<std::uint32_t, journal::kMaxRecordType + 1> type_crc_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_STORAGE_JOURNAL_WRITER_H_
