// The journal's physical format — docs/journal-format.md, sections 2 to 4. Included by the writer,
// the reader and their tests, and nothing else.
#ifndef ZMQKIT_SRC_STORAGE_JOURNAL_FORMAT_H_
#define ZMQKIT_SRC_STORAGE_JOURNAL_FORMAT_H_

#include <cstddef>
#include <cstdint>

namespace zmqkit::internal::journal {

enum RecordType : std::uint8_t {
  kZeroType = 0,  // reserved: zero bytes are never a record
  kFullType = 1,
  kFirstType = 2,
  kMiddleType = 3,
  kLastType = 4,
};
inline constexpr std::uint8_t kMaxRecordType = kLastType;

inline constexpr std::size_t kBlockSize = 32768;
// Header is checksum (4 bytes, LE), length (2 bytes, LE), type (1 byte).
inline constexpr std::size_t kHeaderSize = 4 + 2 + 1;

}  // namespace zmqkit::internal::journal

#endif  // ZMQKIT_SRC_STORAGE_JOURNAL_FORMAT_H_
