#include "storage/journal_reader.h"

#include <algorithm>

#include "storage/crc32c.h"
#include "util/coding.h"

namespace zmqkit::internal {

using journal::kBlockSize;
using journal::kHeaderSize;

namespace {

std::uint32_t DecodeFixed32(const char* p) { return static_cast<std::uint32_t>(DecodeLittleEndian(p, 4)); }

struct Header {
  std::uint32_t masked_crc;
  std::size_t length;
  std::uint8_t type;
};

Header ParseHeader(const char* p) {
  return {DecodeFixed32(p),
          static_cast<std::size_t>(DecodeLittleEndian(p + 4, 2)),
          static_cast<std::uint8_t>(p[6])};
}

bool ChecksumMatches(const Header& header, const char* type_and_payload) {
  // The checksum covers the type byte (at header offset 6) and the payload right after it.
  return crc32c::Unmask(header.masked_crc) == crc32c::Value(type_and_payload, 1 + header.length);
}

}  // namespace

JournalReader::JournalReader(SequentialFile* file, Reporter* reporter)
    : file_(file), reporter_(reporter), scratch_(new char[kBlockSize]) {}

bool JournalReader::ReadBlock() {
  if (eof_) return false;
  block_start_ += block_.size();
  std::string_view read;
  status_ = file_->Read(kBlockSize, &read, scratch_.get());
  if (!status_.ok()) {
    eof_ = true;
    block_ = {};
    return false;
  }
  block_ = read;
  position_ = 0;
  file_end_ = block_start_ + block_.size();
  if (block_.size() < kBlockSize) eof_ = true;
  return !block_.empty();
}

bool JournalReader::FragmentAt(std::size_t position, bool record_start) const {
  if (block_.size() - position < kHeaderSize) return false;
  Header header = ParseHeader(block_.data() + position);
  if (header.type == journal::kZeroType || header.type > journal::kMaxRecordType) return false;
  if (record_start && header.type != journal::kFullType && header.type != journal::kFirstType) {
    return false;
  }
  if (kHeaderSize + header.length > block_.size() - position) return false;
  return ChecksumMatches(header, block_.data() + position + 6);
}

bool JournalReader::ResumesHere(std::size_t position) const {
  // A fragment at a block start is where the writer began that block: a real one.
  if (position == 0) return FragmentAt(0, /*record_start=*/false);
  // Elsewhere only a record starts (MIDDLE and LAST always begin a block), and what passes for one
  // could lie inside a damaged record's payload — a message body may hold any bytes. So it must
  // also end where the writer's next fragment would begin: the block's end or trailer, another
  // valid record, or nothing but the zeros at the end of the file.
  if (!FragmentAt(position, /*record_start=*/true)) return false;
  const Header header = ParseHeader(block_.data() + position);
  const std::size_t end = position + kHeaderSize + header.length;
  if (header.type == journal::kFirstType) return end == block_.size();
  if (block_.size() - end < kHeaderSize) return true;
  if (FragmentAt(end, /*record_start=*/true)) return true;
  return eof_ && std::all_of(block_.begin() + static_cast<std::ptrdiff_t>(end), block_.end(),
                             [](char c) { return c == 0; });
}

JournalReader::Fragment JournalReader::ReadFragment(journal::RecordType* type,
                                                    std::string_view* payload,
                                                    std::uint64_t* fragment_offset,
                                                    std::string* damage) {
  for (;;) {
    const std::size_t left = block_.size() - position_;
    if (left < kHeaderSize) {
      if (block_.size() == kBlockSize || left == 0) {
        // A trailer (or the exact end of a block): the next fragment starts in the next block.
        if (!ReadBlock()) return Fragment::kEnd;
        continue;
      }
      *damage = "the segment ends inside a fragment header";
      return Fragment::kDamage;
    }
    const char* at = block_.data() + position_;
    Header header = ParseHeader(at);
    if (header.type == journal::kZeroType && header.length == 0 && header.masked_crc == 0) {
      *damage = "zero bytes where a fragment header should be";
      return Fragment::kDamage;
    }
    if (kHeaderSize + header.length > left) {
      *damage = block_.size() < kBlockSize ? "the segment ends inside a fragment"
                                           : "a fragment length runs past its block";
      return Fragment::kDamage;
    }
    if (header.type == journal::kZeroType || header.type > journal::kMaxRecordType) {
      *damage = "unknown fragment type " + std::to_string(header.type);
      return Fragment::kDamage;
    }
    if (!ChecksumMatches(header, at + 6)) {
      *damage = "checksum mismatch";
      return Fragment::kDamage;
    }
    *type = static_cast<journal::RecordType>(header.type);
    *payload = std::string_view(at + kHeaderSize, header.length);
    *fragment_offset = block_start_ + position_;
    position_ += kHeaderSize + header.length;
    return Fragment::kOk;
  }
}

bool JournalReader::Resync(std::uint64_t damage_offset, const std::string& reason) {
  // The damaged length may be the broken part, so it is not trusted: every later offset is a
  // candidate. Finding a whole fragment anywhere after the damage means the bytes were changed
  // after they were written, not cut short by a crash: corruption, never a torn tail, because what
  // follows may be confirmed records.
  std::size_t from = position_ + 1;
  for (;;) {
    for (std::size_t at = from; at < block_.size(); ++at) {
      if (ResumesHere(at)) {
        position_ = at;
        if (reporter_) reporter_->Corruption(damage_offset, block_start_ + at - damage_offset, reason);
        return true;
      }
    }
    if (!ReadBlock()) break;
    from = 0;
  }
  if (!status_.ok()) return false;
  tail_.torn = true;
  tail_.reason = reason;
  return false;
}

bool JournalReader::ReadRecord(std::string* record, std::uint64_t* offset) {
  record->clear();
  bool assembling = false;
  std::uint64_t record_start = 0;
  if (block_.empty() && !eof_ && !ReadBlock()) {
    tail_.valid_end = 0;
    return false;
  }
  for (;;) {
    journal::RecordType type;
    std::string_view payload;
    std::uint64_t fragment_offset = 0;
    std::string damage;
    const Fragment fragment = ReadFragment(&type, &payload, &fragment_offset, &damage);
    if (fragment == Fragment::kEnd) {
      if (!status_.ok()) return false;
      tail_.valid_end = last_record_end_;
      tail_.dropped = file_end_ - last_record_end_;
      if (assembling) {
        tail_.torn = true;
        tail_.reason = "the segment ends inside a record (its last fragment is missing)";
      }
      return false;
    }
    if (fragment == Fragment::kDamage) {
      const std::uint64_t damage_offset = assembling ? record_start : block_start_ + position_;
      assembling = false;
      record->clear();
      if (!Resync(damage_offset, damage)) {
        tail_.valid_end = last_record_end_;
        tail_.dropped = file_end_ - last_record_end_;
        return false;
      }
      continue;
    }
    switch (type) {
      case journal::kFullType:
      case journal::kFirstType:
        if (assembling && reporter_) {
          reporter_->Corruption(record_start, fragment_offset - record_start,
                                "a record's last fragment is missing (a new record started)");
        }
        record->assign(payload);
        record_start = fragment_offset;
        if (type == journal::kFullType) {
          last_record_end_ = block_start_ + position_;
          *offset = record_start;
          return true;
        }
        assembling = true;
        break;
      case journal::kMiddleType:
      case journal::kLastType:
        if (!assembling) {
          if (reporter_) {
            reporter_->Corruption(fragment_offset, journal::kHeaderSize + payload.size(),
                                  "a fragment continues a record that never started");
          }
          break;
        }
        record->append(payload);
        if (type == journal::kLastType) {
          last_record_end_ = block_start_ + position_;
          *offset = record_start;
          return true;
        }
        break;
      default:
        break;
    }
  }
}

}  // namespace zmqkit::internal
