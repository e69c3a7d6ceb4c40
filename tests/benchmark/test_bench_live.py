"""``groupcomm bench`` end to end: 3 real daemons on loopback, member processes, one short
latency run at a small rate (light enough for a shared test machine), checked for its fields
and for what AGREED promises. No figure is asserted: speed is never a test outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIELDS = (
    "deliver_rate_min",
    "mbytes_per_s",
    "send_rate",
    "p50_us",
    "p99_us",
    "order_same",
    "loss",
    "daemon_cpu_pct",
    "daemon_rss_mb",
    "client_us_per_msg",
)


def test_bench_agreed_latency_run() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "groupcomm",
            "bench",
            "--runs",
            "1",
            "--dur",
            "2",
            "--warm",
            "0.5",
            "--kind",
            "lat",
            "--lat-rate",
            "300",
            "--json",
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout + done.stderr
    r = lines[0]
    for field in FIELDS:
        assert field in r, field
    assert (r["system"], r["mode"], r["service"], r["kind"]) == (
        "groupcomm",
        "all",
        "agreed",
        "lat",
    )
    assert r["loss"] == 0
    assert r["order_same"] is True
    assert r["sent_total"] > 0 and r["lat_n"] > 0
    assert len(r["daemon_cpu_pct"]) == 3 and len(r["daemon_rss_mb"]) == 3
    assert r["ok"], r["problems"]
    assert done.returncode == 0
