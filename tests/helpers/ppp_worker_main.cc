// A Paranoid Pirate worker (ZeroMQ RFC 6) written on raw cppzmq, as the Guide's ppworker is — not
// on zmqkit's classes — to prove the broker serves workers that know nothing about zmqkit.
//   ppp_worker ENDPOINT NAME HEARTBEAT_MS MODE [MARKER_FILE]
// MODE: "echo" replies NAME:request; "exit-on-job" exits the moment a job arrives (a crash
// mid-job); "hang-on-job" stops everything, heartbeats included, when a job arrives (to be
// SIGKILLed). With MARKER_FILE, the file is created when the first job arrives, so a test can wait
// for that instead of guessing. Exits by itself after 30 s.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <zmq.hpp>

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::cerr << "usage: ppp_worker ENDPOINT NAME HEARTBEAT_MS MODE [MARKER_FILE]\n";
    return 2;
  }
  const std::string name = argv[2];
  const auto heartbeat = std::chrono::milliseconds(std::stoi(argv[3]));
  const std::string mode = argv[4];
  zmq::context_t context;
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(argv[1]);
  socket.send(zmq::str_buffer("\x01"));  // READY
  auto next_heartbeat = std::chrono::steady_clock::now() + heartbeat;
  auto stop_at = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < stop_at) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, heartbeat);
    if (item.revents & ZMQ_POLLIN) {
      std::vector<zmq::message_t> frames;
      zmq::message_t frame;
      do {
        (void)socket.recv(frame);
        frames.push_back(std::move(frame));
      } while (frames.back().more());
      if (frames.size() == 3) {  // [address][empty][request]
        if (argc == 6) std::ofstream(argv[5]) << name << "\n";
        if (mode == "exit-on-job") std::_Exit(0);
        if (mode == "hang-on-job") std::this_thread::sleep_for(std::chrono::hours(1));
        std::string reply = name + ":" + frames[2].to_string();
        socket.send(frames[0], zmq::send_flags::sndmore);
        socket.send(zmq::message_t(), zmq::send_flags::sndmore);
        socket.send(zmq::buffer(reply));
      }
      // A one-frame HEARTBEAT from the broker needs no answer beyond our own heartbeats.
    }
    if (std::chrono::steady_clock::now() >= next_heartbeat) {
      socket.send(zmq::str_buffer("\x02"));
      next_heartbeat = std::chrono::steady_clock::now() + heartbeat;
    }
  }
  return 0;
}
