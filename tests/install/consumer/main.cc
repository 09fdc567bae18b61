// Uses the installed headers and library: a work-queue round trip with a typed body.
#include <zmqkit/typed_body.h>
#include <zmqkit/work_queue.h>

#include <iostream>

struct Ping {
  int number = 0;
  MSGPACK_DEFINE_MAP(number)
};

int main() {
  zmq::context_t context;
  zmqkit::Producer producer(context, zmqkit::Endpoint::Bind("inproc://outside"));
  zmqkit::Worker worker(context, zmqkit::Endpoint::Connect("inproc://outside"));
  if (!producer.Send(zmqkit::PackBody(Ping{42})).ok()) return 1;
  auto message = worker.Receive(std::chrono::seconds(5));
  if (!message.ok()) return 1;
  auto ping = zmqkit::UnpackBody<Ping>(*message);
  if (!ping.ok() || ping->number != 42) return 1;
  std::cout << "outside project OK\n";
  return 0;
}
