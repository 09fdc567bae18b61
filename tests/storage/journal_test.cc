// Journal physical layer tests in the style of LevelDB's db/log_test.cc: in-memory files, helpers
// that damage bytes on purpose, one test per reader branch, every block-boundary case.
#include <gtest/gtest.h>

#include <random>

#include "helpers/test_support.h"
#include "storage/crc32c.h"
#include "storage/journal_format.h"
#include "storage/journal_reader.h"
#include "storage/journal_writer.h"

namespace zmqkit::internal {
namespace {

using journal::kBlockSize;
using journal::kHeaderSize;

std::string BigString(const std::string& partial, std::size_t n) {
  std::string result;
  while (result.size() < n) result.append(partial);
  result.resize(n);
  return result;
}

std::string NumberString(int n) { return std::to_string(n) + "."; }

std::string RandomSkewedString(int i, std::mt19937& random) {
  return BigString(NumberString(i), random() % (1 << (random() % 18)));
}

// A WritableFile in memory, with failures on demand.
class StringDest : public WritableFile {
 public:
  Status Append(std::string_view data) override {
    if (append_error) return Status::ResourceExhausted("injected: no space left on device");
    contents.append(data);
    return Status::Ok();
  }
  Status Flush() override { return Status::Ok(); }
  Status Sync() override {
    ++syncs;
    if (sync_error) return Status::IOError("injected: sync failed");
    return Status::Ok();
  }
  Status Truncate(std::uint64_t length) override {
    contents.resize(length);
    return Status::Ok();
  }

  std::string contents;
  int syncs = 0;
  bool append_error = false;
  bool sync_error = false;
};

// A SequentialFile over a string, with a read error on demand.
class StringSource : public SequentialFile {
 public:
  explicit StringSource(std::string_view contents) : contents_(contents) {}
  Status Read(std::size_t n, std::string_view* result, char* scratch) override {
    if (force_error) return Status::IOError("injected: read error");
    n = std::min(n, contents_.size());
    std::copy(contents_.begin(), contents_.begin() + static_cast<std::ptrdiff_t>(n), scratch);
    *result = std::string_view(scratch, n);
    contents_.remove_prefix(n);
    return Status::Ok();
  }
  bool force_error = false;

 private:
  std::string_view contents_;
};

class ReportCollector : public JournalReader::Reporter {
 public:
  void Corruption(std::uint64_t offset, std::uint64_t bytes, const std::string& reason) override {
    dropped_bytes += bytes;
    offsets.push_back(offset);
    message.append(reason).append("; ");
  }
  std::uint64_t dropped_bytes = 0;
  std::vector<std::uint64_t> offsets;
  std::string message;
};

class JournalTest : public ::testing::Test {
 protected:
  JournalTest() : writer_(std::make_unique<JournalWriter>(&dest_, 0)) {}

  void Write(const std::string& record) {
    ASSERT_TRUE(writer_->AddRecord(record).ok());
    ASSERT_TRUE(writer_->Sync().ok());
  }
  std::size_t WrittenBytes() const { return dest_.contents.size(); }

  // The next record, "EOF" at the end (torn or clean: see tail()), "ERROR" on a read error.
  std::string Read() {
    if (!reader_) {
      source_ = std::make_unique<StringSource>(dest_.contents);
      source_->force_error = force_read_error_;
      reader_ = std::make_unique<JournalReader>(source_.get(), &report_);
    }
    std::string record;
    std::uint64_t offset = 0;
    if (reader_->ReadRecord(&record, &offset)) return record;
    return reader_->status().ok() ? "EOF" : "ERROR";
  }
  const JournalReader::Tail& tail() const { return reader_->tail(); }

