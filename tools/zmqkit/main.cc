// zmqkit: one command line for the broker (queues, send, recv, purge, dlq, declare) and for the
// brokerless patterns (push, pull, pub, sub). Each subcommand is a file of its own that adds its
// flags and runs (cli.h). Exit codes: 0 ok, 1 failure, 2 usage.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <vector>

#include "cli.h"

int main(int argc, char** argv) {
  namespace cli = zmqkit::cli;
  CLI::App app("zmqkit: drive and inspect the zmqkit broker, and the brokerless patterns.", "zmqkit");
  app.require_subcommand(1);
  app.fallthrough();  // global options (--broker, --json, --timeout) also after the subcommand
  cli::Common common;
  cli::AddCommonOptions(app, common);
  app.footer("Exit codes: 0 ok, 1 failure, 2 usage. Brokerless endpoints connect unless written "
             "@endpoint (bind).");
  std::vector<std::unique_ptr<cli::Subcommand>> subcommands;
  for (auto make : {cli::MakeQueues, cli::MakeCounters, cli::MakeSend, cli::MakeRecv, cli::MakePurge,
                    cli::MakeDlq, cli::MakeDeclare, cli::MakePush, cli::MakePull, cli::MakePub,
                    cli::MakeSub, cli::MakeKeygen, cli::MakeBench}) {
    subcommands.push_back(make(app));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : cli::kExitUsage;
  }
  try {
    for (const auto& subcommand : subcommands) {
      if (subcommand->chosen()) return subcommand->Run(common);
    }
    return cli::kExitUsage;  // require_subcommand(1) makes this unreachable
  } catch (const CLI::ValidationError& error) {
    std::cerr << "zmqkit: " << error.what() << "\n";
    return cli::kExitUsage;
  } catch (const zmq::error_t& error) {
    return cli::Fail(std::string("cannot open the endpoint: ") + error.what());
  }
}
