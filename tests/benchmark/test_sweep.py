"""The sweep command line: its plan and estimate, refusals, and rendering earlier runs (no run
is started here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groupcomm.benchmark.sweep import build_parser, grid_from, main
from tests.benchmark.support_sweep import rec


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
    for bad in (["--sizes", "x"], ["--services", "total"], ["--daemons", "0"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


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
