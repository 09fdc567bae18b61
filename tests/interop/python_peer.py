#!/usr/bin/python3
"""A zmqkit peer in Python, written from docs/wire-format.md alone (pyzmq + msgpack).

Starts the C++ envelope_relay helper (once as a work queue, once as fanout), sends it envelopes
encoded by this file, and decodes what the C++ side sends back, checking every rule of the spec on
both sides.
    python_peer.py PATH_TO_ENVELOPE_RELAY
"""
import os
import subprocess
import sys
import tempfile
import time
import uuid

import msgpack
import zmq

REQUIRED = ("v", "id", "ts")
POSITIONS = ("v", "id", "ts", "pri", "att")  # version 2's array, then its extension map
EXTENSION_KEYS = ("seq", "src", "h")
MAP_KEYS = POSITIONS + EXTENSION_KEYS


class Rejected(Exception):
    pass


class Pairs(list):
    """A msgpack map as its list of (key, value) pairs, so duplicate keys stay visible."""


def _is_uint(value, maximum):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


CHECKS = {
    "v": _is_int,
    "id": lambda v: isinstance(v, bytes),
    "ts": _is_int,
    "pri": _is_int,
    "att": _is_int,
    "seq": _is_int,
    "src": lambda v: isinstance(v, str),
    "h": lambda v: isinstance(v, Pairs) and all(isinstance(k, str) and isinstance(x, str) for k, x in v),
}


def _named_fields(pairs, known_keys, known):
    """Adds the known keys of a map (its list of pairs) to `known`; unknown keys are ignored."""
    for key, value in pairs:
        if not isinstance(key, str) or key not in known_keys:
            continue
        if key in known:
            raise Rejected("duplicate field")
        known[key] = value


def decode(frames):
    """Section 1's frame forms and section 2's reader rules, for both forms of the header."""
    if len(frames) > 2:
        raise Rejected("extra frames")
    try:
        if len(frames) == 2:  # [header][body]: the header is the whole frame
            header = msgpack.unpackb(frames[0], raw=False, object_pairs_hook=Pairs)
            body = frames[1]
        else:  # packed, [header and body]: one msgpack value, then the body's bytes
            unpacker = msgpack.Unpacker(raw=False, object_pairs_hook=Pairs)
            unpacker.feed(frames[0])
            header = unpacker.unpack()
            body = frames[0][unpacker.tell():]
    except Exception as error:  # noqa: BLE001 - any failure to parse is the same verdict
        raise Rejected("malformed header") from error
    known = {}
    if isinstance(header, Pairs):  # version 1: a map (Pairs is a list too, so this test comes first)
        version = 1
        _named_fields(header, MAP_KEYS, known)
    elif isinstance(header, list):  # version 2: an array
        version = 2
        known.update(zip(POSITIONS, header))
        if len(header) > 5:
            if not isinstance(header[5], Pairs):
                raise Rejected("wrong type")
            _named_fields(header[5], EXTENSION_KEYS, known)
    else:
        raise Rejected("header not an array or map")
    for key, value in known.items():
        if not CHECKS[key](value):
            raise Rejected("wrong type")
    if "v" in known and known["v"] != version:
        raise Rejected("unsupported version")
    for key in REQUIRED:
        if key not in known:
            raise Rejected("missing field")
    if len(known["id"]) != 16 or not _is_uint(known["ts"], 2**63 - 1):
        raise Rejected("value out of range")
    if not _is_uint(known.get("pri", 0), 9) or not _is_uint(known.get("att", 0), 2**32 - 1):
        raise Rejected("value out of range")
    if not _is_uint(known.get("seq", 0), 2**64 - 1):
        raise Rejected("value out of range")
    if "src" in known and not 1 <= len(known["src"].encode()) <= 255:
        raise Rejected("value out of range")
    if known.get("seq", 0) != 0 and "src" not in known:
        raise Rejected("missing field")
    headers = dict(known.get("h", []))
    if len(headers) != len(known.get("h", [])):
        raise Rejected("duplicate field")
    known["h"] = headers
    known["form"] = version
    known["packed"] = len(frames) == 1
    return known, body


