// zmqkit recv: consumes messages from a queue, prints them and settles them.
#include <iostream>

#include "cli.h"
#include "json.h"
#include "progress.h"

namespace zmqkit::cli {
namespace {

using namespace std::chrono_literals;
using tools::JsonString;

class Recv final : public Subcommand {
 public:
  explicit Recv(CLI::App& parent) {
    app_ = parent.add_subcommand("recv", "consume messages from a queue");
    app_->add_option("queue", queue_)->required();
    app_->add_option("--count", count_, "how many to take")->check(CLI::PositiveNumber)->capture_default_str();
    app_->add_option("--wait", wait_s_, "seconds to wait for them")->capture_default_str();
    app_->add_option("--settle", settle_, "ack, requeue (nack), reject (nack to the DLQ), or none")
        ->check(CLI::IsMember({"ack", "requeue", "reject", "none"}))->capture_default_str();
    app_->add_option("--prefetch", prefetch_)->check(CLI::PositiveNumber)->capture_default_str();
  }

  int Run(const Common& common) override {
    zmq::context_t context;
    auto client = Connect(context, common);
    // Never hold more than we will take: what we prefetched and did not process would come back
    // to the queue with an attempt counted against it.
    const auto credit = static_cast<std::uint32_t>(std::min(prefetch_, count_));
    if (Status consumed = client->Consume(queue_, credit); !consumed.ok()) {
      return FailWith(consumed, common);
    }
    int received = 0;
    // When the bodies go to a file or a pipe, a long receive shows progress on stderr instead.
    tools::Progress progress(std::cerr, "receiving", static_cast<std::uint64_t>(count_),
                             count_ >= 1000 && !Interactive() ? tools::Progress::StyleFor(STDERR_FILENO)
                                                              : tools::Progress::Style::kNone);
    auto deadline = std::chrono::steady_clock::now() + Millis(wait_s_);
    while (received < count_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) break;
      auto delivery = client->Receive(left);
      if (!delivery.ok()) break;
      ++received;
      Print(common, delivery->envelope);
      if (settle_ == "ack") {
        (void)client->Ack(delivery->tag);
      } else if (settle_ == "requeue") {
        (void)client->Nack(delivery->tag, true);
      } else if (settle_ == "reject") {
        (void)client->Nack(delivery->tag, false);
      }
      progress.Update(static_cast<std::uint64_t>(received));
    }
    progress.Finish();
    // Let the acks reach the broker before the connection closes.
    (void)client->Stats(queue_);
    if (received < count_) {
      std::cerr << "zmqkit: received " << received << " of " << count_ << " within " << wait_s_ << " s\n";
      return kExitFailure;
    }
    return 0;
  }

 private:
  static void Print(const Common& common, const Envelope& envelope) {
    if (common.json) {
      std::cout << "{\"id\":" << JsonString(envelope.id.ToString()) << ",\"attempt\":" << envelope.attempt
                << ",\"priority\":" << static_cast<int>(envelope.priority)
                << ",\"headers\":" << JsonHeaders(envelope.headers)
                << ",\"body\":" << JsonString(envelope.body_view()) << "}\n";
    } else {
      std::cout << envelope.body_view() << "\n";
    }
    std::cout << std::flush;
  }

  std::string queue_;
  int count_ = 1;
  double wait_s_ = 5;
  std::string settle_ = "ack";
  int prefetch_ = 100;
};

}  // namespace

std::unique_ptr<Subcommand> MakeRecv(CLI::App& parent) { return std::make_unique<Recv>(parent); }

}  // namespace zmqkit::cli
