#include "cli.h"

#include <unistd.h>

#include <iostream>
#include <sstream>

#include "json.h"

namespace zmqkit::cli {

using namespace std::chrono_literals;

void AddCommonOptions(CLI::App& app, Common& common) {
  app.add_option("--broker", common.broker, "the broker's client endpoint")->capture_default_str();
  app.add_option("--timeout", common.timeout_s, "seconds to wait for the broker's answers")
      ->capture_default_str();
  app.add_flag("--json", common.json, "machine-readable output");
  app.add_option("--server-key", common.server_key,
                 "CURVE: the broker's public certificate; encrypts the connection");
  app.add_option("--curve-key", common.curve_key,
                 "CURVE: this client's secret certificate (default: a fresh key pair per run)");
  app.add_option("--curve-secret", common.curve_secret,
                 "CURVE, brokerless: the secret certificate of an endpoint this binds (@endpoint); "
                 "peers then connect with --server-key and its public part");
}

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

int Fail(const std::string& message) {
  std::cerr << "zmqkit: " << message << "\n";
  return kExitFailure;
}

int FailWith(const Status& status, const Common& common) {
  if (status.code() == StatusCode::kUnavailable) {
    std::ostringstream message;
    message << "no broker answered at " << common.broker << " within " << common.timeout_s
            << " s — is zmqkit-broker running?";
    if (!common.server_key.empty()) {
      message << " (or it refused this client's key or address: its log says so)";
    }
    return Fail(message.str());
  }
  return Fail(status.message());
}

std::string JsonHeaders(const Headers& headers) {
  using tools::JsonString;
  std::string out = "{";
  for (const auto& [key, value] : headers) {
    if (out.size() > 1) out += ",";
    out += JsonString(key) + ":" + JsonString(value);
  }
  return out + "}";
}

bool Interactive() { return ::isatty(STDOUT_FILENO) == 1; }

CurveOptions CurveFor(const Common& common, bool binds) {
  CurveOptions curve;
  if (binds) {
    if (common.curve_secret.empty()) return curve;
    auto keys = ReadSecretCertificate(common.curve_secret);
    if (!keys.ok()) throw CLI::ValidationError("--curve-secret", keys.error().message());
    curve.server_secret_key = keys->secret_key;
    return curve;
  }
  if (common.server_key.empty()) {
    if (!common.curve_key.empty()) {
      throw CLI::ValidationError("--curve-key", "needs --server-key, the public certificate of the side that binds");
    }
    return curve;
  }
  auto server = ReadCertificate(common.server_key);
  if (!server.ok()) throw CLI::ValidationError("--server-key", server.error().message());
  auto mine = common.curve_key.empty() ? GenerateCurveKeyPair() : ReadSecretCertificate(common.curve_key);
  if (!mine.ok()) throw CLI::ValidationError("--curve-key", mine.error().message());
  curve.server_public_key = server->public_key;
  curve.client_public_key = mine->public_key;
  curve.client_secret_key = mine->secret_key;
  return curve;
}

std::unique_ptr<BrokerClient> Connect(zmq::context_t& context, const Common& common) {
  BrokerClientOptions options;
  options.request_timeout = Millis(common.timeout_s);
  options.socket.linger = 500ms;
  options.socket.curve = CurveFor(common, /*binds=*/false);
  auto endpoint = Endpoint::Parse(common.broker, Endpoint::Mode::kConnect);
  if (!endpoint.ok()) throw CLI::ValidationError("--broker", endpoint.error().message());
  return std::make_unique<BrokerClient>(context, *endpoint, options);
}

}  // namespace zmqkit::cli
