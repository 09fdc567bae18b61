// Helpers shared by the tests: unique addresses so tests run in parallel, and polling with a
// deadline instead of sleeping.
#ifndef ZMQKIT_TESTS_TEST_SUPPORT_H_
#define ZMQKIT_TESTS_TEST_SUPPORT_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

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

// A child process started from an executable, for fault tests with real signals. The destructor
// kills (SIGKILL) and reaps it if it is still running, so a failing test leaves nothing behind.
class ChildProcess {
 public:
  // Starts `path` with `args`; throws std::runtime_error if it cannot be started.
  ChildProcess(const std::string& path, const std::vector<std::string>& args);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int signal);
  // Waits up to `timeout` for the child to end; returns its wait status (see waitpid) or nullopt.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool running() const { return !status_.has_value(); }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs a program to completion (killed after `timeout`) and returns its exit code and output.
struct RunResult {
  int exit_code = -1;  // -1 if it did not exit normally in time
  std::string out;
  std::string err;
};
RunResult Run(const std::string& path, const std::vector<std::string>& args,
              std::chrono::milliseconds timeout = std::chrono::seconds(20),
              const std::string& stdin_text = "");

// The absolute path of a helper executable built next to the tests (see tests/CMakeLists.txt).
std::string HelperPath(const std::string& name);

}  // namespace zmqkit::testing

#endif  // ZMQKIT_TESTS_TEST_SUPPORT_H_
