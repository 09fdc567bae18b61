#include "zmqkit/reliable_tasks.h"

#include <algorithm>

#include "util/deadline.h"
#include "codec/envelope_receiver.h"
#include "codec/frames.h"
#include "net/peer_monitor.h"

namespace zmqkit {

Envelope ResultFor(const Envelope& task, std::string_view body) {
  Envelope result = Envelope::New(body);
  result.id = task.id;
  return result;
}

TaskVentilator::TaskVentilator(zmq::context_t& context, const Endpoint& tasks,
                               const Endpoint& completions, const Clock& clock,
                               VentilatorOptions options)
    : clock_(clock),
      tasks_(OpenSocket(context, zmq::socket_type::push, options.socket)),
      completions_(OpenSocket(context, zmq::socket_type::pull, options.socket)),
      monitor_(std::make_unique<internal::PeerMonitor>(context, tasks_)),
      receiver_(std::make_unique<internal::EnvelopeReceiver>(options.limits)),
      tracker_(options.resend_after, options.max_attempts) {
  tasks_.set(zmq::sockopt::sndtimeo, static_cast<int>(options.send_timeout.count()));
  tasks_endpoint_ = AttachSocket(tasks_, tasks);
  completions_endpoint_ = AttachSocket(completions_, completions);
}

TaskVentilator::~TaskVentilator() = default;

bool TaskVentilator::SendTask(const Envelope& task) {
  if (!internal::SendEnvelope(tasks_, {}, task, scratch_, zmq::send_flags::none,
                              internal::EnvelopeForm::kFrames)) {
    ++stats_.send_failures;
    return false;
  }
  ++stats_.sent;
  return true;
}

Status TaskVentilator::Submit(Envelope task) {
  if (!tracker_.Track(task.id, clock_.Now())) {
    return Status::FailedPrecondition("task " + task.id.ToString() + " is already outstanding");
  }
  ++stats_.submitted;
  task.attempt = 1;
  bool sent = SendTask(task);
  pending_.emplace(task.id, std::move(task));
  if (!sent) return Status::Unavailable("no worker took the task; it will be sent again");
  return Status::Ok();
}

void TaskVentilator::Poll(std::chrono::milliseconds max_wait) {
  auto wait = max_wait;
  if (auto next = tracker_.NextDeadline()) {
    auto until_due = std::chrono::ceil<std::chrono::milliseconds>(*next - clock_.Now());
    wait = std::clamp(until_due, std::chrono::milliseconds(0), max_wait);
  }
  // Completions: wait for the first, then take whatever else is already here.
  for (auto timeout = wait;; timeout = std::chrono::milliseconds(0)) {
    auto completion = receiver_->Receive(completions_, timeout);
    if (!completion.ok()) {
      if (completion.error().code() == StatusCode::kInvalidArgument) continue;  // counted
      break;
    }
    if (tracker_.Complete(completion->id)) {
      pending_.erase(completion->id);
      ++stats_.completed;
    } else {
      ++stats_.stray_completions;
    }
  }
  auto expired = tracker_.Expire(clock_.Now());
  for (const MessageId& id : expired.resend) {
    Envelope& task = pending_.at(id);
    task.attempt = tracker_.attempts(id);
    ++stats_.resent;
    SendTask(task);
  }
  for (const MessageId& id : expired.abandoned) {
    pending_.erase(id);
    abandoned_.push_back(id);
    ++stats_.abandoned;
  }
}

Status TaskVentilator::Drain(std::chrono::milliseconds timeout) {
  internal::Deadline deadline(timeout);
  while (outstanding() > 0) {
    if (deadline.expired()) {
      return Status::DeadlineExceeded(std::to_string(outstanding()) + " tasks still outstanding");
    }
    Poll(std::min(deadline.remaining(), std::chrono::milliseconds(100)));
  }
  return Status::Ok();
}

Status TaskVentilator::WaitForWorkers(std::size_t count, std::chrono::milliseconds timeout) {
  if (monitor_->WaitFor(count, timeout)) return Status::Ok();
  return Status::DeadlineExceeded(std::to_string(monitor_->peers()) + " of " +
                                  std::to_string(count) + " workers connected");
}

const ReceiveStats& TaskVentilator::completion_stats() const { return receiver_->stats(); }

TaskSink::TaskSink(zmq::context_t& context, const Endpoint& results, const Endpoint& completions,
                   SinkOptions options)
    : results_(OpenSocket(context, zmq::socket_type::pull, options.socket)),
      completions_(OpenSocket(context, zmq::socket_type::push, options.socket)),
      receiver_(std::make_unique<internal::EnvelopeReceiver>(options.limits)),
      remembered_results_(std::max<std::size_t>(options.remembered_results, 1)) {
  results_endpoint_ = AttachSocket(results_, results);
  AttachSocket(completions_, completions);
}

TaskSink::~TaskSink() = default;

void TaskSink::ReportCompletion(const Envelope& result) {
  Envelope completion;
  completion.id = result.id;
  completion.created_us = UnixMicrosNow();
  // Never block the sink on the ventilator: if it cannot take the report now, it will resend the
  // task and the duplicate result will be reported again.
  if (!internal::SendEnvelope(completions_, {}, completion, scratch_, zmq::send_flags::dontwait,
                              internal::EnvelopeForm::kFrames)) {
    ++stats_.completion_send_failures;
  }
}

bool TaskSink::Remember(const MessageId& id) {
  if (!done_.insert(id).second) return false;
  done_order_.push_back(id);
  if (done_order_.size() > remembered_results_) {
    done_.erase(done_order_.front());
    done_order_.pop_front();
  }
  return true;
}

Result<Envelope> TaskSink::Receive(std::chrono::milliseconds timeout) {
  internal::Deadline deadline(timeout);
  for (;;) {
    auto result = receiver_->Receive(results_, deadline.remaining());
    if (!result.ok()) return result;
    ReportCompletion(*result);
    if (Remember(result->id)) {
      ++stats_.results;
      return result;
    }
    ++stats_.duplicates;
  }
}

const ReceiveStats& TaskSink::receive_stats() const { return receiver_->stats(); }

}  // namespace zmqkit
