// Brokerless reliability, the ZeroMQ Guide's way: ventilator -> workers -> sink, with resends.
//
//   TaskVentilator --PUSH--> workers (Worker) --PUSH (Producer)--> TaskSink
//          ^                                                          |
//          +---------------- completions (task ids) -----------------+
//
// The ventilator remembers every task until the sink reports it done, and sends again any task not
// done within `resend_after` — so the work of a worker that crashed or hung is done by another. The
// sink drops duplicate results (a resent task can complete twice) and reports every result's id back.
//
// This is as far as reliability goes without a broker: the ventilator must stay up and keeps all
// unfinished work in its memory; if it exits, that work is gone. Delivery is at-least-once to
// workers and exactly-once out of the sink (within its memory of completed ids).
//
// A worker is a Worker on the task endpoint plus a Producer on the sink's result endpoint, replying
// with ResultFor(task, ...), which keeps the task's id.
#ifndef ZMQKIT_RELIABLE_TASKS_H_
#define ZMQKIT_RELIABLE_TASKS_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include <zmq.hpp>

#include "zmqkit/clock.h"
#include "zmqkit/endpoint.h"
#include "zmqkit/envelope.h"
#include "zmqkit/envelope_codec.h"
#include "zmqkit/outstanding_tasks.h"
#include "zmqkit/receive_stats.h"
#include "zmqkit/socket_factory.h"
#include "zmqkit/status.h"

namespace zmqkit {

namespace internal {
class EnvelopeReceiver;
class PeerMonitor;
}  // namespace internal

// A result for `task`: same id (that is how the sink and ventilator match them), created now.
Envelope ResultFor(const Envelope& task, std::string_view body);

struct VentilatorOptions {
  SocketOptions socket;
  DecodeLimits limits;
  // A task not reported done this long after it was sent is sent again.
  std::chrono::milliseconds resend_after{5000};
  // Sends per task before it is abandoned; 0 resends forever.
  std::uint32_t max_attempts = 0;
  // How long a send waits for a worker to take the task (none connected, all at their HWM).
  std::chrono::milliseconds send_timeout{100};
};

struct VentilatorStats {
  std::uint64_t submitted = 0;
  std::uint64_t sent = 0;        // every send, first attempts and resends
  std::uint64_t resent = 0;
  std::uint64_t send_failures = 0;  // no worker took it; retried at its next deadline
  std::uint64_t completed = 0;
  std::uint64_t stray_completions = 0;  // for tasks not outstanding: duplicates, late, unknown
  std::uint64_t abandoned = 0;
};

class TaskVentilator {
 public:
  // Opens a PUSH socket for tasks and a PULL socket for completions. `clock` must outlive this.
  TaskVentilator(zmq::context_t& context, const Endpoint& tasks, const Endpoint& completions,
                 const Clock& clock, VentilatorOptions options = {});
  ~TaskVentilator();

  // Sends `task` (attempt 1) and keeps it until it is reported done. kUnavailable if no worker took
  // it within send_timeout: it stays tracked and is sent again at its deadline.
  // kFailedPrecondition if a task with this id is already outstanding.
  Status Submit(Envelope task);
  // Reads completions (waiting up to `max_wait` for the first, less if a resend falls due sooner)
  // and resends or abandons overdue tasks.
  void Poll(std::chrono::milliseconds max_wait);
  // Polls until nothing is outstanding (OK) or `timeout` passes (kDeadlineExceeded).
  Status Drain(std::chrono::milliseconds timeout);
  // Waits until `count` workers are connected to the task endpoint (tcp/ipc).
  Status WaitForWorkers(std::size_t count, std::chrono::milliseconds timeout);

  std::size_t outstanding() const { return tracker_.size(); }
  // Ids of tasks given up on after max_attempts, oldest first.
  const std::vector<MessageId>& abandoned() const { return abandoned_; }
  const VentilatorStats& stats() const { return stats_; }
  const ReceiveStats& completion_stats() const;
  const std::string& tasks_endpoint() const { return tasks_endpoint_; }
  const std::string& completions_endpoint() const { return completions_endpoint_; }

 private:
  bool SendTask(const Envelope& task);

  const Clock& clock_;
  zmq::socket_t tasks_;
  zmq::socket_t completions_;
  std::unique_ptr<internal::PeerMonitor> monitor_;
  std::unique_ptr<internal::EnvelopeReceiver> receiver_;
  std::string tasks_endpoint_;
  std::string completions_endpoint_;
  std::string scratch_;
  OutstandingTasks tracker_;
  std::unordered_map<MessageId, Envelope, MessageIdHash> pending_;  // exactly the tracked tasks
  std::vector<MessageId> abandoned_;
  VentilatorStats stats_;
};

struct SinkOptions {
  SocketOptions socket;
  DecodeLimits limits;
  // How many completed ids the sink remembers to recognise duplicates; the oldest are forgotten
  // first. A duplicate of a task older than that would be delivered again.
  std::size_t remembered_results = 1'000'000;
};

struct SinkStats {
  std::uint64_t results = 0;     // distinct results handed to the caller
  std::uint64_t duplicates = 0;  // results for tasks already done, dropped
  std::uint64_t completion_send_failures = 0;  // ventilator unreachable; it will resend, we re-report
};

class TaskSink {
 public:
  // Opens a PULL socket for results and a PUSH socket that reports completions to the ventilator.
  TaskSink(zmq::context_t& context, const Endpoint& results, const Endpoint& completions,
           SinkOptions options = {});
  ~TaskSink();

  // The next result for a task not seen before, waiting up to `timeout`. Every result, duplicate or
  // not, is reported to the ventilator. Errors as Worker::Receive.
  Result<Envelope> Receive(std::chrono::milliseconds timeout);

  const SinkStats& stats() const { return stats_; }
  const ReceiveStats& receive_stats() const;
  const std::string& results_endpoint() const { return results_endpoint_; }

 private:
  void ReportCompletion(const Envelope& result);
  bool Remember(const MessageId& id);

  zmq::socket_t results_;
  zmq::socket_t completions_;
  std::unique_ptr<internal::EnvelopeReceiver> receiver_;
  std::string results_endpoint_;
  std::string scratch_;
  std::size_t remembered_results_;
  std::unordered_set<MessageId, MessageIdHash> done_;
  std::deque<MessageId> done_order_;  // the same ids as done_, oldest first, for forgetting
  SinkStats stats_;
};

}  // namespace zmqkit

#endif  // ZMQKIT_RELIABLE_TASKS_H_
