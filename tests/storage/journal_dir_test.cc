// The journal as a directory of real segment files: recovery, locking, rollover, torn tails and
// damage in the middle.
#include "storage/journal.h"

#include <gtest/gtest.h>

#include <fstream>
#include <msgpack.hpp>

#include "helpers/test_support.h"

namespace zmqkit::internal {
namespace {

class JournalDirTest : public ::testing::Test {
 protected:
  JournalOptions Options(FsyncMode fsync = FsyncMode::kAlways) {
    JournalOptions options;
    options.directory = dir_.path();
    options.fsync = fsync;
    return options;
  }
  // Opens the journal, collecting what recovery replays.
  Result<std::unique_ptr<Journal>> Open(JournalOptions options, std::vector<std::string>* replayed,
                                        RecoveryReport* report = nullptr) {
    return Journal::Open(options, [replayed](std::string_view record) {
      replayed->emplace_back(record);
      return Status::Ok();
    }, report);
  }
  std::filesystem::path Segment(int number) {
    char name[32];
    std::snprintf(name, sizeof name, "%06d.zkj", number);
    return dir_.path() / "journal" / name;
  }
  void WriteRecords(int count, JournalOptions options) {
    std::vector<std::string> ignored;
    auto journal = Open(options, &ignored);
    ASSERT_TRUE(journal.ok()) << journal.error().ToString();
    for (int i = 0; i < count; ++i) (*journal)->Append("record " + std::to_string(i));
    ASSERT_TRUE((*journal)->Commit().ok());
  }
  void Damage(const std::filesystem::path& path, std::uint64_t offset) {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(offset));
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x40);
    file.seekp(static_cast<std::streamoff>(offset));
    file.write(&byte, 1);
  }

  testing::TempDir dir_;
};

TEST_F(JournalDirTest, RecordsComeBackInOrderAfterReopening) {
  WriteRecords(100, Options());
  std::vector<std::string> replayed;
  RecoveryReport report;
  auto journal = Open(Options(), &replayed, &report);
  ASSERT_TRUE(journal.ok()) << journal.error().ToString();
  ASSERT_EQ(replayed.size(), 100u);
  EXPECT_EQ(replayed.front(), "record 0");
  EXPECT_EQ(replayed.back(), "record 99");
  EXPECT_EQ(report.records, 100u);
  EXPECT_EQ(report.torn_bytes_dropped, 0u);
  (*journal)->Append("after reopening");
  ASSERT_TRUE((*journal)->Commit().ok());
  journal->reset();
  replayed.clear();
  ASSERT_TRUE(Open(Options(), &replayed).ok());
  EXPECT_EQ(replayed.back(), "after reopening");
}

TEST_F(JournalDirTest, OneBrokerPerDirectory) {
  std::vector<std::string> replayed;
  auto first = Open(Options(), &replayed);
  ASSERT_TRUE(first.ok());
  auto second = Open(Options(), &replayed);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.error().message().find("another broker"), std::string::npos);
}

TEST_F(JournalDirTest, SegmentsRollOverAndReplayInOrder) {
  JournalOptions options = Options();
  options.segment_bytes = 4096;
  {
    std::vector<std::string> ignored;
    auto journal = Open(options, &ignored);
    ASSERT_TRUE(journal.ok());
    for (int i = 0; i < 200; ++i) {
      (*journal)->Append(std::string(100, 'x') + std::to_string(i));
      ASSERT_TRUE((*journal)->Commit().ok());
    }
    EXPECT_GT((*journal)->segment(), 3u);
  }
  std::vector<std::string> replayed;
  RecoveryReport report;
  ASSERT_TRUE(Open(options, &replayed, &report).ok());
  ASSERT_EQ(replayed.size(), 200u);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(replayed[i], std::string(100, 'x') + std::to_string(i));
  EXPECT_GT(report.segments, 3u);
}

