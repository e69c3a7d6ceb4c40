"""The README's main job, end to end: `groupcomm demo` runs 3 real daemons and succeeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_groupcomm_demo_succeeds() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "groupcomm", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "all 3 clients delivered the same 60 messages in the same order: True" in out
    assert "transitional view" in out
    assert "NETWORK view ['#app#d3'] vs_sets [['#app#d3']]" in out
    assert "OK:" in out and "properties checked" in out
    assert "demo succeeded" in out
