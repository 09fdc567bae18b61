// What every zmqkit subcommand shares: the global options, the exit codes, how to fail, how to
// connect to the broker, and the shape of a subcommand (it registers its own flags and runs).
#ifndef ZMQKIT_TOOLS_ZMQKIT_CLI_H_
#define ZMQKIT_TOOLS_ZMQKIT_CLI_H_

#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <zmq.hpp>

#include "zmqkit/broker_client.h"
#include "zmqkit/curve.h"
#include "zmqkit/envelope.h"
#include "zmqkit/status.h"

namespace zmqkit::cli {

inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// The global options, given before or after the subcommand.
struct Common {
  std::string broker = "tcp://localhost:5555";
  std::string server_key;    // CURVE: the broker's public certificate
  std::string curve_key;     // CURVE: this client's secret certificate (else a fresh pair per run)
  std::string curve_secret;  // CURVE: the secret certificate of a brokerless endpoint this binds
  double timeout_s = 2.0;
  bool json = false;
};
void AddCommonOptions(CLI::App& app, Common& common);

// One subcommand: its constructor adds it and its flags to the parent; Run does its work once the
// command line is parsed. Errors in option values found only then throw CLI::ValidationError.
class Subcommand {
 public:
  virtual ~Subcommand() = default;
  bool chosen() const { return static_cast<bool>(*app_); }
  virtual int Run(const Common& common) = 0;

 protected:
  CLI::App* app_ = nullptr;
};

// Each in its own file, in the order `zmqkit --help` lists them.
std::unique_ptr<Subcommand> MakeQueues(CLI::App& parent);
std::unique_ptr<Subcommand> MakeCounters(CLI::App& parent);
std::unique_ptr<Subcommand> MakeSend(CLI::App& parent);
std::unique_ptr<Subcommand> MakeRecv(CLI::App& parent);
std::unique_ptr<Subcommand> MakePurge(CLI::App& parent);
std::unique_ptr<Subcommand> MakeDlq(CLI::App& parent);
std::unique_ptr<Subcommand> MakeDeclare(CLI::App& parent);
std::unique_ptr<Subcommand> MakePush(CLI::App& parent);
std::unique_ptr<Subcommand> MakePull(CLI::App& parent);
std::unique_ptr<Subcommand> MakePub(CLI::App& parent);
std::unique_ptr<Subcommand> MakeSub(CLI::App& parent);
std::unique_ptr<Subcommand> MakeKeygen(CLI::App& parent);
std::unique_ptr<Subcommand> MakeBench(CLI::App& parent);

std::chrono::milliseconds Millis(double seconds);
// Prints "zmqkit: message" on stderr; returns kExitFailure.
int Fail(const std::string& message);
// The same for a failed broker call; a broker that does not answer gets the same advice whatever
// the command.
int FailWith(const Status& status, const Common& common);
std::string JsonHeaders(const Headers& headers);
bool Interactive();  // stdout is a terminal
// CURVE for a socket the CLI opens: the server side when it binds (--curve-secret), the client
// side when it connects (--server-key, and --curve-key or a fresh pair).
CurveOptions CurveFor(const Common& common, bool binds);
std::unique_ptr<BrokerClient> Connect(zmq::context_t& context, const Common& common);

}  // namespace zmqkit::cli

#endif  // ZMQKIT_TOOLS_ZMQKIT_CLI_H_