// Durability::kWritten is for records nothing sent waits on (acks): they must reach the file at
// once (safe from the process being killed) without the cost of a sync, and the next synced commit
// must cover them.
TEST_F(JournalDirTest, AWrittenCommitReachesTheFileUnsyncedAndTheNextSyncedCommitCoversIt) {
  JournalOptions options = Options(FsyncMode::kBatch);
  {
    std::vector<std::string> ignored;
    auto journal = Open(options, &ignored);
    ASSERT_TRUE(journal.ok());
    Journal& j = **journal;
    const std::uint64_t syncs = j.syncs();
    const auto size_before = std::filesystem::file_size(Segment(1));
    EXPECT_FALSE(j.unsynced_since());

    for (int i = 0; i < 3; ++i) j.Append("ack " + std::to_string(i));
    ASSERT_TRUE(j.Commit(Durability::kWritten).ok());
    EXPECT_EQ(j.syncs(), syncs);
    EXPECT_TRUE(j.unsynced_since());
    EXPECT_EQ(j.pending(), 0u);
    EXPECT_GT(std::filesystem::file_size(Segment(1)), size_before)
        << "handed to the OS, not buffered";

    // Nothing pending, but something unsynced: a synced commit syncs it; a second has nothing to
    // do.
    ASSERT_TRUE(j.Commit(Durability::kSynced).ok());
    EXPECT_EQ(j.syncs(), syncs + 1);
    EXPECT_FALSE(j.unsynced_since());
    ASSERT_TRUE(j.Commit(Durability::kSynced).ok());
    EXPECT_EQ(j.syncs(), syncs + 1);

    // One sync covers a written commit and the synced one after it.
    j.Append("ack 3");
    ASSERT_TRUE(j.Commit(Durability::kWritten).ok());
    j.Append("publish 4");
    ASSERT_TRUE(j.Commit(Durability::kSynced).ok());
    EXPECT_EQ(j.syncs(), syncs + 2);
    EXPECT_FALSE(j.unsynced_since());
  }
  std::vector<std::string> replayed;
  ASSERT_TRUE(Open(options, &replayed).ok());
  EXPECT_EQ(replayed, (std::vector<std::string>{"ack 0", "ack 1", "ack 2", "ack 3", "publish 4"}));
}

// Recovery treats damage in any segment but the newest as corruption, so a segment must be synced
// before the next one gets records, even when its last records were only written.
TEST_F(JournalDirTest, RollingOverSyncsWhatTheClosingSegmentLeftUnsynced) {
  JournalOptions options = Options(FsyncMode::kBatch);
  options.segment_bytes = 4096;
  std::vector<std::string> ignored;
  auto journal = Open(options, &ignored);
  ASSERT_TRUE(journal.ok());
  Journal& j = **journal;
  const std::uint64_t syncs = j.syncs();
  int written = 0;
  while (j.segment() == 1) {
    ASSERT_LT(written, 100) << "4096-byte segments roll over within 100 records of 100 bytes";
    j.Append(std::string(100, 'a'));
    ASSERT_TRUE(j.Commit(Durability::kWritten).ok());
    ++written;
    if (j.segment() == 1) {
      ASSERT_EQ(j.syncs(), syncs) << "no sync while segment 1 takes records";
    }
  }
  // The closing segment's sync, then the new segment's header.
  EXPECT_EQ(j.syncs(), syncs + 2);
  EXPECT_TRUE(j.unsynced_since()) << "the record that went into segment 2 is only written";
}

TEST_F(JournalDirTest, NeverModeNeverSyncsAndKeepsNoUnsyncedAge) {
  JournalOptions options = Options(FsyncMode::kNever);
  std::vector<std::string> ignored;
  auto journal = Open(options, &ignored);
  ASSERT_TRUE(journal.ok());
  const std::uint64_t syncs = (*journal)->syncs();
  (*journal)->Append("record");
  ASSERT_TRUE((*journal)->Commit(Durability::kWritten).ok());
  (*journal)->Append("record");
  ASSERT_TRUE((*journal)->Commit(Durability::kSynced).ok());
  EXPECT_EQ((*journal)->syncs(), syncs);
  EXPECT_FALSE((*journal)->unsynced_since());
}

