"""Scenario files: ambiguous or inconsistent ones are refused naming the problem; every scripted
fault is a ``fault`` event in the trace; ``python -m sim scenario FILE`` runs and measures one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sim.__main__ import main
from sim.scenario import ScenarioError, ScenarioRun, check_scenario, run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "protocol" / "scenarios"


def _spec(name: str = "partition_merge") -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((SCENARIOS / f"{name}.json").read_text())
    return spec


def _with_step(step: dict[str, Any], spec: dict[str, Any] | None = None) -> dict[str, Any]:
    out = copy.deepcopy(spec or _spec())
    out["steps"].append(step)
    return out


def test_the_shipped_scenarios_are_valid() -> None:
    for path in sorted(SCENARIOS.glob("*.json")):
        check_scenario(json.loads(path.read_text()))


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ({"at": 800, "do": "partition", "sides": [["d1", "d2"], ["d2", "d3"]]}, "d2 is on two"),
        ({"at": 800, "do": "partition", "sides": [["d1"], ["d2"]]}, "d3 on no side"),
        ({"at": 800, "do": "partition", "sides": [["d1", "d2", "d3"]]}, "at least two sides"),
        ({"at": 800, "do": "partition", "sides": [["d1", "d4"], ["d2", "d3"]]}, "'d4' is no"),
        ({"at": 800, "do": "crash", "daemon": "d7"}, "'d7' is no daemon"),
        ({"at": 800, "do": "restart", "daemon": "d1"}, "d1 is running"),
        ({"at": 800, "do": "heal", "sides": []}, "takes nothing, got sides"),
        ({"at": 800, "do": "explode"}, "unknown step kind"),
        ({"at": 2700, "do": "heal"}, "before the liveness phase"),
        ({"at": 9000, "do": "multicast", "conn": "#a#d1", "groups": ["g"]}, "'at' must be"),
        ({"at": 800, "do": "join", "conn": "#z#d1", "group": "g"}, "not one of the scenario"),
        ({"at": 800, "do": "multicast", "conn": "#a#d1", "groups": ["g"], "service": "FAST"},
         "unknown service"),
    ],
)  # fmt: skip
def test_an_inconsistent_scenario_is_refused(step: dict[str, Any], problem: str) -> None:
    with pytest.raises(ScenarioError, match=problem) as err:
        ScenarioRun(_with_step(step))
    assert f"step {len(_spec()['steps']) + 1}" in str(err.value)


def test_lifecycle_and_top_level_problems_are_refused() -> None:
    spec = _with_step({"at": 800, "do": "crash", "daemon": "d1"})
    spec["steps"] += [{"at": 900, "do": "crash", "daemon": "d1"}]
    with pytest.raises(ScenarioError, match="already crashed"):
        check_scenario(spec)
    spec["steps"][-1] = {"at": 900, "do": "restart", "daemon": "d1"}
    spec["steps"].append({"at": 1000, "do": "join", "conn": "#a#d1", "group": "g2"})
    with pytest.raises(ScenarioError, match="connection died with d1's crash"):
        check_scenario(spec)
    with pytest.raises(ScenarioError, match="unknown key 'daemon'"):
        check_scenario({**_spec(), "daemon": 3})
    with pytest.raises(ScenarioError, match="unknown option 'suspect'"):
        check_scenario({**_spec(), "options": {"suspect": 5}})


def test_a_bad_scenario_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "overlap.json"
    step = {"at": 800, "do": "partition", "sides": [["d1", "d2"], ["d2", "d3"]]}
    path.write_text(json.dumps(_with_step(step)))
    with pytest.raises(ScenarioError, match=r"overlap\.json: step .* d2 is on two sides"):
        run_scenario(path)


def test_scripted_faults_are_in_the_trace() -> None:
    result = run_scenario(SCENARIOS / "partition_merge.json")
    faults = [json.loads(x) for x in result.trace_lines if '"ev":"fault"' in x]
    assert [(f["t"], f["what"]) for f in faults] == [(700, "partition"), (1500, "heal")]
    assert faults[0]["sides"] == [["d1", "d2"], ["d3"]] and faults[0]["args"] == [0, 0, 1]
    crash = run_scenario(SCENARIOS / "sequencer_crash.json")
    assert any('"what":"crash"' in x and '"args":["d1"]' in x for x in crash.trace_lines)


def test_scenario_options_reach_the_protocol() -> None:
    spec = _spec()
    spec["options"] = {"suspect_timeout_ms": 400}
    run = ScenarioRun(spec)
    assert run.sim.opt.suspect_timeout_ms == 400 and run.sim.opt.latency_tail == 0.0


def test_scenario_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "m.json"
    path = str(SCENARIOS / "partition_merge.json")
    assert main(["scenario", path, "--metrics", "--metrics-json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "scenario partition_merge: ok" in out and "cut at    700 ms" in out
    metrics = json.loads(out_json.read_text())["metrics"]
    heal = metrics["merges"][0]
    assert heal["what"] == "heal" and heal["all_ms"] is not None and heal["all_ms"] > 0
    side = metrics["partitions"][0]["sides"][1]
    assert side["side"] == ["d3"] and side["first_ms"] >= 250 - 40
