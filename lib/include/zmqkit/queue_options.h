// QueueOptions: the per-queue rules of the broker — leases, attempts, back-off, TTL, bounds.
#ifndef ZMQKIT_QUEUE_OPTIONS_H_
#define ZMQKIT_QUEUE_OPTIONS_H_

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace zmqkit {

struct QueueOptions {
  // A delivery not acked this long after it was handed out is taken back and delivered again.
  // A consumer may ask for its own (shorter or longer) timeout; EXTEND pushes one delivery's back.
  std::chrono::milliseconds ack_timeout{30000};
  // Deliveries of one message before a failure sends it to the dead-letter queue; 0 = no limit.
  std::uint32_t max_attempts = 5;
  // After a failed delivery (NACK with requeue, or an ack timeout) the message waits this long
  // before it is ready again, doubling per failure up to max_retry_delay, so a poison message
  // cannot spin. A consumer that died gives its messages back at once, without this wait.
  std::chrono::milliseconds retry_delay{200};
  std::chrono::milliseconds max_retry_delay{30000};
  // Default time to live for messages published without one; 0 = forever. An expired message goes
  // to the dead-letter queue with reason "expired".
  std::chrono::milliseconds message_ttl{0};
  // Bounds on what the queue holds (ready + delayed + in flight). A publish beyond them is refused
  // with a negative confirm ("queue full"); nothing already queued is dropped.
  std::size_t max_length = 1'000'000;
  std::size_t max_bytes = std::size_t{1} << 30;

  friend bool operator==(const QueueOptions&, const QueueOptions&) = default;
};

}  // namespace zmqkit

#endif  // ZMQKIT_QUEUE_OPTIONS_H_
