"""``python -m sim.check_trace``: exit codes 0 (ok), 1 (violations), 2 (bad trace)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim.check_trace import main
from sim.checkers import CHECKERS
from tests.sim.test_checker_builder import D3, Ev, clean_events

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, events: list[Ev]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_clean_trace_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = clean_events()
    assert main([str(_write(tmp_path / "run.jsonl", events))]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"OK: {len(events)} events, {len(CHECKERS)} properties checked"


def test_violations_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = [e for e in clean_events() if e.get("mid") != "m8" or e["ev"] == "send"]
    assert main([str(_write(tmp_path / "run.jsonl", events))]) == 1
    out = capsys.readouterr().out
    assert "EVS-3 t=" in out and "m8" in out and D3 in out
    assert "FAIL: 1 violation(s) of 1 properties" in out


def test_bad_trace_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = clean_events()
    del events[4]["p"]
    assert main([str(_write(tmp_path / "run.jsonl", events))]) == 2
    err = capsys.readouterr().err
    assert "run.jsonl:5" in err and "missing field 'p'" in err
    assert main([str(tmp_path / "missing.jsonl")]) == 2


def test_several_files_are_merged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = clean_events()
    half = len(events) // 2
    first = _write(tmp_path / "a.jsonl", events[::2])
    second = _write(tmp_path / "b.jsonl", events[1::2])
    assert main([str(second), str(first)]) == 0
    assert f"OK: {len(events)} events" in capsys.readouterr().out
    # A prefix is a valid trace too: the trace ending counts as every daemon failing.
    assert main([str(_write(tmp_path / "c.jsonl", events[:half]))]) == 0


def test_output_is_capped_per_property(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = clean_events()
    for e in events:
        if e["ev"] == "cdeliver":
            e["sender"] = "#nobody#d9:0"  # EVS-1.1 for every client delivery
    path = str(_write(tmp_path / "run.jsonl", events))
    assert main([path, "--max-per-property", "2"]) == 1
    out = capsys.readouterr().out
    assert out.count("EVS-1.1 t=") == 2
    assert "EVS-1.1: " in out and "more violation(s) not shown" in out


def test_l3_bound_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(_write(tmp_path / "run.jsonl", clean_events()))
    assert main([path, "--l3-max-regular", "0"]) == 0
    capsys.readouterr()


def test_module_entry_point(tmp_path: Path) -> None:
    path = _write(tmp_path / "run.jsonl", clean_events())
    proc = subprocess.run(
        [sys.executable, "-m", "sim.check_trace", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK: ")
