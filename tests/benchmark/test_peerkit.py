"""The peer kit's runs.jsonl as latency curves: which lines count, the offered rate, the
medians, failing points, and the curves' names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groupcomm.benchmark.peerkit import (
    load_curves,
    offered_rate,
    peer_points,
    peer_runs,
    read_runs,
    run_problems,
    system_names,
)
from groupcomm.benchmark.sweepreport import knee
from tests.benchmark.support_peers import cpg_lines, peer_line, write_lines


def test_latency_runs_of_the_size_become_medians_per_rate(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "runs.jsonl", cpg_lines())
    runs = peer_runs(read_runs(path), 100, rates=(1000.0, 5000.0, 20_000.0))
    assert len(runs) == 7  # not the throughput, mode one and 1000 B lines
    points = peer_points(runs)
    assert list(points) == ["cpg"]
    cpg = points["cpg"]
    assert [p.rate for p in cpg] == [1000.0, 5000.0, 20_000.0]
    assert (cpg[0].p50_us, cpg[0].p99_us, cpg[0].delivered) == (290.0, 3600.0, 1000.0)
    assert (cpg[0].ok, cpg[0].runs, cpg[0].failing) == (3, 3, False)
    assert (cpg[1].p50_us, cpg[1].ok, cpg[1].runs) == (500.0, 2, 3)  # one run lost messages
    assert cpg[1].failing and knee(cpg) == 5000.0
    # all ok, but 15,000 delivered of 20,000 offered: below 95 %, it cannot keep up
    assert cpg[2].ok == cpg[2].runs == 1 and cpg[2].failing
    assert peer_points(peer_runs(read_runs(path), 1000))["cpg"][0].p50_us == 700.0


def test_offered_rate_from_the_raw_results_else_the_send_rate(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "cpg-3node-knet_all_lat_100_r0_1"
    raw.mkdir(parents=True)
    for mid in range(3):
        member = {"id": mid, "send": 1, "recv": 1, "rate_cfg": 6666.67, "lat_ns": [1, 2]}
        (raw / f"m{mid}.json").write_text(json.dumps(member))
    behind = peer_line(rundir=str(raw), send_rate_total=15_000.0)
    assert offered_rate(behind) == (20_000.0, "rate_cfg")
    moved = peer_line(rundir="/gone/raw/cpg-3node-knet_all_lat_100_r0_1", send_rate_total=15e3)
    assert offered_rate(moved, base=tmp_path) == (20_000.0, "rate_cfg")  # raw/ beside the file
    assert offered_rate(moved) == (15_000.0, "send_rate_total")  # a guess: the sender fell behind
    assert offered_rate(peer_line(), rates=(1000.0, 5000.0)) == (1000.0, "send_rate_total")
    assert offered_rate(peer_line(send_rate_total=4871.3), rates=(1000.0, 5000.0)) == (
        5000.0,
        "send_rate_total",
    )  # within 5 % of a sweep rate
    assert offered_rate(peer_line(send_rate_total=4321.0), rates=(5000.0,)) == (
        4320.0,
        "send_rate_total",
    )  # not near any: 3 significant digits
    assert offered_rate(peer_line(lat_rate=8000)) == (8000.0, "lat_rate")
    assert offered_rate(peer_line(send_rate_total=None)) is None


def test_a_run_is_ok_without_failure_loss_gaps_or_order_mismatch() -> None:
    assert run_problems(peer_line()) == []
    assert run_problems(peer_line(ok=False, rc={"0": "killed"}))[0].startswith("a member failed")
    assert run_problems(peer_line(loss_max=0.01)) == ["loss 0.01"]
    assert run_problems(peer_line(gaps=[3])) == ["gaps [3]"]
    assert run_problems(peer_line(late_start=[{"1": 7}])) == [
        "a receiver missed the start of a stream"
    ]
    assert run_problems(peer_line(order_same=False)) == ["the receivers saw different orders"]
    assert "no latency samples" in run_problems(peer_line(lat_p50_us=None))


def test_curve_names_are_short_unless_ambiguous() -> None:
    assert system_names(["cpg-3node-knet", "spread-3daemon-agreed", "redis"]) == {
        "cpg-3node-knet": "cpg",
        "spread-3daemon-agreed": "spread",
        "redis": "redis",
    }
    both = ["cpg-3node-knet", "cpg-3node-knet-sched_rr"]  # one short name: whole labels
    assert system_names(both) == {label: label for label in both}
    # the sweep's own systems keep their names
    assert system_names(["zmq-tcp-raw", "zmq"]) == {
        "zmq-tcp-raw": "zmq-tcp-raw",
        "zmq": "zmq (peer kit)",
    }


def test_several_systems_and_files_and_a_label_filter(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_lines(tmp_path / "a" / "runs.jsonl", cpg_lines()[:3])
    spread = [peer_line(label="spread-3daemon-agreed", peer="spread", lat_p50_us=800.0)]
    second = write_lines(tmp_path / "b" / "runs.jsonl", [*spread, peer_line(run=3)])
    curves = load_curves([first, second], 100, (1000.0,))
    assert list(curves.points) == ["cpg", "spread"]
    assert curves.points["cpg"][0].runs == 4 and curves.points["spread"][0].p50_us == 800.0
    text = curves.describe()
    assert "cpg (label cpg-3node-knet; nodes ns; 4 runs)" in text
    assert "spread (label spread-3daemon-agreed; nodes ns, AGREED; 1 run)" in text
    assert "measured send rate" in text  # no raw results: the rate is a guess
    only = load_curves([first, second], 100, (1000.0,), labels=("cpg",))
    assert list(only.points) == ["cpg"]
    assert list(load_curves([second], 100, labels=("spread-3daemon-agreed",)).points) == ["spread"]


def test_describe_lists_the_runs_that_were_not_ok(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "runs.jsonl", cpg_lines())
    text = load_curves([path], 100, (1000.0, 5000.0)).describe()
    assert "- cpg at 5,000 msg/s, run 3: loss 0.002" in text
    assert load_curves([path], 10_000).describe() == ""  # no runs at that size


def test_unreadable_lines_are_errors(tmp_path: Path) -> None:
    bad = tmp_path / "runs.jsonl"
    bad.write_text('{"label": "cpg"}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2"):
        read_runs(bad)
    with pytest.raises(OSError):
        read_runs(tmp_path / "missing.jsonl")
