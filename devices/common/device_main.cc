#include "common/device_main.h"

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <iostream>
#include <thread>

#include "zmqkit/fanout.h"

namespace zmqkit::devices {
namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

bool IsEndpointError(int error) {
  return error == EINVAL || error == EPROTONOSUPPORT || error == ENODEV || error == ENOENT ||
         error == ENAMETOOLONG;
}

}  // namespace

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
  if (!capture.empty()) {
    auto endpoint = Endpoint::Parse(capture, Endpoint::Mode::kBind);
    if (!endpoint.ok()) {
      std::cerr << name << ": " << endpoint.error().message() << "\n";
      return kExitUsage;
    }
    options.capture = *endpoint;
  }

  // Block the stop signals in every thread (libzmq's I/O threads inherit this mask) and take them
  // synchronously on one thread, which asks the proxy to terminate: no handler races with zmq_poll.
  // SIGUSR2 is how this process releases that thread when the proxy ends for another reason.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

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

  std::thread signal_waiter([&] {
    int received = 0;
    sigwait(&stop_signals, &received);
    if (received == SIGUSR2) return;
    std::cerr << name << ": " << strsignal(received) << ", stopping" << std::endl;
    device->Stop();
  });
  int exit_code = 0;
  try {
    device->Run();
  } catch (const zmq::error_t& error) {
    std::cerr << name << ": " << error.what() << "\n";
    exit_code = kExitRuntime;
  }
  // If Run() ended for another reason, release the waiter thread (harmless if it already left).
  pthread_kill(signal_waiter.native_handle(), SIGUSR2);
  signal_waiter.join();
  return exit_code;
}

}  // namespace zmqkit::devices