TEST_F(JournalDirTest, ATornTailIsTruncatedAndReported) {
  WriteRecords(10, Options());
  const auto size = std::filesystem::file_size(Segment(1));
  std::filesystem::resize_file(Segment(1), size - 5);  // the last record loses its end
  std::vector<std::string> replayed;
  RecoveryReport report;
  auto journal = Open(Options(), &replayed, &report);
  ASSERT_TRUE(journal.ok()) << journal.error().ToString();
  EXPECT_EQ(replayed.size(), 9u);
  EXPECT_GT(report.torn_bytes_dropped, 0u);
  EXPECT_LT(std::filesystem::file_size(Segment(1)), size - 5);  // cut back to a whole record
  (*journal)->Append("continues cleanly");
  ASSERT_TRUE((*journal)->Commit().ok());
  journal->reset();
  replayed.clear();
  RecoveryReport second;
  ASSERT_TRUE(Open(Options(), &replayed, &second).ok());
  EXPECT_EQ(replayed.back(), "continues cleanly");
  EXPECT_EQ(second.torn_bytes_dropped, 0u);
}

TEST_F(JournalDirTest, DamageInTheMiddleRefusesToStartUnlessSalvaging) {
  // Big records so later blocks start with valid fragments after the damage.
  {
    std::vector<std::string> ignored;
    auto journal = Open(Options(), &ignored);
    ASSERT_TRUE(journal.ok());
    for (int i = 0; i < 6; ++i) (*journal)->Append(std::string(20000, static_cast<char>('a' + i)));
    ASSERT_TRUE((*journal)->Commit().ok());
  }
  Damage(Segment(1), 100);
  std::vector<std::string> replayed;
  auto refused = Open(Options(), &replayed);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), StatusCode::kCorruption);
  EXPECT_NE(refused.error().message().find("segment 1, offset"), std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find("--salvage"), std::string::npos);

  JournalOptions salvage = Options();
  salvage.salvage = true;
  replayed.clear();
  RecoveryReport report;
  auto salvaged = Open(salvage, &replayed, &report);
  ASSERT_TRUE(salvaged.ok()) << salvaged.error().ToString();
  EXPECT_FALSE(report.corruptions.empty());
  EXPECT_GE(replayed.size(), 4u);  // the damaged records are gone, the rest kept
  EXPECT_LT(replayed.size(), 6u);
  EXPECT_EQ(replayed.back(), std::string(20000, 'f'));
}

// A byte flipped in the newest segment's last block, with confirmed records after it, is not a
// torn tail: refusing names the place; salvage keeps every record but the damaged one.
TEST_F(JournalDirTest, DamageInTheNewestBlockWithRecordsAfterItIsNotDroppedAsATornTail) {
  WriteRecords(50, Options());
  // Record 20: after the header record and 20 records of 7 + 9 or 10 bytes each.
  std::vector<std::string> all;
  ASSERT_TRUE(Open(Options(), &all).ok());
  ASSERT_EQ(all.size(), 50u);
  const std::uint64_t size = std::filesystem::file_size(Segment(1));
  ASSERT_LT(size, 32768u) << "one block: the damage is in the newest segment's last block";
  Damage(Segment(1), size - 200);
  std::vector<std::string> replayed;
  auto refused = Open(Options(), &replayed);
  ASSERT_FALSE(refused.ok()) << "records after the damage were dropped as a torn tail";
  EXPECT_NE(refused.error().message().find("segment 1, offset"), std::string::npos)
      << refused.error().message();
  JournalOptions salvage = Options();
  salvage.salvage = true;
  replayed.clear();
  RecoveryReport report;
  ASSERT_TRUE(Open(salvage, &replayed, &report).ok());
  EXPECT_EQ(replayed.size(), 49u) << "all but the damaged record";
  EXPECT_EQ(report.torn_bytes_dropped, 0u);
  EXPECT_EQ(std::filesystem::file_size(Segment(1)), size) << "nothing was cut off";
}

// A damaged segment header: salvage still starts, and keeps every record of the segment.
TEST_F(JournalDirTest, ADamagedSegmentHeaderIsSalvagedKeepingItsRecords) {
  WriteRecords(10, Options());
  Damage(Segment(1), 10);  // inside the header record's payload
  std::vector<std::string> replayed;
  EXPECT_FALSE(Open(Options(), &replayed).ok());
  JournalOptions salvage = Options();
  salvage.salvage = true;
  replayed.clear();
  RecoveryReport report;
  auto salvaged = Open(salvage, &replayed, &report);
  ASSERT_TRUE(salvaged.ok()) << salvaged.error().ToString();
  EXPECT_EQ(replayed.size(), 10u);
  std::string all;
  for (const std::string& corruption : report.corruptions) all += corruption + "; ";
  EXPECT_NE(all.find("header is damaged"), std::string::npos) << all;
}

