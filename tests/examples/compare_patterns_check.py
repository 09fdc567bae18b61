#!/usr/bin/env python3
"""Runs compare_patterns in its quick mode and checks the claims its README and table make.

Usage: compare_patterns_check.py PATH_TO_compare_patterns
"""
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        svg = os.path.join(tmp, "chart.svg")
        run = subprocess.run([binary, "--quick", "--json", "--svg", svg],
                             capture_output=True, text=True, timeout=150)
        assert run.returncode == 0, f"exit {run.returncode}: {run.stderr}"
        report = json.loads(run.stdout)
        chart = ET.parse(svg).getroot()

    rows = {row["pattern"]: row for row in report["patterns"]}
    expected = ["push-pull", "push-pull-resend", "pub-sub", "broker-memory", "broker-durable"]
    assert list(rows) == expected, list(rows)
    tasks = report["tasks"]
    assert tasks == 2000, tasks

    for name, row in rows.items():
        assert "failure" not in row, (name, row)
        # Honest counting: every task sent is either delivered or lost.
        assert row["sent"] == tasks and row["delivered"] + row["lost"] == tasks, (name, row)
        assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"], (name, row)
        faults = " | ".join(row["faults"])
        # The same faults were applied to every pattern.
        assert "consumer 1 SIGKILLed" in faults, (name, faults)
        assert "consumer 3 joined late" in faults, (name, faults)
        assert "producer exited" in faults, (name, faults)
        assert ("broker SIGKILLed and restarted" in faults) == name.startswith("broker"), (name, faults)
        assert row["verdict"], name

    # The claims.
    assert rows["push-pull"]["lost"] > 0, "PUSH/PULL lost nothing although a consumer was killed"
    assert rows["push-pull-resend"]["lost"] == 0, rows["push-pull-resend"]
    assert rows["push-pull-resend"]["producer"]["resent"] > 0, rows["push-pull-resend"]
    # Shard 3 had no subscriber before consumer 3 joined: those tasks cannot have reached anyone.
    assert rows["pub-sub"]["lost"] > 0, rows["pub-sub"]
    assert rows["broker-durable"]["lost"] == 0, rows["broker-durable"]
    assert rows["broker-durable"]["producer"]["confirmed"] == 1, rows["broker-durable"]

    # The baseline: without faults no pattern loses or duplicates anything, so the losses above
    # are the faults' doing. (The two cheap patterns suffice to show the run itself is sound.)
    baseline = subprocess.run([binary, "--quick", "--json", "--no-faults", "--svg", "",
                               "--patterns", "push-pull,pub-sub"],
                              capture_output=True, text=True, timeout=60)
    assert baseline.returncode == 0, baseline.stderr
    for row in json.loads(baseline.stdout)["patterns"]:
        assert row["lost"] == 0 and row["duplicated"] == 0 and row["faults"] == [], row

    titles = [text.text for text in chart.iter("{http://www.w3.org/2000/svg}text")]
    for row in rows.values():
        assert row["title"] in titles, (row["title"], titles)
    print("compare_patterns claims OK:",
          ", ".join(f"{name} lost {row['lost']} dup {row['duplicated']}" for name, row in rows.items()))


if __name__ == "__main__":
    main()
