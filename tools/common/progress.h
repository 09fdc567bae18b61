// Progress for long work in the tools and examples: a bar redrawn in place when the output is a
// terminal, a plain line every 10% otherwise (so logs and CI output stay readable).
#ifndef ZMQKIT_TOOLS_COMMON_PROGRESS_H_
#define ZMQKIT_TOOLS_COMMON_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace zmqkit::tools {

// "label [#########...........]  4500/10000  12345/s" in `width` bar cells.
std::string RenderBar(const std::string& label, std::uint64_t done, std::uint64_t total,
                      double per_second, int width = 30);

class Progress {
 public:
  enum class Style { kBar, kLines, kNone };
  // The style for `out`: a bar if the file descriptor is a terminal, plain lines otherwise.
  static Style StyleFor(int fd);

  Progress(std::ostream& out, std::string label, std::uint64_t total, Style style);
  // Reports `done` of total. Redraws at most ten times a second; a line per 10% in kLines.
  void Update(std::uint64_t done);
  // Draws the final state and ends the line.
  void Finish();

 private:
  void Draw(std::uint64_t done);

  std::ostream& out_;
  std::string label_;
  std::uint64_t total_;
  Style style_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw_{};
  std::uint64_t last_tenth_ = 0;
  std::uint64_t done_ = 0;
  bool finished_ = false;
};

}  // namespace zmqkit::tools

#endif  // ZMQKIT_TOOLS_COMMON_PROGRESS_H_