// A whole segment that vanished — from the middle, the start or the end — is corruption, not a
// quiet gap in the queues.
TEST_F(JournalDirTest, AMissingSegmentIsCorruptionWhereverItWas) {
  JournalOptions options = Options();
  options.segment_bytes = 256;
  for (int round = 0; round < 4; ++round) WriteRecords(20, options);  // several segments
  ASSERT_TRUE(std::filesystem::exists(Segment(4)));
  auto expect_missing = [&](int number, const std::string& phrase) {
    std::vector<std::string> replayed;
    auto refused = Open(options, &replayed);
    ASSERT_FALSE(refused.ok()) << "segment " << number << " gone unnoticed";
    EXPECT_NE(refused.error().message().find(phrase), std::string::npos) << refused.error().message();
  };
  const auto keep = dir_.path() / "kept";
  std::filesystem::create_directories(keep);
  for (int number : {2, 1}) {
    std::filesystem::copy_file(Segment(number), keep / "segment");
    std::filesystem::remove(Segment(number));
    expect_missing(number, "segment " + std::to_string(number) + " of the journal is missing");
    std::filesystem::rename(keep / "segment", Segment(number));
  }
  // The newest: nothing after it would show it existed but journal/NEWEST.
  std::uint64_t newest = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path() / "journal")) {
    if (entry.path().extension() == ".zkj") newest = std::max<std::uint64_t>(newest, std::stoull(entry.path().stem()));
  }
  std::filesystem::remove(Segment(static_cast<int>(newest)));
  expect_missing(static_cast<int>(newest), "NEWEST says segment " + std::to_string(newest));
  // Salvage starts, and says how many segments are gone.
  JournalOptions salvage = options;
  salvage.salvage = true;
  std::vector<std::string> replayed;
  RecoveryReport report;
  ASSERT_TRUE(Open(salvage, &replayed, &report).ok());
  EXPECT_EQ(report.segments_missing, 1u);
  // And from then on the journal is whole again.
  replayed.clear();
  ASSERT_TRUE(Open(options, &replayed).ok());
}

// A segment file that is another segment's copy says so in its header.
TEST_F(JournalDirTest, ASegmentWhoseHeaderNamesAnotherNumberIsCorruption) {
  JournalOptions options = Options();
  options.segment_bytes = 256;
  for (int round = 0; round < 2; ++round) WriteRecords(20, options);
  ASSERT_TRUE(std::filesystem::exists(Segment(2)));
  std::filesystem::copy_file(Segment(1), Segment(2), std::filesystem::copy_options::overwrite_existing);
  std::vector<std::string> replayed;
  auto refused = Open(options, &replayed);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("header says it is segment 1"), std::string::npos)
      << refused.error().message();
}

// Salvage skips records that name what the damage removed, counts them and starts; without salvage
// such a record refuses the start.
TEST_F(JournalDirTest, SalvageSkipsRecordsThatDoNotApplyAndCountsThem) {
  WriteRecords(10, Options());
  auto open = [&](bool salvage, RecoveryReport* report) {
    JournalOptions options = Options();
    options.salvage = salvage;
    return Journal::Open(options, [](std::string_view record) {
      return record == "record 3" || record == "record 7" ? Status::Corruption("names a lost message")
                                                          : Status::Ok();
    }, report);
  };
  RecoveryReport report;
  EXPECT_FALSE(open(false, &report).ok());
  RecoveryReport salvaged;
  ASSERT_TRUE(open(true, &salvaged).ok());
  EXPECT_EQ(salvaged.records, 8u);
  EXPECT_EQ(salvaged.records_unapplied, 2u);
  EXPECT_NE(salvaged.first_unapplied.find("names a lost message"), std::string::npos);
}

