#include "progress.h"

#include <unistd.h>

#include <algorithm>

namespace zmqkit::tools {

std::string RenderBar(const std::string& label, std::uint64_t done, std::uint64_t total,
                      double per_second, int width) {
  const std::uint64_t shown = std::min(done, total);
  const auto filled = total ? static_cast<int>(shown * static_cast<std::uint64_t>(width) / total) : width;
  std::string line = label;
  line.append(" [").append(static_cast<std::size_t>(filled), '#');
  line.append(static_cast<std::size_t>(width - filled), '.').append("]  ");
  line.append(std::to_string(done)).append("/").append(std::to_string(total));
  line.append("  ").append(std::to_string(static_cast<std::uint64_t>(per_second))).append("/s");
  return line;
}

Progress::Style Progress::StyleFor(int fd) { return ::isatty(fd) == 1 ? Style::kBar : Style::kLines; }

Progress::Progress(std::ostream& out, std::string label, std::uint64_t total, Style style)
    : out_(out), label_(std::move(label)), total_(total), style_(style) {}

void Progress::Update(std::uint64_t done) {
  done_ = done;
  if (style_ == Style::kBar) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    Draw(done);
  } else if (style_ == Style::kLines && total_ > 0) {
    const std::uint64_t tenth = std::min<std::uint64_t>(done, total_) * 10 / total_;
    if (tenth > last_tenth_ && tenth < 10) {
      last_tenth_ = tenth;
      Draw(done);
    }
  }
}

void Progress::Finish() {
  if (finished_ || style_ == Style::kNone) return;
  finished_ = true;
  Draw(done_);
  if (style_ == Style::kBar) out_ << "\n" << std::flush;
}

void Progress::Draw(std::uint64_t done) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  const std::string line = RenderBar(label_, done, total_, rate);
  if (style_ == Style::kBar) {
    out_ << "\r" << line << "\x1b[K" << std::flush;  // erase what a longer line left behind
  } else {
    out_ << line << "\n" << std::flush;
  }
}

}  // namespace zmqkit::tools
