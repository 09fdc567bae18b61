// Helpers shared by the tests: unique addresses so tests run in parallel, and polling with a
// deadline instead of sleeping.
#ifndef ZMQKIT_TESTS_TEST_SUPPORT_H_
#define ZMQKIT_TESTS_TEST_SUPPORT_H_

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

namespace zmqkit::testing {

// A tcp endpoint on loopback with a port the system chooses at bind time.
inline constexpr const char* kAnyLoopbackPort = "tcp://127.0.0.1:*";

// A fresh directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// "ipc://<tempdir>/<name>": unique per test process.
std::string IpcAddress(const TempDir& dir, const std::string& name);
// "inproc://<name>-<counter>": unique within the process.
std::string InprocAddress(const std::string& name);

// Calls `condition` until it returns true or `timeout` passes; returns its last result.
bool WaitUntil(const std::function<bool()>& condition,
               std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace zmqkit::testing

#endif  // ZMQKIT_TESTS_TEST_SUPPORT_H_