TEST_F(JournalDirTest, ACompleteSnapshotReplacesEverythingBeforeIt) {
  JournalOptions options = Options();
  options.segment_bytes = 4096;
  {
    std::vector<std::string> ignored;
    auto journal = Open(options, &ignored);
    ASSERT_TRUE(journal.ok());
    for (int i = 0; i < 100; ++i) {
      (*journal)->Append(std::string(100, 'h') + std::to_string(i));  // history
      ASSERT_TRUE((*journal)->Commit().ok());
    }
    auto on_disk = [&] {
      std::uint64_t bytes = 0;
      for (const auto& entry : std::filesystem::directory_iterator(dir_.path() / "journal")) {
        if (entry.path().extension() == ".zkj") bytes += std::filesystem::file_size(entry.path());
      }
      return bytes;
    };
    EXPECT_EQ((*journal)->disk_bytes(), on_disk()) << "the in-memory count matches the files";
    EXPECT_TRUE((*journal)->NeedsCompaction([] { return std::uint64_t{0}; }));
    ASSERT_TRUE((*journal)->Compact({"state 1", "state 2"}).ok());
    EXPECT_EQ((*journal)->disk_bytes(), on_disk());
    (*journal)->Append("after the snapshot");
    ASSERT_TRUE((*journal)->Commit().ok());
  }
  std::vector<std::string> replayed;
  RecoveryReport report;
  ASSERT_TRUE(Open(options, &replayed, &report).ok());
  EXPECT_EQ(replayed, (std::vector<std::string>{"state 1", "state 2", "after the snapshot"}));
  EXPECT_EQ(report.segments, 1u);
}

// A crash while writing a snapshot leaves it without its end marker: recovery discards it and
// replays the segments that were still there.
// A broker that restarts often still compacts: segments written by earlier runs count.
TEST_F(JournalDirTest, SegmentsFromEarlierRunsCountTowardCompaction) {
  JournalOptions options = Options();
  options.segment_bytes = 4096;
  for (int run = 0; run < 3; ++run) {
    std::vector<std::string> ignored;
    auto journal = Open(options, &ignored);
    ASSERT_TRUE(journal.ok());
    for (int i = 0; i < 45; ++i) {  // just over one segment per run
      (*journal)->Append(std::string(100, 'r'));
      ASSERT_TRUE((*journal)->Commit().ok());
    }
  }
  std::vector<std::string> replayed;
  auto journal = Open(options, &replayed);
  ASSERT_TRUE(journal.ok());
  EXPECT_TRUE((*journal)->NeedsCompaction([] { return std::uint64_t{0}; }));
}

TEST_F(JournalDirTest, AnUnfinishedSnapshotIsDiscarded) {
  WriteRecords(5, Options());  // segment 1
  {
    auto file = PosixWritableFile::Open(Segment(2));
    ASSERT_TRUE(file.ok());
    JournalWriter writer(file->get(), 0);
    msgpack::sbuffer header;
    msgpack::packer<msgpack::sbuffer> packer(header);
    packer.pack_map(4);
    packer.pack(std::string("snapshot"));
    packer.pack(true);
    packer.pack(std::string("magic"));
    packer.pack(std::string("zmqkit-journal"));
    packer.pack(std::string("version"));
    packer.pack_uint64(1);
    packer.pack(std::string("segment"));
    packer.pack_uint64(2);
    ASSERT_TRUE(writer.AddRecord(std::string_view(header.data(), header.size())).ok());
    ASSERT_TRUE(writer.AddRecord("half a snapshot").ok());
    ASSERT_TRUE(writer.Sync().ok());
  }
  std::vector<std::string> replayed;
  ASSERT_TRUE(Open(Options(), &replayed).ok());
  EXPECT_EQ(replayed.size(), 5u);
  EXPECT_EQ(replayed.front(), "record 0");
  EXPECT_FALSE(std::filesystem::exists(Segment(2)));
}

TEST_F(JournalDirTest, AForeignFileIsRefused) {
  std::filesystem::create_directories(dir_.path() / "journal");
  std::ofstream(Segment(1)) << "this is not a journal";
  std::vector<std::string> replayed;
  auto journal = Open(Options(), &replayed);
  ASSERT_FALSE(journal.ok());
  EXPECT_NE(journal.error().message().find("no journal header"), std::string::npos)
      << journal.error().message();
  EXPECT_EQ(std::filesystem::file_size(Segment(1)), 21u) << "refusing must not cut the file";
}

}  // namespace
}  // namespace zmqkit::internal
