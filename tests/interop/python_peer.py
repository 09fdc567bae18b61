#!/usr/bin/python3
"""A zmqkit peer in Python, written from docs/wire-format.md alone (pyzmq + msgpack).

Starts the C++ envelope_relay helper, sends it envelopes encoded by this file, and decodes what the
C++ side sends back, checking every rule of the spec on both sides.
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


class Rejected(Exception):
    pass


class Pairs(list):
    """A msgpack map as its list of (key, value) pairs, so duplicate keys stay visible."""


def _is_uint(value, maximum):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def decode(frames):
    """Section 2's reader rules, in order."""
    if len(frames) < 2:
        raise Rejected("missing frames")
    if len(frames) > 2:
        raise Rejected("extra frames")
    try:
        header = msgpack.unpackb(frames[0], raw=False, object_pairs_hook=Pairs)
    except Exception as error:  # noqa: BLE001 - any failure to parse is the same verdict
        raise Rejected("malformed header") from error
    if not isinstance(header, Pairs):
        raise Rejected("header not a map")
    known = {}
    for key, value in header:
        if not isinstance(key, str) or key not in ("v", "id", "ts", "pri", "att", "seq", "src", "h"):
            continue  # unknown keys are ignored
        if key in known:
            raise Rejected("duplicate field")
        known[key] = value
    checks = {
        "v": lambda v: _is_uint(v, 2**64 - 1),
        "id": lambda v: isinstance(v, bytes),
        "ts": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "pri": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "att": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "seq": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "src": lambda v: isinstance(v, str),
        "h": lambda v: isinstance(v, Pairs)
        and all(isinstance(k, str) and isinstance(x, str) for k, x in v),
    }
    for key, value in known.items():
        if not checks[key](value):
            raise Rejected("wrong type")
    if "v" in known and known["v"] != 1:
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
    if known.get("seq", 0) != 0 and "src" not in known:
        raise Rejected("missing field")
    headers = dict(known.get("h", []))
    if len(headers) != len(known.get("h", [])):
        raise Rejected("duplicate field")
    known["h"] = headers
    return known, frames[1]


def header_bytes(fields):
    return msgpack.packb(fields, use_bin_type=True)


def fresh(**extra):
    fields = {"v": 1, "id": uuid.uuid4().bytes, "ts": time.time_ns() // 1000}
    fields.update(extra)
    return fields


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

            # 1. A message using every field, plus an unknown key the reader must ignore.
            sent = fresh(pri=7, att=2, seq=41, src="py-stream",
                         h={"type": "ORDER_CREATED", "lang": "python"},
                         future={"nested": [1, 2.5, None]})
            body = b"\x00binary\xffbody"
            got, got_body = round_trip([header_bytes(sent), body])
            expect(got["id"] == sent["id"], "id survives")
            expect(got["ts"] == sent["ts"], "ts survives")
            expect(got["pri"] == 7, "priority survives")
            expect(got["att"] == 3, "attempt incremented by the relay")
            expect(got["seq"] == 41 and got["src"] == "py-stream", "seq and src survive")
            expect(got["h"] == {"type": "ORDER_CREATED", "lang": "python", "relayed": "c++"},
                   "headers survive and the relay's header is added")
            expect(got_body == body, "binary body survives")

            # 2. The minimal message: C++ leaves defaults out, and they read back as defaults.
            got, got_body = round_trip([header_bytes(fresh()), b""])
            expect(got.get("pri", 0) == 0 and got_body == b"", "minimal message")

            # 3. Each rejection reason, named by the C++ reader.
            def rejection(frames):
                got, _ = round_trip(frames)
                return got["h"].get("rejected")

            no_id = fresh()
            del no_id["id"]
            cases = [
                ([header_bytes(no_id), b""], "missing field"),
                ([header_bytes(fresh(seq=3)), b""], "missing field"),
                ([header_bytes(fresh(id="sixteen chars!!!")), b""], "wrong type"),
                ([header_bytes(fresh(h={"k": 1})), b""], "wrong type"),
                ([header_bytes(fresh(pri=10)), b""], "value out of range"),
                ([header_bytes(fresh(id=b"short")), b""], "value out of range"),
                ([header_bytes(fresh(v=2)), b""], "unsupported version"),
                ([b"\xc1", b""], "malformed header"),
                ([header_bytes(fresh())[:-1], b""], "malformed header"),
                ([header_bytes([1, 2, 3]), b""], "header not a map"),
                ([header_bytes(fresh())], "missing frames"),
                ([header_bytes(fresh()), b"", b""], "extra frames"),
            ]
            for frames, reason in cases:
                got_reason = rejection(frames)
                expect(got_reason == reason, f"C++ rejects with {reason!r} (got {got_reason!r})")
                # ... and this file's reader agrees.
                try:
                    decode(frames)
                    python_reason = None
                except Rejected as error:
                    python_reason = str(error)
                expect(python_reason == reason, f"python rejects with {reason!r} (got {python_reason!r})")

            push.send_multipart([header_bytes(fresh(h={"stop": "1"})), b""])
            expect(relay.wait(timeout=10) == 0, "relay exits cleanly")
        finally:
            if relay.poll() is None:
                relay.kill()
            context.destroy(linger=0)

    if failures:
        print(f"python interop: {len(failures)} failure(s)")
        return 1
    print("python interop OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
