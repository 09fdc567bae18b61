#!/usr/bin/python3
"""A broker client in Python, written from docs/protocol.md alone (pyzmq + msgpack).

Starts zmqkit-broker, then: consumes, publishes with confirms, acks, rejects to the DLQ, reads
stats, redrives, triggers errors; publishes and consumes in the packed forms; and serves a plain
REQ client with a Paranoid Pirate worker.
    python_broker_client.py PATH_TO_ZMQKIT_BROKER
"""
import os
import subprocess
import sys
import tempfile
import time
import uuid

import msgpack
import zmq

SIG = b"ZKB1"


def envelope(body, version=2):
    """An envelope as wire-format.md section 2 writes it: version 2's array [2, id, ts] by default,
    or version 1's map, which the broker still accepts."""
    if version == 1:
        header = {"v": 1, "id": uuid.uuid4().bytes, "ts": time.time_ns() // 1000}
    else:
        header = [2, uuid.uuid4().bytes, time.time_ns() // 1000]
    return [msgpack.packb(header, use_bin_type=True), body]


def packed_envelope(body):
    """The same in one frame: the header's msgpack value, then the body's bytes."""
    header, body = envelope(body)
    return header + body


def read_header(frame):
    """The header's fields by name, from either form (wire-format.md section 2)."""
    header = msgpack.unpackb(frame, raw=False)
    if isinstance(header, dict):
        return header
    fields = dict(zip(("v", "id", "ts", "pri", "att"), header))
    if len(header) > 5:
        fields.update((k, v) for k, v in header[5].items() if k in ("seq", "src", "h"))
    return fields


class Client:
    def __init__(self, context, endpoint):
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(endpoint)
        self.seq = 0
        self.rid = 0
        self.inbox = []

    def send(self, command, args, payload=()):
        self.socket.send_multipart([SIG, command, msgpack.packb(args, use_bin_type=True), *payload])

    def recv(self, timeout_ms=5000):
        if self.inbox:
            return self.inbox.pop(0)
        if not self.socket.poll(timeout_ms):
            raise TimeoutError("nothing from the broker")
        frames = self.socket.recv_multipart()
        assert frames[0] == SIG, frames
        return frames[1].decode(), msgpack.unpackb(frames[2], raw=False), frames[3:]

    def expect(self, command, timeout_ms=5000):
        """Next message with this command; others (heartbeats, etc.) are kept for later."""
        skipped = []
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            got = self.recv(int((deadline - time.monotonic()) * 1000) + 1)
            if got[0] == command:
                self.inbox = skipped + self.inbox
                return got
            if got[0] != "HEARTBEAT":
                skipped.append(got)
        raise TimeoutError("no " + command)

    def call(self, command, **args):
        self.rid += 1
        args["rid"] = self.rid
        self.send(command.encode(), args)
        while True:
            got = self.recv()
            if got[0] in ("OK", "ERROR") and got[1].get("rid") == self.rid:
                return got
            if got[0] != "HEARTBEAT":
                self.inbox.append(got)

    def publish(self, key, body, version=2):
        self.seq += 1
        self.send(b"PUBLISH", {"seq": self.seq, "key": key}, envelope(body, version))
        return self.seq

    def publish_batch(self, key, bodies, packed=False):
        """One PUBLISH carrying len(bodies) messages, [header][body] each or packed
        [header+body]; returns their seqs."""
        first = self.seq + 1
        self.seq += len(bodies)
        if packed:
            frames = [packed_envelope(body) for body in bodies]
        else:
            frames = [frame for body in bodies for frame in envelope(body)]
        args = {"seq": first, "key": key}
        if len(bodies) > 1:
            args["count"] = len(bodies)
        self.send(b"PUBLISH", args, frames)
        return list(range(first, self.seq + 1))

    def deliveries(self):
        """The next DELIVER, as a list of (tag, header, body): one, or several if packed."""
        _, args, payload = self.expect("DELIVER")
        tags = args["tags"] if "tags" in args else [args["tag"]]
        assert len(payload) == 2 * len(tags), (tags, len(payload))
        return [(tag, read_header(payload[2 * i]), payload[2 * i + 1])
                for i, tag in enumerate(tags)]


def main():
    broker_path = sys.argv[1]
    failures = []

    def check(condition, what):
        if not condition:
            failures.append(what)
            print("FAIL:", what)

    with tempfile.TemporaryDirectory() as directory:
        clients = "ipc://" + os.path.join(directory, "clients")
        workers = "ipc://" + os.path.join(directory, "workers")
        broker = subprocess.Popen([broker_path, "--clients", clients, "--workers", workers,
                                   "--heartbeat-ms", "200", "--retry-delay-ms", "0",
                                   "--max-attempts", "2", "--data-dir", "none"],
                                  stderr=subprocess.DEVNULL)
        context = zmq.Context()
        try:
            client = Client(context, clients)
            command, args, _ = client.call("CONSUME", queue="jobs", consumer="py", prefetch=10)
            check(command == "OK", "CONSUME answered OK")

            for i in range(3):  # the first in version 1's form, which the broker still reads
                client.publish("jobs", b"job %d" % i, version=1 if i == 0 else 2)
            upto = 0
            while upto < 3:
                _, args, _ = client.expect("CONFIRM")
                upto = args["upto"]
                check(args["level"] == "queued", "confirm level is queued")
            tags = []
            for i in range(3):
                _, args, payload = client.expect("DELIVER")
                header = read_header(payload[0])
                check(payload[1] == b"job %d" % i, "delivered in order")
                check(header["att"] == 1 and args["queue"] == "jobs", "attempt 1 from jobs")
                check(isinstance(msgpack.unpackb(payload[0]), list), "delivered in version 2's form")
                tags.append(args["tag"])
            client.send(b"ACK", {"tags": tags[:2]})
            client.send(b"NACK", {"tag": tags[2], "requeue": False})  # straight to jobs.dlq

            command, args, _ = client.call("STATS", queue="jobs")
            stats = args["queues"][0]
            check(command == "OK" and stats["acked"] == 2 and stats["dlq_depth"] == 1,
                  "stats: 2 acked, 1 in the DLQ (%r)" % stats)
            command, args, _ = client.call("REDRIVE", queue="jobs")
            check(command == "OK" and args["moved"] == 1, "redrive moved 1")
            _, args, payload = client.expect("DELIVER")
            header = read_header(payload[0])
            check(payload[1] == b"job 2" and header["h"]["x-redriven"] == "rejected",
                  "the redriven message comes back")
            client.send(b"ACK", {"tags": [args["tag"]]})

            client.send(b"ACK", {"tags": [999999]})
            _, args, _ = client.expect("ERROR")
            check(args["code"] == "unknown-delivery-tag", "unknown tag is an error")
            command, args, _ = client.call("FROBNICATE")
            check(command == "ERROR" and args["code"] == "unknown-command", "unknown command")
            client.publish("", b"x")  # an empty queue name is not a name
            _, args, _ = client.expect("REJECTED")
            check(args["code"] == "invalid-argument", "bad queue name rejected")

            # Packed forms: the greeting says how many one PUBLISH may carry; a consumer that
            # asks for batches gets several deliveries per DELIVER.
            packer = Client(context, clients)
            packer.send(b"HEARTBEAT", {})
            _, greeting, _ = packer.expect("HEARTBEAT")
            most = greeting.get("max_publish_batch", 1)
            check(most == 30, "the greeting announces 30 messages per PUBLISH (%r)" % greeting)
            check(greeting.get("packed_publish") is True,
                  "the greeting says packed [header+body] publishes are read (%r)" % greeting)
            bodies = [b"packed %d" % i for i in range(most)]
            packer.publish_batch("packed", bodies)
            # More than allowed: over max_frames, so the broker drops the payload unread, and
            # still rejects each seq, so no later CONFIRM covers one of them.
            over = packer.publish_batch("packed", [b"x"] * (most + 1))
            refused = []
            for _ in over:
                _, args, _ = packer.expect("REJECTED")
                check(args["code"] == "limit-reached" and args.get("limit") == "max-frames",
                      "a PUBLISH over max_frames is refused (%r)" % args)
                refused.append(args["seq"])
            check(refused == over, "each of its seqs is rejected (%r)" % refused)
            # One frame per message: a batch of three, and one alone.
            packer.publish_batch("packed", [b"y"] * 3, packed=True)
            seqs = packer.publish_batch("packed", [b"z" * 100], packed=True)
            confirmed = 0
            while confirmed < seqs[-1]:
                _, args, _ = packer.expect("CONFIRM")
                confirmed = args["upto"]
            check(confirmed == seqs[-1], "every batched publish confirmed (upto %d)" % confirmed)
            command, _, _ = packer.call("CONSUME", queue="packed", consumer="batcher",
                                        prefetch=100, batch=16)
            check(command == "OK", "CONSUME with batch answered OK")
            got = []
            packs = 0
            while len(got) < most + 4:
                pack = packer.deliveries()
                packs += 1
                check(len(pack) <= 16, "no DELIVER carries more than batch")
                got.extend(pack)
            check([body for _, _, body in got] == bodies + [b"y"] * 3 + [b"z" * 100],
                  "packed deliveries in queue order, packed publishes intact")
            check(packs < len(got), "deliveries were packed (%d DELIVERs for %d)" % (packs, len(got)))
            packer.send(b"ACK", {"tags": [tag for tag, _, _ in got]})
            command, args, _ = packer.call("STATS", queue="packed")
            check(command == "OK" and args["queues"][0]["acked"] == most + 4,
                  "every packed delivery acked (%r)" % args)
            packer.send(b"BYE", {})

            # A plain REQ client served by a Paranoid Pirate worker, both in Python.
            worker = context.socket(zmq.DEALER)
            worker.linger = 0
            worker.connect(workers)
            worker.send(b"\x01")  # READY
            requester = context.socket(zmq.REQ)
            requester.linger = 0
            requester.connect(clients)
            requester.send(b"6x7")
            deadline = time.monotonic() + 5
            answered = False
            while time.monotonic() < deadline and not answered:
                if worker.poll(100):
                    frames = worker.recv_multipart()
                    if len(frames) == 3:
                        worker.send_multipart([frames[0], b"", b"42"])
                        answered = True
                worker.send(b"\x02")  # HEARTBEAT
            check(answered, "the worker got the request")
            check(requester.poll(5000) and requester.recv() == b"42", "the REQ client got 42")
            client.send(b"BYE", {})
        finally:
            context.destroy(linger=0)
            broker.terminate()
            check(broker.wait(timeout=10) == 0, "broker exits 0 on SIGTERM")

    if failures:
        print("python broker client: %d failure(s)" % len(failures))
        return 1
    print("python broker client OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
