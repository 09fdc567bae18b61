// zmqkit send: publishes messages to the broker and waits for their confirms.
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "cli.h"
#include "progress.h"

namespace zmqkit::cli {
namespace {

class Send final : public Subcommand {
 public:
  explicit Send(CLI::App& parent) {
    app_ = parent.add_subcommand("send", "publish messages to the broker, with confirms");
    app_->add_option("target", target_, "queue (or routing key with --exchange)")->required();
    app_->add_option("bodies", bodies_, "message bodies (else --file or stdin lines)");
    app_->add_option("--file", file_, "send this file's contents as one message");
    app_->add_flag("--stdin", stdin_lines_, "send each line of stdin as a message");
    app_->add_option("--header", headers_, "KEY=VALUE, repeatable");
    app_->add_option("--priority", priority_, "0-9, higher first")->check(CLI::Range(0, 9));
    app_->add_option("--delay-ms", delay_ms_, "not delivered before this long")->check(CLI::NonNegativeNumber);
    app_->add_option("--ttl-ms", ttl_ms_, "dead-lettered as expired after this long")->check(CLI::NonNegativeNumber);
    app_->add_option("--count", count_, "send each body this many times")->check(CLI::PositiveNumber);
    app_->add_option("--exchange", exchange_, "publish to this exchange");
  }

  int Run(const Common& common) override {
    std::vector<std::string> bodies = bodies_;
    if (!file_.empty()) {
      std::ifstream in(file_, std::ios::binary);
      if (!in) return Fail("cannot read " + file_);
      bodies.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (stdin_lines_ || (bodies.empty() && !::isatty(STDIN_FILENO))) {
      for (std::string line; std::getline(std::cin, line);) bodies.push_back(line);
    }
    if (bodies.empty()) return Fail("nothing to send: give bodies as arguments, --file, or lines on stdin");
    Headers headers;
    for (const std::string& header : headers_) {
      auto equals = header.find('=');
      if (equals == std::string::npos) {
        std::cerr << "zmqkit: --header " << header << " is not KEY=VALUE\n";
        return kExitUsage;
      }
      headers[header.substr(0, equals)] = header.substr(equals + 1);
    }
    zmq::context_t context;
    auto client = Connect(context, common);
    PublishOptions publish;
    publish.exchange = exchange_;
    publish.key = target_;
    publish.delay = std::chrono::milliseconds(delay_ms_);
    publish.ttl = std::chrono::milliseconds(ttl_ms_);
    const std::size_t total = bodies.size() * static_cast<std::size_t>(count_);
    std::size_t sent = 0;
    // Long sends show progress on stderr, so stdout keeps only the result line.
    tools::Progress progress(std::cerr, "sending", total,
                             total >= 1000 ? tools::Progress::StyleFor(STDERR_FILENO) : tools::Progress::Style::kNone);
    for (int round = 0; round < count_; ++round) {
      for (const std::string& body : bodies) {
        Envelope envelope = Envelope::New(body);
        envelope.priority = static_cast<std::uint8_t>(priority_);
        envelope.headers = headers;
        if (!client->Publish(std::move(envelope), publish).ok()) return Fail("cannot send");
        ++sent;
        if (client->unconfirmed() > 10000) (void)client->WaitForConfirms(Millis(common.timeout_s));
        progress.Update(sent);
      }
    }
    progress.Finish();
    return Report(common, *client, sent);
  }

 private:
  int Report(const Common& common, BrokerClient& client, std::size_t sent) const {
    // At least 10 s: a durable broker's confirms wait for its disk, and the first connection may
    // still be under way. The error then names the wait that really happened.
    Common waited = common;
    waited.timeout_s = std::max(common.timeout_s, 10.0);
    Status confirmed = client.WaitForConfirms(Millis(waited.timeout_s));
    auto rejections = client.TakeRejections();
    for (const auto& rejection : rejections) {
      std::cerr << "zmqkit: message " << rejection.seq << " rejected: " << rejection.code << ": "
                << rejection.message << "\n";
    }
    if (!confirmed.ok() && rejections.empty()) return FailWith(Status::Unavailable(""), waited);
    std::cout << "sent " << sent - rejections.size() << " of " << sent << " to "
              << (exchange_.empty() ? "queue " + target_ : "exchange " + exchange_) << ", confirmed "
              << (client.confirm_level() == ConfirmLevel::kOnDisk ? "on disk" : "queued") << "\n";
    return rejections.empty() ? 0 : kExitFailure;
  }

  std::string target_;
  std::vector<std::string> bodies_;
  std::string file_;
  bool stdin_lines_ = false;
  std::vector<std::string> headers_;
  int priority_ = 0;
  std::int64_t delay_ms_ = 0;
  std::int64_t ttl_ms_ = 0;
  int count_ = 1;
  std::string exchange_;
};

}  // namespace

std::unique_ptr<Subcommand> MakeSend(CLI::App& parent) { return std::make_unique<Send>(parent); }

}  // namespace zmqkit::cli