TOPIC_LIMIT = 1024  # a reader's default limit on a topic's bytes


def decode_fanout(frames):
    """Section 1's PUB/SUB forms: [topic][header][body], [topic][header+body], or topic-packed
    [topic+header+body+n], n being the topic's length in the frame's last 2 bytes, big-endian.
    Returns (topic, fields, body)."""
    if len(frames) == 1:
        frame = frames[0]
        if len(frame) < 2:
            raise Rejected("malformed header")
        topic_length = int.from_bytes(frame[-2:], "big")
        if topic_length > TOPIC_LIMIT:
            raise Rejected("frame too large")
        if topic_length > len(frame) - 2:
            raise Rejected("malformed header")
        known, body = decode([frame[topic_length:-2]])
        known["topic_packed"] = True
        return frame[:topic_length], known, body
    if len(frames[0]) > TOPIC_LIMIT:
        raise Rejected("frame too large")
    known, body = decode(frames[1:])
    known["topic_packed"] = False
    return frames[0], known, body


def topic_packed(topic, header, body=b""):
    return topic + header + body + len(topic).to_bytes(2, "big")


def python_verdict(decoder, frames):
    """The reason this file's reader rejects `frames` with, or None if it accepts them."""
    try:
        decoder(frames)
        return None
    except Rejected as error:
        return str(error)


