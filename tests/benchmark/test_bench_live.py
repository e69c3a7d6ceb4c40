"""``groupcomm bench`` end to end: 3 real daemons on loopback, member processes, one short
latency run at a small rate (light enough for a shared test machine), checked for its fields
and for what AGREED promises; the same on a namespace LAN (root only) on both data planes,
checked for the per-daemon wire figures: which protocol carried the data, and which host's
bytes are per sent and which per delivered message. No figure is asserted: speed is never a
test outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.netlan_support import require_netns, require_pgm

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
    "member_rss_mb",
    "mbytes_per_s_sum",
    "client_us_per_msg",
)


def bench(*extra: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """One short latency run at 300 msg/s; its record and the finished process."""
    argv = ["--runs", "1", "--dur", "2", "--warm", "0.5", "--kind", "lat", "--lat-rate", "300"]
    done = subprocess.run(
        [sys.executable, "-m", "groupcomm", "bench", *argv, *extra, "--json", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout + done.stderr
    return lines[0], done


def test_bench_agreed_latency_run() -> None:
    r, done = bench()
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
    assert all(mb > 0 for mb in r["daemon_rss_mb"]) and len(r["member_rss_mb"]) == 3
    assert r["ok"], r["problems"]
    assert done.returncode == 0


@pytest.mark.parametrize("transport", ["tcp", "epgm"])
def test_bench_on_a_lan_reports_wire_bytes_per_daemon(transport: str) -> None:
    require_netns()
    if transport == "epgm":
        require_pgm()
    # a slower failure detector: a loaded test machine must not split the view
    lan = ["--mode", "one", "--netns", "--transport", transport]
    r, done = bench(*lan, "--protocol", "suspect_timeout_ms=1000")
    assert r["ok"], r["problems"]
    assert (r["transport"], r["placement"], r["batch"]) == (transport, "netns", 1)
    per = r["wire_per_daemon"]
    assert set(per) == {"d1", "d2", "d3"}
    sender = per["d1"]  # the sender's host: per message it originated
    assert sender["per"] == "sent" and sender["originated"] > 0
    data = "mcast" if transport == "epgm" else "tcp"
    assert sender[data] > 0 and sender["bytes_per_sent_msg"] > 0
    if transport == "tcp":
        assert sender["mcast"] == 0
    for name in ("d2", "d3"):  # only receivers there: per delivered message
        assert per[name]["per"] == "delivered" and per[name]["bytes_per_sent_msg"] is None
    assert len(r["wire_out_bytes_per_msg"]) == 3
    assert done.returncode == 0
