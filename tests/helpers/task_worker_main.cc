// A worker for the reliable-task tests, run as a child process so it can be killed for real.
//   task_worker TASKS_ENDPOINT RESULTS_ENDPOINT NAME WORK_MS
// Takes tasks, "works" WORK_MS milliseconds on each, and replies with the task's body and a
// "worker" header naming itself. Exits by itself after 60 s so it can never outlive a test run.
#include <zmqkit/reliable_tasks.h>
#include <zmqkit/work_queue.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: task_worker TASKS RESULTS NAME WORK_MS\n";
    return 2;
  }
  const std::string name = argv[3];
  const auto work = std::chrono::milliseconds(std::stoi(argv[4]));
  zmq::context_t context;
  zmqkit::WorkerOptions worker_options;
  worker_options.socket.recv_hwm = 1000;
  zmqkit::Worker tasks(context, zmqkit::Endpoint::Connect(argv[1]), worker_options);
  zmqkit::Producer results(context, zmqkit::Endpoint::Connect(argv[2]));
  auto stop_at = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < stop_at) {
    auto task = tasks.Receive(std::chrono::milliseconds(100));
    if (!task.ok()) continue;
    std::this_thread::sleep_for(work);
    zmqkit::Envelope result = zmqkit::ResultFor(*task, task->body_view());
    result.headers["worker"] = name;
    result.headers["attempt"] = std::to_string(task->attempt);
    (void)results.Send(result);
  }
  return 0;
}
