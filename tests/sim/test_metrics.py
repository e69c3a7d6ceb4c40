"""Run metrics (sim.metrics): exact values on a hand-written trace, plausible values on a
simulated partition and heal, and the ``--metrics`` / ``--metrics-json`` outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.__main__ import main
from sim.metrics import RunnerCounters, compute_metrics, fault_sides, format_metrics, percentile
from sim.options import FaultPlan, SimOptions
from sim.run import run
from sim.trace import Fault, load_trace

D1, D2, D3 = "d1:0", "d2:0", "d3:0"


def _inst(t: int, d: str, conf: str, members: list[str], epoch: int) -> list[dict[str, Any]]:
    """A regular install, after its transitional one unless it is the daemon's first."""
    out: list[dict[str, Any]] = []
    if epoch:
        out.append(
            {"t": t, "ev": "install", "d": d, "conf": f"T{epoch}<{d}", "kind": "transitional",
             "members": [d], "epoch": epoch}
        )  # fmt: skip
    out.append(
        {"t": t, "ev": "install", "d": d, "conf": conf, "kind": "regular", "members": members,
         "epoch": epoch}
    )  # fmt: skip
    return out


def _trace(crash_d2: bool = False) -> list[dict[str, Any]]:
    ev: list[dict[str, Any]] = []
    for d in (D1, D2, D3):
        ev += _inst(0, d, f"R0.{d}", [d], 0)
    for d in (D1, D2, D3):
        ev += _inst(10, d, "R1", [D1, D2, D3], 1)
    ev.append({"t": 100, "ev": "send", "d": D1, "p": "#a#d1", "mid": "m1", "svc": "AGREED",
               "self_discard": False, "groups": ["g"], "conf": "R1"})  # fmt: skip
    for t, d in ((104, D1), (105, D2), (110, D3)):
        ev.append({"t": t, "ev": "deliver", "d": d, "mid": "m1", "svc": "AGREED", "conf": "R1"})
    ev.append({"t": 200, "ev": "fault", "what": "partition", "args": [0, 0, 1],
               "sides": [["d1", "d2"], ["d3"]]})  # fmt: skip
    if crash_d2:
        ev.append({"t": 300, "ev": "crash", "d": D2})
    ev += _inst(460, D3, "R2.d3", [D3], 2)
    ev += _inst(470, D1, "R2.d1", [D1] if crash_d2 else [D1, D2], 2)
    if not crash_d2:
        ev += _inst(480, D2, "R2.d1", [D1, D2], 2)
    ev.append({"t": 600, "ev": "fault", "what": "heal", "args": []})
    merged = [D1, D3] if crash_d2 else [D1, D2, D3]
    for t, d in ((650, D1), (655, D3), (652, D2)):
        if d in merged:
            ev += _inst(t, d, "R3", merged, 3)
    ev.sort(key=lambda e: e["t"])  # stable: each daemon's installs keep their order
    ev.append({"t": 700, "ev": "stable"})
    ev.append({"t": 800, "ev": "end", "live": merged})
    return ev


def test_metrics_of_a_known_trace() -> None:
    counters = RunnerCounters(
        frames_sent=300, frame_bytes=9000, naks=2, retransmitted=5, rounds=((D1, "R2.d1", 450),)
    )
    m = compute_metrics(load_trace(_trace()), counters)
    (cut,) = m.partitions
    assert cut.t == 200
    assert [(s.side, s.first_ms, s.all_ms) for s in cut.sides] == [
        (("d1", "d2"), 270, 280),
        (("d3",), 260, 260),
    ]
    heal, stable = m.merges
    assert (heal.what, heal.first_ms, heal.all_ms) == ("heal", 50, 55)
    assert (stable.what, stable.first_ms, stable.all_ms) == ("stable", 0, 0)
    assert [r.conf for r in m.rounds] == ["R1", "R2.d3", "R2.d1", "R3"]
    assert m.regular_views == 4 and m.regular_installs == 9
    r2 = m.rounds[2]
    assert (r2.members, r2.spread_ms, r2.duration_ms) == (2, 10, 30)
    assert m.rounds[0].duration_ms is None  # the runner reported no start for it
    (agreed,) = m.latency
    assert (agreed.svc, agreed.level, agreed.count, agreed.p50_ms, agreed.max_ms) == (
        "AGREED", "daemon", 3, 5, 10,
    )  # fmt: skip
    assert (m.messages_sent, m.messages_delivered) == (1, 1)
    assert (m.frames_per_message, m.bytes_per_message, m.naks) == (300.0, 9000.0, 2)
    assert "cut at    200 ms" in "\n".join(format_metrics(m))


def test_a_crashed_daemon_does_not_hold_back_detection_and_merge() -> None:
    m = compute_metrics(load_trace(_trace(crash_d2=True)))
    side = m.partitions[0].sides[0]
    assert (side.first_ms, side.all_ms) == (270, 270)
    assert m.merges[0].live == (D1, D3) and m.merges[0].all_ms == 55
    assert m.frames_sent is None and m.naks is None  # no runner counters


def test_an_unmerged_heal_has_no_merge_time() -> None:
    lines = [e for e in _trace() if not (e["ev"] == "install" and e["t"] >= 650)]
    heal = compute_metrics(load_trace(lines)).merges[0]
    assert heal.first_ms is None and heal.all_ms is None


def test_partition_sides_from_labels_and_percentiles() -> None:
    fault = Fault(idx=0, t=5, what="partition", details={"args": [1, 0, 1]})
    assert fault_sides(fault) == [["d2"], ["d1", "d3"]]
    assert fault_sides(Fault(idx=0, t=5, what="partition")) is None
    assert percentile([1, 2, 3, 4], 0.5) == 2 and percentile([7], 0.99) == 7
    assert percentile(list(range(1, 101)), 0.99) == 99


def test_metrics_of_a_simulated_partition_and_heal() -> None:
    opt = SimOptions(
        seed=2,
        daemons=4,
        safety_ms=1600,
        settle_ms=1400,
        quiet_ms=700,
        faults=(
            FaultPlan(at_ms=400, what="partition", args=(0, 0, 0, 1)),
            FaultPlan(at_ms=1100, what="heal"),
        ),
    )
    result = run(opt)
    assert result.ok, result.violations
    m = result.metrics
    assert m is not None
    (cut,) = m.partitions
    for side in cut.sides:
        assert side.first_ms is not None and side.all_ms is not None
        # suspicion needs suspect_timeout_ms of silence, counted from the last frame heard
        assert opt.suspect_timeout_ms - opt.heartbeat_ms <= side.first_ms <= side.all_ms < 700
    heal = m.merges[0]
    assert heal.what == "heal" and heal.all_ms is not None and 0 < heal.all_ms < 500
    assert m.merges[-1].what == "stable" and m.merges[-1].all_ms == 0
    assert m.regular_views >= 3  # start-up merge, one view per side, the merge
    assert all(r.duration_ms is not None and r.duration_ms >= 0 for r in m.rounds)
    assert {s.svc for s in m.latency} >= {"AGREED", "SAFE"}
    assert m.frames_per_message and m.bytes_per_message and m.frames_sent and m.naks is not None


def test_metrics_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["--seed", "3", "--safety-ms", "900", "--faults", "300:partition:d1/d2,d3"]
    args += ["--metrics", "--metrics-json", "m.json"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "partition detection" in out and "delivery latency" in out and "repairs:" in out
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["ok"] is True and record["options"]["safety_ms"] == 900
    assert record["metrics"]["partitions"][0]["sides"][0]["side"] == ["d1"]
