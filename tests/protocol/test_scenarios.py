"""The spec's scenario transcripts (protocol/scenarios/*.json), executed in the simulator.

Each scenario states the views its clients must see, which clients must deliver identical
sequences, and how many messages; the run must also pass every trace checker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.scenario import ScenarioRun, run_scenario

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "protocol" / "scenarios").glob("*.json"))


def test_there_are_scenarios() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"sequencer_crash", "partition_merge", "join_during_view_change"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_transcript(path: Path) -> None:
    result = run_scenario(path)
    assert result.problems == ()


def test_a_wrong_transcript_is_reported() -> None:
    spec = json.loads((SCENARIOS[0]).read_text())
    spec["expect"]["final_members"] = ["d9"]
    assert any("ends in view" in p for p in ScenarioRun(spec).run().problems)
