"""The simulator itself: deterministic from one seed, and able to catch a broken protocol."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from groupcomm.core import viewchange
from groupcomm.core.frames import Cleanup, Flush
from groupcomm.core.ids import ViewId
from sim.options import random_options
from sim.run import run
from sim.scenario import run_scenario

ROOT = Path(__file__).resolve().parents[2]


def test_same_seed_same_trace() -> None:
    first = run(random_options(11))
    second = run(random_options(11))
    assert first.trace_lines == second.trace_lines
    assert first.events > 100


def test_different_seeds_differ() -> None:
    assert run(random_options(11)).trace_lines != run(random_options(12)).trace_lines


def _trace_digest(tmp_path: Path, hashseed: str) -> str:
    out = tmp_path / f"trace-{hashseed}.jsonl"
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    subprocess.run(
        [sys.executable, "-m", "sim", "--seed", "23", "--trace", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return hashlib.sha256(out.read_bytes()).hexdigest()


def test_trace_is_identical_across_hash_seeds(tmp_path: Path) -> None:
    assert _trace_digest(tmp_path, "1") == _trace_digest(tmp_path, "987654")


def test_a_broken_cleanup_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation check: survivors that forget their unordered messages at a view change must be
    reported (EVS-3 self-delivery, among others)."""
    real = viewchange.decide_cleanup

    def forgetful(old_view: ViewId, reports: list[Flush]) -> Cleanup:
        return dataclasses.replace(real(old_view, reports), transitional=())

    monkeypatch.setattr(viewchange, "decide_cleanup", forgetful)
    result = run_scenario(ROOT / "protocol" / "scenarios" / "sequencer_crash.json")
    assert any(p.startswith("EVS-3") for p in result.problems)
