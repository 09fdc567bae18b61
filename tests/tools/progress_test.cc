// The tools' progress display: what a bar looks like, and how often plain lines are written.
#include "progress.h"

#include <gtest/gtest.h>

#include <sstream>

namespace zmqkit::tools {
namespace {

TEST(ProgressTest, BarShowsTheFractionDoneCountsAndRate) {
  EXPECT_EQ(RenderBar("sending", 250, 1000, 1234.9, 8), "sending [##......]  250/1000  1234/s");
  EXPECT_EQ(RenderBar("x", 1000, 1000, 0, 4), "x [####]  1000/1000  0/s");
  // More than the total (a redelivery counted twice) never overflows the bar.
  EXPECT_EQ(RenderBar("x", 1500, 1000, 0, 4), "x [####]  1500/1000  0/s");
}

TEST(ProgressTest, PlainLinesAreWrittenOncePerTenthAndOnceAtTheEnd) {
  std::ostringstream out;
  Progress progress(out, "receiving", 1000, Progress::Style::kLines);
  for (std::uint64_t done = 1; done <= 1000; ++done) progress.Update(done);
  progress.Finish();
  const std::string text = out.str();
  std::size_t lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 10u) << text;  // 10%, 20% ... 90%, then the final 1000/1000
  EXPECT_EQ(text.find('\r'), std::string::npos);  // no terminal control in a log
  EXPECT_NE(text.find("1000/1000"), std::string::npos);
}

TEST(ProgressTest, NoneWritesNothing) {
  std::ostringstream out;
  Progress progress(out, "x", 10, Progress::Style::kNone);
  progress.Update(5);
  progress.Finish();
  EXPECT_TRUE(out.str().empty());
}

}  // namespace
}  // namespace zmqkit::tools
