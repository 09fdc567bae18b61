#include "common/device_main.h"

#include <CLI/CLI.hpp>
#include <iostream>

#include "common/exit_codes.h"
#include "common/security_flags.h"
#include "common/stop_signals.h"
#include "zmqkit/fanout.h"

namespace zmqkit::devices {

int DeviceMain(int argc, char** argv, DeviceKind kind, const char* name, const char* description) {
  CLI::App app(description, name);
  std::string frontend;
  std::string backend;
  std::string capture;
  int hwm = kind == DeviceKind::kForwarder ? kFanoutDefaultHwm : 1000;
  app.add_option("--frontend", frontend,
                 kind == DeviceKind::kStreamer ? "where producers send (PULL), e.g. tcp://*:5557"
                                               : "where publishers send (XSUB), e.g. tcp://*:5559")
      ->required();
  app.add_option("--backend", backend,
                 kind == DeviceKind::kStreamer ? "where workers take work (PUSH), e.g. tcp://*:5558"
                                               : "where subscribers listen (XPUB), e.g. tcp://*:5560")
      ->required();
  app.add_option("--capture", capture, "also publish a copy of every message here (PUB)");
  app.add_option("--hwm", hwm, "messages queued per peer before blocking or dropping")
      ->capture_default_str();
  SecurityFlags security;
  AddSecurityFlags(app, security, /*with_admin=*/false);
  app.footer(
      "Endpoints are bound; prefix one with '>' to connect instead (e.g. >tcp://host:5557).\n"
      "Stops cleanly on SIGINT or SIGTERM.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error);
    return code == 0 ? 0 : kExitUsage;
  }

  DeviceOptions options;
  options.kind = kind;
  options.socket.send_hwm = hwm;
  options.socket.recv_hwm = hwm;
  for (auto [text, target] : {std::pair{&frontend, &options.frontend},
                              std::pair{&backend, &options.backend}}) {
    auto endpoint = Endpoint::Parse(*text, Endpoint::Mode::kBind);
    if (!endpoint.ok()) {
      std::cerr << name << ": " << endpoint.error().message() << "\n";
      return kExitUsage;
    }
    *target = *endpoint;
  }
  if (Status applied = ApplySecurityFlags(security, options.socket, options.access, nullptr);
      !applied.ok()) {
    std::cerr << name << ": " << applied.message() << "\n";
    return kExitUsage;
  }
  if (!capture.empty()) {
    auto endpoint = Endpoint::Parse(capture, Endpoint::Mode::kBind);
    if (!endpoint.ok()) {
      std::cerr << name << ": " << endpoint.error().message() << "\n";
      return kExitUsage;
    }
    options.capture = *endpoint;
  }

  StopSignals stop_signals;  // before the context: its I/O threads inherit the mask
  zmq::context_t context;
  std::unique_ptr<Device> device;
  try {
    device = std::make_unique<Device>(context, options);
  } catch (const zmq::error_t& error) {
    std::cerr << name << ": cannot open " << options.frontend.address << " / "
              << options.backend.address << (capture.empty() ? "" : " / " + capture) << ": "
              << error.what() << "\n";
    return IsEndpointError(error.num()) ? kExitUsage : kExitRuntime;
  }
  std::cerr << name << ": frontend " << device->frontend_endpoint() << ", backend "
            << device->backend_endpoint()
            << (capture.empty() ? "" : ", capture " + device->capture_endpoint()) << std::endl;

  int exit_code = 0;
  stop_signals.RunUntilStopped(
      name,
      [&] {
        try {
          device->Run();
        } catch (const zmq::error_t& error) {
          std::cerr << name << ": " << error.what() << "\n";
          exit_code = kExitRuntime;
        }
      },
      [&] { device->Stop(); });
  return exit_code;
}

}  // namespace zmqkit::devices
