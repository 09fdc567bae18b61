#!/usr/bin/env python3
"""CI's smoke run of `zmqkit bench --quick`: every measurement runs and yields a figure.

Nothing about speed is asserted; the figures of a run on a shared CI machine mean little. What is
checked is that the benchmark still works end to end, so a real run on a user's machine does too.
Usage: bench_smoke_check.py PATH_TO_zmqkit
"""
import json
import subprocess
import sys
import tempfile


def main():
    with tempfile.TemporaryDirectory() as data_dir:
        run = subprocess.run([sys.argv[1], "bench", "--quick", "--json", "--data-dir", data_dir],
                             capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    report = json.loads(run.stdout)
    assert report["failures"] == [], report["failures"]
    sections = {figure["section"] for figure in report["figures"]}
    expected = {"limits", "brokerless", "broker", "idle", "backlog", "memory", "scaling", "latency",
                "recovery"}
    assert sections == expected, sections
    for figure in report["figures"]:
        assert figure["value"] > 0, figure
    names = " | ".join(figure["name"] for figure in report["figures"])
    for storage in ("in memory", "fsync never", "fsync batch", "fsync always"):
        assert "1 consumer, " + storage in names, storage
    for storage in ("fsync batch", "fsync always"):
        assert "publish->confirm, one at a time, p50, " + storage in names, storage
    idle = [figure for figure in report["figures"] if figure["section"] == "idle"]
    assert len(idle) == 2 and "10 idle queues" in idle[1]["versus"], idle
    # --quick caps the backlog at 20,000: depths 1K and 10K.
    scaling = [figure for figure in report["figures"] if figure["section"] == "scaling"]
    assert len(scaling) == 2, scaling
    print(f"bench smoke OK: {len(report['figures'])} figures")


if __name__ == "__main__":
    main()
