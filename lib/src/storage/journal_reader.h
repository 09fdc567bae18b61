// JournalReader: reads logical records back from a journal segment, and tells a torn tail (what a
// crash leaves) from corruption in the middle (docs/journal-format.md, section 6).
#ifndef ZMQKIT_SRC_STORAGE_JOURNAL_READER_H_
#define ZMQKIT_SRC_STORAGE_JOURNAL_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "storage/file.h"
#include "storage/journal_format.h"
#include "zmqkit/status.h"

namespace zmqkit::internal {

class JournalReader {
 public:
  // Told about damage in the middle of a segment: the reader skipped `bytes` starting at `offset`.
  class Reporter {
   public:
    virtual ~Reporter() = default;
    virtual void Corruption(std::uint64_t offset, std::uint64_t bytes, const std::string& reason) = 0;
  };

  // How the segment ended, once ReadRecord() has returned false.
  struct Tail {
    bool torn = false;            // damage with nothing valid after it: a crash's torn tail
    std::uint64_t valid_end = 0;  // the end of the last whole logical record: truncate here
    std::uint64_t dropped = 0;    // bytes after valid_end (0 for a clean end)
    std::string reason;           // what the damage was, if torn
  };

  // "*file" must remain live while this reader is in use; `reporter` may be null (then corruption
  // is skipped silently — only for tests).
  JournalReader(SequentialFile* file, Reporter* reporter);
  JournalReader(const JournalReader&) = delete;
  JournalReader& operator=(const JournalReader&) = delete;

  // Reads the next logical record into `*record` and its starting offset into `*offset`. Returns
  // false at the end of the segment (clean or torn: see tail()) or on a read error (see status()).
  bool ReadRecord(std::string* record, std::uint64_t* offset);

  const Tail& tail() const { return tail_; }
  // Not OK if the file could not be read; then tail() is meaningless.
  const Status& status() const { return status_; }

 private:
  enum class Fragment { kOk, kEnd, kDamage };

  // Reads the next block of the file into block_. False at the end of the file.
  bool ReadBlock();
  Fragment ReadFragment(journal::RecordType* type, std::string_view* payload,
                        std::uint64_t* fragment_offset, std::string* damage);
  // Whether a fragment with a valid header and checksum, that fits in its block, starts at
  // block_[position]; `record_start`: and it is FULL or FIRST.
  bool FragmentAt(std::size_t position, bool record_start) const;
  // Whether reading can resume at block_[position] after damage: a valid fragment starts there
  // that is the writer's, not bytes inside a damaged payload that look like one.
  bool ResumesHere(std::size_t position) const;
  // After damage at `damage_offset`, found at position_: looks for the first later offset where
  // reading can resume. Found: reports the skipped bytes as corruption and returns true (reading
  // continues there). Not found before the end: records a torn tail and returns false.
  bool Resync(std::uint64_t damage_offset, const std::string& reason);

  SequentialFile* file_;
  Reporter* reporter_;
  std::unique_ptr<char[]> scratch_;
  std::string_view block_;           // the current block's bytes (in scratch_)
  std::uint64_t block_start_ = 0;    // file offset of block_[0]
  std::size_t position_ = 0;         // next unread byte in block_
  bool eof_ = false;                 // the last read returned less than a block
  std::uint64_t file_end_ = 0;       // bytes read from the file so far
  std::uint64_t last_record_end_ = 0;
  Tail tail_;
  Status status_;
};

}  // namespace zmqkit::internal

#endif  // ZMQKIT_SRC_STORAGE_JOURNAL_READER_H_