  void IncrementByte(std::size_t offset, int delta) {
    dest_.contents[offset] = static_cast<char>(dest_.contents[offset] + delta);
  }
  void SetByte(std::size_t offset, char value) { dest_.contents[offset] = value; }
  void ShrinkSize(std::size_t bytes) { dest_.contents.resize(dest_.contents.size() - bytes); }
  // Recomputes the checksum of the fragment at `header_offset` with `length` payload bytes, so a
  // test can damage a field without the checksum catching it first.
  void FixChecksum(std::size_t header_offset, std::size_t length) {
    std::uint32_t crc = crc32c::Mask(crc32c::Value(&dest_.contents[header_offset + 6], 1 + length));
    for (int i = 0; i < 4; ++i) dest_.contents[header_offset + i] = static_cast<char>(crc >> (8 * i));
  }

  StringDest dest_;
  std::unique_ptr<JournalWriter> writer_;
  std::unique_ptr<StringSource> source_;
  std::unique_ptr<JournalReader> reader_;
  ReportCollector report_;
  bool force_read_error_ = false;
};

TEST_F(JournalTest, Empty) {
  EXPECT_EQ(Read(), "EOF");
  EXPECT_FALSE(tail().torn);
  EXPECT_EQ(tail().valid_end, 0u);
}

TEST_F(JournalTest, ReadWrite) {
  Write("foo");
  Write("bar");
  Write("");
  Write("xxxx");
  EXPECT_EQ(Read(), "foo");
  EXPECT_EQ(Read(), "bar");
  EXPECT_EQ(Read(), "");
  EXPECT_EQ(Read(), "xxxx");
  EXPECT_EQ(Read(), "EOF");
  EXPECT_EQ(Read(), "EOF");  // stays at the end
  EXPECT_FALSE(tail().torn);
  EXPECT_EQ(tail().valid_end, WrittenBytes());
  EXPECT_EQ(tail().dropped, 0u);
}

TEST_F(JournalTest, ManyBlocks) {
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(writer_->AddRecord(NumberString(i)).ok());
  ASSERT_TRUE(writer_->Sync().ok());
  for (int i = 0; i < 100000; ++i) ASSERT_EQ(Read(), NumberString(i));
  EXPECT_EQ(Read(), "EOF");
}

TEST_F(JournalTest, Fragmentation) {
  Write("small");
  Write(BigString("medium", 50000));
  Write(BigString("large", 100000));
  EXPECT_EQ(Read(), "small");
  EXPECT_EQ(Read(), BigString("medium", 50000));
  EXPECT_EQ(Read(), BigString("large", 100000));
  EXPECT_EQ(Read(), "EOF");
}

// Exactly kHeaderSize bytes left in the block: an empty FIRST goes there.
TEST_F(JournalTest, MarginalTrailer) {
  const std::size_t n = kBlockSize - 2 * kHeaderSize;
  Write(BigString("foo", n));
  EXPECT_EQ(WrittenBytes(), kBlockSize - kHeaderSize);
  Write("");
  Write("bar");
  EXPECT_EQ(Read(), BigString("foo", n));
  EXPECT_EQ(Read(), "");
  EXPECT_EQ(Read(), "bar");
  EXPECT_EQ(Read(), "EOF");
}

TEST_F(JournalTest, MarginalTrailerFollowedByARecord) {
  const std::size_t n = kBlockSize - 2 * kHeaderSize;
  Write(BigString("foo", n));
  Write("bar");
  // "bar" is an empty FIRST in the last 7 bytes of block 0 and a LAST in block 1.
  EXPECT_EQ(WrittenBytes(), kBlockSize + kHeaderSize + 3);
  EXPECT_EQ(Read(), BigString("foo", n));
  EXPECT_EQ(Read(), "bar");
  EXPECT_EQ(Read(), "EOF");
}

// Fewer than kHeaderSize bytes left: they are zeroed and skipped.
TEST_F(JournalTest, ShortTrailer) {
  const std::size_t n = kBlockSize - 2 * kHeaderSize + 4;
  Write(BigString("foo", n));
  EXPECT_EQ(WrittenBytes(), kBlockSize - kHeaderSize + 4);
  Write("");
  Write("bar");
  EXPECT_EQ(dest_.contents.substr(kBlockSize - 3, 3), std::string(3, '\0'));
  EXPECT_EQ(Read(), BigString("foo", n));
  EXPECT_EQ(Read(), "");
  EXPECT_EQ(Read(), "bar");
  EXPECT_EQ(Read(), "EOF");
}

TEST_F(JournalTest, AlignedEof) {
  const std::size_t n = kBlockSize - 2 * kHeaderSize + 4;
  Write(BigString("foo", n));
  EXPECT_EQ(Read(), BigString("foo", n));
  EXPECT_EQ(Read(), "EOF");
  EXPECT_FALSE(tail().torn);
}

TEST_F(JournalTest, ExactlyFullBlocks) {
  Write(BigString("a", kBlockSize - kHeaderSize));
  Write(BigString("b", kBlockSize - kHeaderSize));
  EXPECT_EQ(WrittenBytes(), 2 * kBlockSize);
  EXPECT_EQ(Read(), BigString("a", kBlockSize - kHeaderSize));
  EXPECT_EQ(Read(), BigString("b", kBlockSize - kHeaderSize));
  EXPECT_EQ(Read(), "EOF");
  EXPECT_FALSE(tail().torn);
}

TEST_F(JournalTest, RandomRead) {
  std::mt19937 write_random(301);
  for (int i = 0; i < 500; ++i) Write(RandomSkewedString(i, write_random));
  std::mt19937 read_random(301);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(Read(), RandomSkewedString(i, read_random));
  EXPECT_EQ(Read(), "EOF");
}

// ---- What a crash leaves: a torn tail, truncated at the last whole record. ----

TEST_F(JournalTest, TornTailInsideAHeader) {
  Write("foo");
  Write("bar");
  const std::size_t valid = WrittenBytes();
  Write("baz");
  ShrinkSize(3 + 4);  // "baz" keeps 3 of its 7 header bytes
  EXPECT_EQ(Read(), "foo");
  EXPECT_EQ(Read(), "bar");
  EXPECT_EQ(Read(), "EOF");
  EXPECT_TRUE(tail().torn);
  EXPECT_EQ(tail().valid_end, valid);
  EXPECT_EQ(tail().dropped, 3u);
  EXPECT_EQ(report_.dropped_bytes, 0u);
}

TEST_F(JournalTest, TornTailInsideAPayload) {
  Write("foo");
  Write("barbaz");
  ShrinkSize(2);
  EXPECT_EQ(Read(), "foo");
  EXPECT_EQ(Read(), "EOF");
  EXPECT_TRUE(tail().torn);
  EXPECT_EQ(tail().valid_end, kHeaderSize + 3);
  EXPECT_EQ(tail().dropped, kHeaderSize + 4);
}

TEST_F(JournalTest, TornTailMissingTheLastFragment) {
  Write("foo");
  Write(BigString("big", 2 * kBlockSize));  // FIRST, MIDDLE, LAST
  ShrinkSize(100);
  EXPECT_EQ(Read(), "foo");
  EXPECT_EQ(Read(), "EOF");
  EXPECT_TRUE(tail().torn);
  EXPECT_EQ(tail().valid_end, kHeaderSize + 3);
  EXPECT_EQ(report_.dropped_bytes, 0u);
}

TEST_F(JournalTest, TornTailWithABadChecksumInTheLastRecord) {
  Write("foo");
  Write("bar");
  IncrementByte(WrittenBytes() - 1, 1);  // the last record's bytes were not all written
  EXPECT_EQ(Read(), "foo");
  EXPECT_EQ(Read(), "EOF");
  EXPECT_TRUE(tail().torn);
  EXPECT_EQ(tail().reason, "checksum mismatch");
  EXPECT_EQ(tail().dropped, kHeaderSize + 3);
}

TEST_F(JournalTest, TornTailOfZeroBytes) {
  Write("foo");
  dest_.contents.append(100, '\0');  // the file grew but the data never arrived
  EXPECT_EQ(Read(), "foo");
  EXPECT_EQ(Read(), "EOF");
  EXPECT_TRUE(tail().torn);
  EXPECT_EQ(tail().valid_end, kHeaderSize + 3);
  EXPECT_EQ(tail().dropped, 100u);
}

// ---- Corruption in the middle: reported with its position, reading goes on. ----

// Two full blocks, each one record: damage in the first, the second is still valid.
class JournalCorruptionTest : public JournalTest {
 protected:
  void WriteTwoBlocks() {
    Write(BigString("a", kBlockSize - kHeaderSize));
    Write(BigString("b", kBlockSize - kHeaderSize));
  }
};

TEST_F(JournalCorruptionTest, ChecksumMismatchInTheMiddle) {
  WriteTwoBlocks();
  IncrementByte(100, 1);
  EXPECT_EQ(Read(), BigString("b", kBlockSize - kHeaderSize));
  EXPECT_EQ(Read(), "EOF");
  EXPECT_FALSE(tail().torn);
  EXPECT_EQ(report_.dropped_bytes, kBlockSize);
  EXPECT_EQ(report_.offsets, std::vector<std::uint64_t>{0});
  EXPECT_NE(report_.message.find("checksum mismatch"), std::string::npos);
}

TEST_F(JournalCorruptionTest, BadRecordType) {
  WriteTwoBlocks();
  SetByte(6, 100);
  FixChecksum(0, kBlockSize - kHeaderSize);
  EXPECT_EQ(Read(), BigString("b", kBlockSize - kHeaderSize));
  EXPECT_NE(report_.message.find("unknown fragment type 100"), std::string::npos);
  EXPECT_EQ(report_.dropped_bytes, kBlockSize);
}

TEST_F(JournalCorruptionTest, BadLength) {
  WriteTwoBlocks();
  SetByte(4, static_cast<char>(0xff));  // length 0x7fff.. runs past the block
  SetByte(5, 0x7f);
  EXPECT_EQ(Read(), BigString("b", kBlockSize - kHeaderSize));
  EXPECT_NE(report_.message.find("runs past its block"), std::string::npos);
}

TEST_F(JournalCorruptionTest, ZeroBytesInTheMiddle) {
  WriteTwoBlocks();
  std::fill(dest_.contents.begin(), dest_.contents.begin() + 200, '\0');
  EXPECT_EQ(Read(), BigString("b", kBlockSize - kHeaderSize));
  EXPECT_NE(report_.message.find("zero bytes"), std::string::npos);
}

// A flipped byte in the last block, with whole records after it: not a torn tail (a crash never
// leaves valid records after the bytes it cut), so the records after it are read, and the damage is
// reported with its place — never dropped as if the tail were torn.
TEST_F(JournalCorruptionTest, DamageInTheLastBlockWithRecordsAfterItIsCorruptionNotATornTail) {
  std::vector<std::size_t> starts;
  for (int i = 0; i < 20; ++i) {
    starts.push_back(WrittenBytes());
    Write("record " + std::to_string(i));
  }
  IncrementByte(starts[5] + kHeaderSize + 2, 1);  // inside record 5's payload
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Read(), "record " + std::to_string(i));
  for (int i = 6; i < 20; ++i) EXPECT_EQ(Read(), "record " + std::to_string(i));
  EXPECT_EQ(Read(), "EOF");
  EXPECT_FALSE(tail().torn);
  EXPECT_EQ(report_.offsets, std::vector<std::uint64_t>{starts[5]});
  EXPECT_EQ(report_.dropped_bytes, starts[6] - starts[5]) << "only the damaged record is skipped";
}

// After damage, reading resumes at the very next record, not at the next block: salvage keeps
// every record the damage did not touch.
TEST_F(JournalCorruptionTest, ReadingResumesAtTheNextRecordInsideTheSameBlock) {
  Write(BigString("a", 1000));
  Write(BigString("b", 1000));
  Write(BigString("c", 1000));
  Write(BigString("d", 40000));  // into the next block
  IncrementByte(kHeaderSize + 1000 + 3, 1);  // b's header: its length
  EXPECT_EQ(Read(), BigString("a", 1000));
  EXPECT_EQ(Read(), BigString("c", 1000));
  EXPECT_EQ(Read(), BigString("d", 40000));
  EXPECT_FALSE(tail().torn);
  EXPECT_EQ(report_.dropped_bytes, kHeaderSize + 1000);
}

// What looks like a record inside a damaged record's payload (a message body may hold a journal's
// bytes) is not one: reading resumes at the writer's next record.
TEST_F(JournalCorruptionTest, ARecordInsideADamagedPayloadIsNotTakenForOne) {
  // A whole fragment, checksum and all, as a payload, with more bytes after it.
  StringDest inner;
  JournalWriter inner_writer(&inner, 0);
  ASSERT_TRUE(inner_writer.AddRecord("FAKE").ok());
  Write(inner.contents + BigString("tail", 50));
  Write("real");
  IncrementByte(0, 1);  // the outer record's checksum
  EXPECT_EQ(Read(), "real");
  EXPECT_EQ(Read(), "EOF");
  EXPECT_EQ(report_.offsets, std::vector<std::uint64_t>{0});
}

// Damage with nothing valid after it is what a crash leaves, wherever in the last block it is.
TEST_F(JournalTest, DamageWithOnlyGarbageAfterItIsATornTail) {
  Write("kept");
  Write(BigString("cut", 500));
  const std::size_t end = WrittenBytes();
  dest_.contents.append(std::string(300, '\x5a'));  // bytes that never were a record
  IncrementByte(end - 100, 1);
  EXPECT_EQ(Read(), "kept");
  EXPECT_EQ(Read(), "EOF");
  EXPECT_TRUE(tail().torn);
  EXPECT_EQ(tail().valid_end, kHeaderSize + 4);
  EXPECT_TRUE(report_.offsets.empty());
}

TEST_F(JournalTest, UnexpectedMiddleType) {
  Write("foo");
  SetByte(6, journal::kMiddleType);
  FixChecksum(0, 3);
  Write("bar");
  EXPECT_EQ(Read(), "bar");
  EXPECT_EQ(report_.dropped_bytes, kHeaderSize + 3);
  EXPECT_NE(report_.message.find("never started"), std::string::npos);
}

TEST_F(JournalTest, UnexpectedLastType) {
  Write("foo");
  SetByte(6, journal::kLastType);
  FixChecksum(0, 3);
  Write("bar");
  EXPECT_EQ(Read(), "bar");
  EXPECT_EQ(report_.dropped_bytes, kHeaderSize + 3);
}

TEST_F(JournalTest, UnexpectedFullTypeAfterAFirst) {
  Write("foo");
  Write("bar");
  SetByte(6, journal::kFirstType);
  FixChecksum(0, 3);
  EXPECT_EQ(Read(), "bar");
  EXPECT_EQ(report_.dropped_bytes, kHeaderSize + 3);
  EXPECT_NE(report_.message.find("last fragment is missing"), std::string::npos);
}

TEST_F(JournalTest, UnexpectedFirstTypeAfterAFirst) {
  Write("foo");
  Write(BigString("bar", 100000));
  SetByte(6, journal::kFirstType);
  FixChecksum(0, 3);
  EXPECT_EQ(Read(), BigString("bar", 100000));
  EXPECT_EQ(report_.dropped_bytes, kHeaderSize + 3);
}

// Damage in the middle of a fragmented record: the rest of that record is skipped up to the next
// block that starts a valid fragment, and reading goes on from there.
TEST_F(JournalTest, DamageInsideAFragmentedRecordSkipsToTheNextValidBlock) {
  Write(BigString("x", 3 * kBlockSize));  // FIRST, MIDDLE, MIDDLE, LAST over 4 blocks
  Write("after");
  IncrementByte(kBlockSize + 100, 1);  // inside the first MIDDLE
  // The first MIDDLE fails; block 2 starts with a valid MIDDLE, which is an orphan, and so is the
  // LAST after it; then "after" is read.
  EXPECT_EQ(Read(), "after");
  EXPECT_FALSE(tail().torn);
  EXPECT_GE(report_.offsets.size(), 2u);
  EXPECT_EQ(report_.offsets[0], 0u);  // dropped from the start of the damaged record
}

TEST_F(JournalTest, ReadErrorIsAStatusNotACrash) {
  Write("foo");
  force_read_error_ = true;
  EXPECT_EQ(Read(), "ERROR");
  EXPECT_EQ(reader_->status().code(), StatusCode::kIOError);
}

// ---- The writer after a failed sync: the unsynced records are discarded, not half kept. ----

TEST_F(JournalTest, FailedSyncDiscardsTheUnsyncedRecords) {
  Write("kept");
  const std::size_t synced = WrittenBytes();
  ASSERT_TRUE(writer_->AddRecord("lost 1").ok());
  ASSERT_TRUE(writer_->AddRecord(BigString("lost 2", 40000)).ok());
  dest_.sync_error = true;
  EXPECT_EQ(writer_->Sync().code(), StatusCode::kIOError);
  EXPECT_EQ(WrittenBytes(), synced);
  EXPECT_EQ(writer_->offset(), synced);
  dest_.sync_error = false;
  Write("after recovery");
  EXPECT_EQ(Read(), "kept");
  EXPECT_EQ(Read(), "after recovery");
  EXPECT_EQ(Read(), "EOF");
  EXPECT_FALSE(tail().torn);
}

TEST_F(JournalTest, ReopenedWriterContinuesTheBlockLayout) {
  Write(BigString("a", 30000));
  writer_ = std::make_unique<JournalWriter>(&dest_, dest_.contents.size());
  Write(BigString("b", 10000));  // crosses the first block boundary from where the last left off
  EXPECT_EQ(Read(), BigString("a", 30000));
  EXPECT_EQ(Read(), BigString("b", 10000));
  EXPECT_EQ(Read(), "EOF");
}

// ---- Real files. ----

TEST(PosixJournalTest, WriteSyncReopenAppendRead) {
  testing::TempDir dir;
  const auto path = dir.path() / "000001.zkj";
  {
    auto file = PosixWritableFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.error().ToString();
    JournalWriter writer(file->get(), (*file)->size());
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(writer.AddRecord(NumberString(i)).ok());
    ASSERT_TRUE(writer.Sync().ok());
  }
  {
    auto file = PosixWritableFile::Open(path);
    ASSERT_TRUE(file.ok());
    JournalWriter writer(file->get(), (*file)->size());
    ASSERT_TRUE(writer.AddRecord(BigString("tail", 70000)).ok());
    ASSERT_TRUE(writer.Sync().ok());
  }
  auto source = PosixSequentialFile::Open(path);
  ASSERT_TRUE(source.ok());
  JournalReader reader(source->get(), nullptr);
  std::string record;
  std::uint64_t offset = 0;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(reader.ReadRecord(&record, &offset));
    ASSERT_EQ(record, NumberString(i));
  }
  ASSERT_TRUE(reader.ReadRecord(&record, &offset));
  EXPECT_EQ(record, BigString("tail", 70000));
  EXPECT_FALSE(reader.ReadRecord(&record, &offset));
  EXPECT_FALSE(reader.tail().torn);
  EXPECT_EQ(reader.tail().valid_end, std::filesystem::file_size(path));
}

TEST(PosixJournalTest, OpeningAMissingDirectoryIsAClearError) {
  auto file = PosixWritableFile::Open("/nonexistent-zmqkit-dir/000001.zkj");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.error().message().find("No such file or directory"), std::string::npos);
}

}  // namespace
}  // namespace zmqkit::internal
