"""The sweep command line: its plan and estimate, refusals, and rendering earlier runs (no run
is started here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groupcomm.benchmark.sweep import build_parser, grid_from, main
from tests.benchmark.support_peers import cpg_lines, write_lines
from tests.benchmark.support_sweep import lat_records, rec


def test_dry_run_prints_the_plan_and_the_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--sizes", "100,1000", "--services", "agreed,safe", "--daemons", "3", "--runs", "2"]
    assert main([*argv, "--dur", "3", "--no-flood", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "tput: 12 runs (groupcomm, zmq)" in out  # 2 sizes x (2 services + baseline) x 2 runs
    assert "total: 12 runs, about" in out


def test_parts_follow_the_options() -> None:
    args = build_parser().parse_args(["--no-tput", "--lat-sweep", "1000,5000"])
    grid = grid_from(args)
    assert grid.parts == ("lat", "flood") and grid.lat_rates == (1000.0, 5000.0)
    assert build_parser().parse_args(["--services", "all"]).services[0] == "unreliable"
    for bad in (["--sizes", "x"], ["--sizes", "1M"], ["--services", "total"], ["--daemons", "0"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)
    sized = build_parser().parse_args(["--sizes", "100,100_000,1MiB", "--lat-size", "1kB"])
    assert sized.sizes == (100, 100_000, 1 << 20) and sized.lat_size == 1000


def test_refusals_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--transport", "epgm", "--dry-run"]) == 2
    assert "needs --netns" in capsys.readouterr().err
    assert main(["--no-tput", "--no-flood", "--dry-run"]) == 2
    assert main(["--sizes", "8", "--dry-run"]) == 2


def test_report_renders_earlier_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs.jsonl"
    records = [rec("tput", "zmq"), rec("tput", "groupcomm"), rec("flood", "groupcomm")]
    runs.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["--report", str(runs)]) == 0
    text = (tmp_path / "results.md").read_text()
    assert "| 100 | zmq baseline | 1,000 |" in text and "Overload" in text


def test_report_adds_the_peer_kit_curves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs.jsonl"
    runs.write_text("".join(json.dumps(r) + "\n" for r in lat_records()))
    peer = write_lines(tmp_path / "peer-runs.jsonl", cpg_lines())
    out = tmp_path / "out"
    assert main(["--report", str(runs), "--peer-runs", str(peer), "--out", str(out)]) == 0
    assert "and 7 peer kit runs" in capsys.readouterr().out
    text = (out / "results.md").read_text()
    head = next(line for line in text.splitlines() if line.startswith("| offered msg/s"))
    assert head.endswith("| cpg p50 µs | cpg p99 µs | cpg delivered/s |")
    assert "| 1,000 | 2,000 | 1,000 | 1,000 | 150 | 1,000 | 1,000 | 290 | 3,600 | 1,000 |" in text
    assert "| 20,000 |  |  |  |  |  |  | 90,000 | 905 | 15,000 |" in text
    assert "cpg at 5,000 msg/s" in text  # its knee
    assert "- cpg at 5,000 msg/s, run 3: loss 0.002" in text
    # scripts/setup.sh installs the bench extra (see test_plot): the plot is always drawn here
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![latency vs offered load](latency.png)" in text


def test_peer_runs_that_cannot_be_read_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs.jsonl"
    runs.write_text(json.dumps(rec("tput", "zmq")) + "\n")
    missing = str(tmp_path / "nope.jsonl")
    assert main(["--report", str(runs), "--peer-runs", missing]) == 2
    assert "cannot read the peer runs" in capsys.readouterr().err
    argv = ["--no-tput", "--no-flood", "--lat-sweep", "1000", "--peer-runs", missing, "--dry-run"]
    assert main(argv) == 2


def test_dry_run_names_the_peer_curves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    peer = write_lines(tmp_path / "peer-runs.jsonl", cpg_lines())
    argv = ["--no-tput", "--no-flood", "--lat-sweep", "1000,5000,20000", "--dry-run"]
    assert main([*argv, "--peer-runs", str(peer), "--peer-labels", "cpg"]) == 0
    assert "peer kit curves (100 B): cpg at 3 rates" in capsys.readouterr().out
    assert (
        main([*argv, "--lat-size", "1000", "--peer-runs", str(peer)]) == 0
    )  # cpg_lines has 1000 B
    assert main([*argv, "--lat-size", "10000", "--peer-runs", str(peer)]) == 2
    assert "no peer kit latency runs" in capsys.readouterr().err
