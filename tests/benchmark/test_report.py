"""Table, ratio and progress line."""

from __future__ import annotations

import io
from typing import Any

from groupcomm.benchmark.report import ProgressLine, ratio, ratio_line, summary, table


def rec(system: str, rate: float, p50: float, run: int = 0) -> dict[str, Any]:
    return {
        "system": system,
        "run": run,
        "ok": True,
        "problems": [],
        "deliver_rate_min": rate,
        "p50_us": p50,
        "p99_us": 2 * p50,
    }


def test_ratio_of_medians() -> None:
    records = [rec("groupcomm", 10_000, 400), rec("zmq", 300_000, 100), rec("zmq", 100_000, 300)]
    r = ratio(records)
    assert r["tput_ratio"] == 0.05  # 10k / median(300k, 100k) = 10k / 200k
    assert r["p50_ratio"] == 2.0
    assert "0.050x" in ratio_line(r)


def test_table_and_summary_show_every_run_and_problem() -> None:
    bad = rec("groupcomm", 1.0, 1.0, run=1) | {"ok": False, "problems": ["loss 0.5"]}
    records = [rec("groupcomm", 12_345.6, 400.0), bad]
    text = table(records)
    assert "12,346" in text and "NO" in text and "loss 0.5" in text
    assert "ok 1/2" in summary(records)


def test_progress_line_overwrites_and_clears() -> None:
    out = io.StringIO()
    p = ProgressLine(True, out)
    p.prefix = "run 1/3"
    p("measuring 2.0/7 s")
    p("x")
    p.clear()
    text = out.getvalue()
    assert text.startswith("\rrun 1/3: measuring 2.0/7 s")
    assert text.endswith("\r")


def test_progress_line_silent_when_disabled() -> None:
    out = io.StringIO()
    p = ProgressLine(False, out)
    p("anything")
    p.clear()
    assert out.getvalue() == ""
    assert not ProgressLine(None, io.StringIO()).enabled  # not a terminal


def test_latency_runs_get_a_line_of_p50_by_path() -> None:
    lat = rec("groupcomm", 1000, 1500) | {
        "kind": "lat",
        "p50_us_by_path": {"d1>d1": 971.4, "d1>d2": 1617.0},
        "sequencer": "d1",
    }
    tput = rec("groupcomm", 100_000, 400_000, run=1) | {"kind": "tput", "p50_us_by_path": {}}
    out = table([lat, tput])
    line = "groupcomm run 0 p50 us by path (sender>receiver, sequencer d1): d1>d1 971 d1>d2 1,617"
    assert line in out
    assert "run 1 p50 us by path" not in out


def test_large_messages_show_size_mb_per_s_and_peak_rss() -> None:
    big = {
        "size": 64 << 20,
        "mbytes_per_s": 26.8,
        "mbytes_per_s_sum": 80.5,
        "daemon_rss_mb": [542.0, 568.3, 511.0],
        "member_rss_mb": {"0": 541.0, "1": 526.0, "2": 520.0},
    }
    ours = rec("groupcomm", 0.4, 2e7) | big
    base = rec("zmq", 1.2, 2e6) | big | {"mbytes_per_s": 80.5, "daemon_rss_mb": []}
    text = table([ours, base])
    assert "64MiB" in text and "26.8" in text and "542/568/511" in text and "541/526/520" in text
    lines = summary([ours, base]).splitlines()
    assert "MB/s per receiver (slowest) 26.8 (26.8-26.8)" in lines[0]
    assert "MB/s summed over receivers 80.5" in lines[0] and "peak daemon RSS 568 MiB" in lines[0]
    assert "peak daemon RSS" not in lines[1]
    r = ratio([ours, base])
    assert r["mbytes_ratio"] == round(26.8 / 80.5, 3)
    assert "MB/s 0.333x" in ratio_line(r)