def fresh(**extra):
    fields = {"id": uuid.uuid4().bytes, "ts": time.time_ns() // 1000}
    fields.update(extra)
    return fields


def map_header(fields):
    """Version 1: every field by name in one map."""
    return msgpack.packb({"v": 1, **fields}, use_bin_type=True)


def array_header(fields, later=()):
    """Version 2: [v, id, ts, pri, att, {seq, src, h, ...}], trailing defaults left out. Keys that are
    not positions go into the extension map; `later` elements go after it."""
    fields = dict(fields)
    array = [fields.pop("v", 2), fields.pop("id"), fields.pop("ts"),
             fields.pop("pri", 0), fields.pop("att", 0), fields]
    if not later:
        while len(array) > 3 and array[-1] in (0, {}):
            array.pop()
    return msgpack.packb(array + list(later), use_bin_type=True)


def main():
    relay_path = sys.argv[1]
    failures = []

    def expect(condition, what):
        if not condition:
            failures.append(what)
            print("FAIL:", what)

    with tempfile.TemporaryDirectory() as directory:
        into = "ipc://" + os.path.join(directory, "in")
        back = "ipc://" + os.path.join(directory, "out")
        relay = subprocess.Popen([relay_path, into, back])
        try:
            context = zmq.Context()
            push = context.socket(zmq.PUSH)
            push.connect(into)
            pull = context.socket(zmq.PULL)
            pull.connect(back)
            pull.RCVTIMEO = 10000

            def round_trip(frames):
                push.send_multipart(frames)
                return decode(pull.recv_multipart())

            # 1. A message using every field, plus unknown keys the reader must ignore, in both
            #    forms. The C++ side always answers in version 2's form.
            body = b"\x00binary\xffbody"
            for form, header_bytes in ((1, map_header), (2, array_header)):
                sent = fresh(pri=7, att=2, seq=41, src="py-stream",
                             h={"type": "ORDER_CREATED", "lang": "python"},
                             future={"nested": [1, 2.5, None]})
                got, got_body = round_trip([header_bytes(sent), body])
                expect(got["form"] == 2, f"form {form}: answered in version 2")
                expect(got["id"] == sent["id"], f"form {form}: id survives")
                expect(got["ts"] == sent["ts"], f"form {form}: ts survives")
                expect(got["pri"] == 7, f"form {form}: priority survives")
                expect(got["att"] == 3, f"form {form}: attempt incremented by the relay")
                expect(got["seq"] == 41 and got["src"] == "py-stream", f"form {form}: seq and src survive")
                expect(got["h"] == {"type": "ORDER_CREATED", "lang": "python", "relayed": "c++"},
                       f"form {form}: headers survive and the relay's header is added")
                expect(got_body == body, f"form {form}: binary body survives")

            # 1b. The packed form, both ways: the header with the body right after it, in one
            #     frame. The C++ side packs bodies up to 1 KiB and sends larger ones in two frames.
            for size in (0, 100, 1024, 1025):
                sent = fresh(h={"size": str(size)})
                got, got_body = round_trip([array_header(sent) + b"p" * size])
                expect(got["id"] == sent["id"] and got_body == b"p" * size,
                       f"packed {size}-byte body survives")
                expect(got["packed"] == (size <= 1024),
                       f"C++ answers a {size}-byte body {'packed' if size <= 1024 else 'in two frames'}")

            # 2. Later elements of version 2's array are skipped whatever they hold.
            got, _ = round_trip([array_header(fresh(pri=1), later=[{"x": [1]}, 2.5, None]), b""])
            expect(got["pri"] == 1, "elements after the extension map are ignored")

            # 3. The minimal message: C++ leaves defaults out, and they read back as defaults. A
            #    relayed message has an attempt, so its header is [2, id, ts, 0, 1, {h}].
            got, got_body = round_trip([array_header(fresh()), b""])
            expect(got.get("pri", 0) == 0 and got_body == b"", "minimal message")
            plain = array_header(fresh())
            expect(len(plain) == 29 and plain[0] == 0x93, "a plain header is 29 bytes")

            # 4. Each rejection reason, named by the C++ reader.
            def rejection(frames):
                got, _ = round_trip(frames)
                return got["h"].get("rejected")

            no_id = fresh()
            del no_id["id"]
            cases = [
                ([map_header(no_id), b""], "missing field"),
                ([map_header(fresh(seq=3)), b""], "missing field"),
                ([array_header(fresh(seq=3)), b""], "missing field"),
                ([msgpack.packb([2, uuid.uuid4().bytes]), b""], "missing field"),
                ([map_header(fresh(id="sixteen chars!!!")), b""], "wrong type"),
                ([array_header(fresh(id="sixteen chars!!!")), b""], "wrong type"),
                ([map_header(fresh(h={"k": 1})), b""], "wrong type"),
                ([array_header(fresh(h={"k": 1})), b""], "wrong type"),
                ([msgpack.packb([2, uuid.uuid4().bytes, 1, 0, 0, [1]], use_bin_type=True), b""],
                 "wrong type"),
                ([map_header(fresh(pri=10)), b""], "value out of range"),
                ([array_header(fresh(pri=10)), b""], "value out of range"),
                ([map_header(fresh(id=b"short")), b""], "value out of range"),
                ([array_header(fresh(id=b"short")), b""], "value out of range"),
                ([map_header(fresh(v=2)), b""], "unsupported version"),
                ([array_header(fresh(v=1)), b""], "unsupported version"),
                ([b"\xc1", b""], "malformed header"),
                ([array_header(fresh())[:-1], b""], "malformed header"),
                ([array_header(fresh())[:-1]], "malformed header"),  # packed, cut inside the header
                ([b"*body"], "header not an array or map"),  # packed: 42 is no header
                ([msgpack.packb(7), b""], "header not an array or map"),
                ([array_header(fresh()), b"", b""], "extra frames"),
            ]
            for frames, reason in cases:
                got_reason = rejection(frames)
                expect(got_reason == reason, f"C++ rejects with {reason!r} (got {got_reason!r})")
                # ... and this file's reader agrees.
                python_reason = python_verdict(decode, frames)
                expect(python_reason == reason, f"python rejects with {reason!r} (got {python_reason!r})")

            push.send_multipart([array_header(fresh(h={"stop": "1"})), b""])
            expect(relay.wait(timeout=10) == 0, "relay exits cleanly")
        finally:
            if relay.poll() is None:
                relay.kill()
            context.destroy(linger=0)

    with tempfile.TemporaryDirectory() as directory:
        fanout_checks(relay_path, directory, expect)

    if failures:
        print(f"python interop: {len(failures)} failure(s)")
        return 1
    print("python interop OK")
    return 0


def fanout_checks(relay_path, directory, expect):
    """The PUB/SUB forms against a C++ Subscriber and Publisher."""
    into = "ipc://" + os.path.join(directory, "fanout-in")
    back = "ipc://" + os.path.join(directory, "fanout-out")
    relay = subprocess.Popen([relay_path, "--fanout", into, back])
    context = zmq.Context()
    try:
        pub = context.socket(zmq.XPUB)  # XPUB: its subscription notices say when the relay listens
        pub.connect(into)
        pub.RCVTIMEO = 10000
        expect(pub.recv() == b"\x01", "the C++ Subscriber subscribes to everything")
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(back)
        sub.RCVTIMEO = 10000
        last_seq = 0

        def round_trip(frames):
            nonlocal last_seq
            pub.send_multipart(frames)
            topic, got, body = decode_fanout(sub.recv_multipart())
            # The C++ Publisher numbers what it sends 1, 2, 3... in one stream.
            expect(got.get("seq") == last_seq + 1 and got.get("src"), "C++ publishes in sequence")
            last_seq = got.get("seq", last_seq)
            return topic, got, body

        # 1. Every form in, topic-packed out for small bodies and three frames above 1 KiB; topics
        #    of any bytes, including none and bytes that look like msgpack.
        for topic in (b"", b"orders.eu", b"\x96\x00\xff"):
            for size in (0, 100, 1024, 1025):
                body = b"b" * size
                sent = fresh(seq=7, src="py-stream", h={"size": str(size)})
                for form, frames in (("topic-packed", [topic_packed(topic, array_header(sent), body)]),
                                     ("[topic][packed]", [topic, array_header(sent) + body]),
                                     ("three frames", [topic, array_header(sent), body])):
                    got_topic, got, got_body = round_trip(frames)
                    what = f"{form}, topic {topic!r}, {size}-byte body"
                    expect(got_topic == topic and got["id"] == sent["id"] and got_body == body,
                           f"{what}: topic, id and body survive")
                    expect(got["att"] == 1 and got["h"].get("relayed") == "c++",
                           f"{what}: relayed by C++")
                    expect(got["topic_packed"] == (size <= 1024),
                           f"{what}: C++ answers {'topic-packed' if size <= 1024 else 'in three frames'}")

        # 2. Rejections, named by the C++ reader, and this file's reader agrees.
        header = array_header(fresh())
        cases = [
            ([b"t"], "malformed header"),  # no room for the topic's length
            ([b"orders"], "frame too large"),  # a topic alone: "rs" reads as a 29299-byte topic
            ([b"ab" + header + (len(header) + 3).to_bytes(2, "big")], "malformed header"),
            ([b"t" * 2000 + header + (2000).to_bytes(2, "big")], "frame too large"),
            ([b"t" * 2000, header, b""], "frame too large"),
            ([topic_packed(b"t", header[:-1])], "malformed header"),
            ([topic_packed(b"t", b"*body")], "header not an array or map"),
            ([b"t", header, b"", b""], "extra frames"),
        ]
        for frames, reason in cases:
            pub.send_multipart(frames)
            topic, got, _ = decode_fanout(sub.recv_multipart())
            last_seq = got.get("seq", last_seq)
            got_reason = got["h"].get("rejected")
            expect(topic == b"rejected" and got_reason == reason,
                   f"C++ Subscriber rejects with {reason!r} (got {got_reason!r})")
            python_reason = python_verdict(decode_fanout, frames)
            expect(python_reason == reason, f"python rejects with {reason!r} (got {python_reason!r})")

        pub.send_multipart([topic_packed(b"", array_header(fresh(h={"stop": "1"})))])
        expect(relay.wait(timeout=10) == 0, "fanout relay exits cleanly")
    finally:
        if relay.poll() is None:
            relay.kill()
        context.destroy(linger=0)


if __name__ == "__main__":
    sys.exit(main())
