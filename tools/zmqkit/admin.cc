// The broker's admin subcommands: zmqkit purge, zmqkit dlq list|redrive, zmqkit declare
// queue|exchange|bind.
#include <iostream>
#include <optional>

#include "cli.h"
#include "json.h"

namespace zmqkit::cli {
namespace {

using tools::JsonString;

class Purge final : public Subcommand {
 public:
  explicit Purge(CLI::App& parent) {
    app_ = parent.add_subcommand("purge", "remove every ready and delayed message of a queue");
    app_->add_option("queue", queue_)->required();
  }

  int Run(const Common& common) override {
    zmq::context_t context;
    auto client = Connect(context, common);
    auto purged = client->Purge(queue_);
    if (!purged.ok()) return FailWith(purged.error(), common);
    std::cout << "purged " << *purged << " message(s) from " << queue_ << "\n";
    return 0;
  }

 private:
  std::string queue_;
};

class Dlq final : public Subcommand {
 public:
  explicit Dlq(CLI::App& parent) {
    app_ = parent.add_subcommand("dlq", "inspect and redrive dead-letter queues");
    app_->require_subcommand(1);
    list_ = app_->add_subcommand("list", "show QUEUE.dlq without taking anything");
    list_->add_option("queue", queue_, "the origin queue")->required();
    list_->add_option("--limit", list_limit_)->capture_default_str();
    redrive_ = app_->add_subcommand("redrive", "move QUEUE.dlq's messages back to QUEUE");
    redrive_->add_option("queue", queue_, "the origin queue")->required();
    redrive_->add_option("--limit", redrive_limit_);
  }

  int Run(const Common& common) override {
    zmq::context_t context;
    auto client = Connect(context, common);
    if (*list_) return List(common, *client);
    auto moved = client->Redrive(queue_, redrive_limit_);
    if (!moved.ok()) return FailWith(moved.error(), common);
    std::cout << "moved " << *moved << " message(s) from " << queue_ << ".dlq back to " << queue_ << "\n";
    return 0;
  }

 private:
  int List(const Common& common, BrokerClient& client) const {
    auto messages = client.Peek(queue_ + ".dlq", list_limit_);
    if (!messages.ok()) return FailWith(messages.error(), common);
    for (const auto& message : *messages) {
      auto header = [&](const char* key) {
        auto it = message.headers.find(key);
        return it == message.headers.end() ? std::string() : it->second;
      };
      if (common.json) {
        std::cout << "{\"number\":" << message.number << ",\"attempts\":" << JsonString(header("x-attempts"))
                  << ",\"reason\":" << JsonString(header("x-death-reason"))
                  << ",\"history\":" << JsonString(header("x-attempt-history"))
                  << ",\"headers\":" << JsonHeaders(message.headers)
                  << ",\"body\":" << JsonString(message.body) << "}\n";
      } else {
        std::string body = message.body.size() > 60 ? message.body.substr(0, 57) + "..." : message.body;
        std::cout << "#" << message.number << "  " << header("x-death-reason") << " after "
                  << header("x-attempts") << " attempt(s) [" << header("x-attempt-history") << "]  "
                  << body << "\n";
      }
    }
    if (!common.json) std::cout << messages->size() << " message(s) in " << queue_ << ".dlq\n";
    return 0;
  }

  CLI::App* list_ = nullptr;
  CLI::App* redrive_ = nullptr;
  std::string queue_;
  std::uint64_t list_limit_ = 100;
  std::optional<std::uint64_t> redrive_limit_;
};

class Declare final : public Subcommand {
 public:
  explicit Declare(CLI::App& parent) {
    app_ = parent.add_subcommand("declare", "declare queues, exchanges and bindings");
    app_->require_subcommand(1);
    queue_ = app_->add_subcommand("queue", "a queue with options");
    queue_->add_option("name", name_)->required();
    queue_->add_option("--ack-timeout-ms", ack_timeout_ms_)->capture_default_str();
    queue_->add_option("--max-attempts", queue_options_.max_attempts)->capture_default_str();
    queue_->add_option("--retry-delay-ms", retry_delay_ms_)->capture_default_str();
    queue_->add_option("--message-ttl-ms", ttl_ms_)->capture_default_str();
    queue_->add_option("--max-length", queue_options_.max_length)->capture_default_str();
    queue_->add_option("--max-bytes", queue_options_.max_bytes)->capture_default_str();
    exchange_ = app_->add_subcommand("exchange", "a fanout or topic exchange");
    exchange_->add_option("name", name_)->required();
    exchange_->add_option("--type", type_)->check(CLI::IsMember({"fanout", "topic"}))->capture_default_str();
    auto* bind = app_->add_subcommand("bind", "bind a queue to an exchange");
    bind->add_option("exchange", bind_exchange_)->required();
    bind->add_option("queue", bind_queue_)->required();
    bind->add_option("--pattern", pattern_, "topic pattern (* one word, # any words)");
  }

  int Run(const Common& common) override {
    zmq::context_t context;
    auto client = Connect(context, common);
    Status status;
    if (*queue_) {
      queue_options_.ack_timeout = std::chrono::milliseconds(ack_timeout_ms_);
      queue_options_.retry_delay = std::chrono::milliseconds(retry_delay_ms_);
      queue_options_.message_ttl = std::chrono::milliseconds(ttl_ms_);
      status = client->DeclareQueue(name_, queue_options_);
    } else if (*exchange_) {
      status = client->DeclareExchange(name_, type_);
    } else {
      status = client->Bind(bind_exchange_, bind_queue_, pattern_);
    }
    if (!status.ok()) return FailWith(status, common);
    std::cout << "ok\n";
    return 0;
  }

 private:
  CLI::App* queue_ = nullptr;
  CLI::App* exchange_ = nullptr;
  std::string name_, type_ = "fanout", bind_exchange_, bind_queue_, pattern_;
  QueueOptions queue_options_;
  std::int64_t ack_timeout_ms_ = queue_options_.ack_timeout.count();
  std::int64_t retry_delay_ms_ = queue_options_.retry_delay.count();
  std::int64_t ttl_ms_ = queue_options_.message_ttl.count();
};

}  // namespace

std::unique_ptr<Subcommand> MakePurge(CLI::App& parent) { return std::make_unique<Purge>(parent); }
std::unique_ptr<Subcommand> MakeDlq(CLI::App& parent) { return std::make_unique<Dlq>(parent); }
std::unique_ptr<Subcommand> MakeDeclare(CLI::App& parent) { return std::make_unique<Declare>(parent); }

}  // namespace zmqkit::cli
