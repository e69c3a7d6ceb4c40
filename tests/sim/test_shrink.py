"""Shrinking: a failing run is minimised to the smallest options that still fail the same
property, written as an options file with the one command that reproduces it.

The protocol passes its checkers, so the failures here are injected: a fake checker (a property
that fails whenever d2 crashes in a run of three or more daemons), probes that need no simulator,
and a real checker on a core mutated in-process (a restarted d2 skips one delivery)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from groupcomm.core import node as core_node
from groupcomm.core.commands import Command
from groupcomm.core.frames import Msg
from groupcomm.core.ids import ViewId
from sim.__main__ import main
from sim.checkers import Violation
from sim.options import FaultPlan, SimOptions
from sim.optionsfile import load_options, parse_faults, save_options
from sim.shrink import (
    ShrinkError,
    probe_run,
    property_id,
    shrink,
    shrink_report,
    without_daemons,
)
from sim.swarm import swarm
from sim.trace import Fault, Trace

SEVEN_FAULTS = (
    "300:partition:d1,d2,d3/d4,d5,d6 500:pause:d5:200 700:crash:d4:300 900:crash:d2:400 "
    "1000:hold:d6:300 1100:heal 1300:loss:0.2:200"
)


def crash_of_d2(trace: Trace) -> list[Violation]:
    """A fake property: broken by any crash of d2 in a run of three or more daemons."""
    daemons = {token.split(":")[0] for token in trace.daemons}
    crashes = [
        e
        for e in trace.events
        if isinstance(e, Fault) and e.what == "crash" and e.details["args"][0] == "d2"
    ]
    if len(daemons) >= 3 and crashes:
        return [Violation("FAKE-D2", "d2 crashed among three or more daemons", crashes[0].t)]
    return []


def test_a_fake_property_shrinks_to_its_one_fault_and_three_daemons(tmp_path: Path) -> None:
    options = SimOptions(
        seed=3,
        daemons=6,
        groups=2,
        loss=0.05,
        safety_ms=1500,
        settle_ms=1000,
        quiet_ms=500,
        rate_per_client=10.0,
        faults=parse_faults(SEVEN_FAULTS, 6),
    )
    progress: list[str] = []
    result = shrink(options, checkers={"FAKE-D2": crash_of_d2}, report=progress.append)
    minimal = result.minimal
    assert result.target == "FAKE-D2" and not result.exhausted
    assert minimal.daemons == 3
    assert [(p.what, p.args[0]) for p in minimal.faults] == [("crash", "d2")]
    assert (minimal.clients_per_daemon, minimal.groups, minimal.loss) == (0, 1, 0.0)
    assert minimal.safety_ms < options.safety_ms and minimal.settle_ms < options.settle_ms
    assert result.runs <= 40, result.runs
    assert progress[0].startswith("shrink: target FAKE-D2, budget 200 runs; start: 6 daemons")
    assert any("drop daemons d4-d6" in line for line in progress)
    # The report writes the options file whose run fails the property again.
    path = tmp_path / "minimal.json"
    lines = shrink_report(result, path)
    assert lines[0] == f"shrunk FAKE-D2 in {result.runs} runs, {len(result.steps)} kept: " + (
        "no smaller candidate fails FAKE-D2"
    )
    assert "  changed: daemons 6 -> 3" in lines
    assert any(line.startswith("  changed: faults 7 -> 1 (") for line in lines)
    assert lines[-1] == f"  reproduce: python -m sim --options {path}"
    assert load_options(path) == minimal
    assert [property_id(v) for v in probe_run(minimal, {"FAKE-D2": crash_of_d2})] == ["FAKE-D2"]


def test_dropping_a_daemon_renames_the_others_and_fixes_the_faults() -> None:
    faults = parse_faults(
        "100:partition:d1,d2/d3,d4 200:asymmetric:d4:d1 300:crash:d2:50 "
        "400:partition:d1,d3,d4/d2 500:loss:0.2:100",
        4,
    )
    options = SimOptions(seed=1, daemons=4, faults=faults)
    smaller = without_daemons(options, [1])  # d2 goes: d3 -> d2, d4 -> d3
    assert smaller is not None and smaller.daemons == 3
    assert smaller.faults == (
        FaultPlan(at_ms=100, what="partition", args=(0, 1, 1)),
        FaultPlan(at_ms=200, what="asymmetric", args=("d3", "d1")),
        FaultPlan(at_ms=400, what="heal"),  # d2 was a side of its own: one side is a heal
        FaultPlan(at_ms=500, what="loss", args=(0.2, 100)),
    )
    assert without_daemons(options, range(4)) is None


def test_the_target_is_the_first_violation_or_the_one_asked_for() -> None:
    def probe(opt: SimOptions) -> list[str]:
        found = ["B t=5: always"]
        if opt.daemons >= 4:
            found.insert(0, "A t=1: four daemons or more")
        return found

    options = SimOptions(seed=0, daemons=7)
    first = shrink(options, probe=probe)
    assert first.target == "A" and first.minimal.daemons == 4
    assert shrink(options, probe=probe) == first  # deterministic
    asked = shrink(options, prop="B", probe=probe)
    assert asked.target == "B" and asked.minimal.daemons == 1
    with pytest.raises(ShrinkError, match="does not fail C"):
        shrink(options, prop="C", probe=probe)
    with pytest.raises(ShrinkError, match="passes every property"):
        shrink(options, probe=lambda _opt: [])


def test_the_budget_bounds_the_runs() -> None:
    runs: list[SimOptions] = []

    def probe(opt: SimOptions) -> list[str]:
        runs.append(opt)
        return ["X t=1: always"]

    result = shrink(SimOptions(seed=0, daemons=7), max_runs=3, probe=probe)
    assert result.runs == len(runs) == 3 and result.exhausted
    assert "budget of 3 runs spent" in shrink_report(result, Path("/dev/null"))[0]


def test_a_liveness_target_keeps_the_settle_phase() -> None:
    options = SimOptions(seed=0, settle_ms=2500, quiet_ms=1000, safety_ms=3000)
    result = shrink(options, probe=lambda _opt: ["L2 t=9: never delivered"])
    assert (result.minimal.settle_ms, result.minimal.quiet_ms) == (2500, 1000)
    assert result.minimal.safety_ms == 100


def test_an_exception_is_a_finding_of_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(opt: SimOptions) -> None:
        raise KeyError("d9")

    monkeypatch.setattr("sim.shrink.simulate", broken)
    assert probe_run(SimOptions(seed=0)) == ["EXCEPTION:KeyError KeyError('d9')"]


# ------------------------------------------------------------- a real checker, a mutated core


@pytest.fixture
def restarted_d2_skips_a_delivery(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The core, mutated: a restarted d2 silently skips its third data message from another
    daemon (the liveness and view-synchrony checkers see it)."""
    original = core_node.Node.deliver

    def mutant(
        self: core_node.Node,
        sender: str,
        view: ViewId,
        seq: int,
        msg: Msg,
        conf: str,
        out: list[Command],
        n: int,
    ) -> None:
        restarted_d2 = self.name == "d2" and self.cfg.incarnation > 0
        if restarted_d2 and sender != self.me and msg.kind == core_node.DATA:
            self.counters["delivered"] += 1
            if self.counters["delivered"] == 3:
                return
        original(self, sender, view, seq, msg, conf, out, n)

    monkeypatch.setattr(core_node.Node, "deliver", mutant)
    yield


MUTANT_RUN = SimOptions(
    seed=3,
    daemons=4,
    clients_per_daemon=1,
    groups=1,
    safety_ms=1000,
    settle_ms=1000,
    quiet_ms=300,
    faults=parse_faults(
        "200:partition:d1,d2/d3,d4 400:crash:d2:300 500:pause:d4:200 700:heal 800:loss:0.2:200", 4
    ),
)


@pytest.mark.usefixtures("restarted_d2_skips_a_delivery")
def test_a_real_violation_shrinks_to_the_crash_that_causes_it() -> None:
    found = probe_run(MUTANT_RUN)
    assert found, "the mutation must break a property"
    result = shrink(MUTANT_RUN)
    assert result.target == property_id(found[0]) and not result.exhausted
    assert [(p.what, p.args[0]) for p in result.minimal.faults] == [("crash", "d2")]
    assert 2 <= result.minimal.daemons < MUTANT_RUN.daemons
    assert result.target in {property_id(v) for v in probe_run(result.minimal)}


@pytest.mark.usefixtures("restarted_d2_skips_a_delivery")
def test_the_command_line_hints_shrinks_and_reproduces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = tmp_path / "failing.json"
    save_options(MUTANT_RUN, failing)
    assert main(["--options", str(failing)]) == 1
    out = capsys.readouterr().out
    assert f"  shrink: python -m sim shrink --options {failing}\n" in out
    target = out.split("VIOLATION ", 1)[1].split(" ", 1)[0]
    minimal = tmp_path / "minimal.json"
    args = ["shrink", "--options", str(failing), "--max-runs", "20", "--out", str(minimal)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"shrink: target {target}, budget 20 runs")
    assert f"  reproduce: python -m sim --options {minimal}\n" in captured.out
    assert main(["--options", str(minimal)]) == 1
    assert f"VIOLATION {target} " in capsys.readouterr().out


def test_shrinking_a_passing_run_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "passing.json"
    save_options(SimOptions(seed=1, daemons=2, safety_ms=300, settle_ms=600, quiet_ms=200), path)
    assert main(["shrink", "--options", str(path)]) == 1
    assert "nothing to shrink" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["shrink", "--seed", "1", "--options", str(path)])


@pytest.mark.usefixtures("restarted_d2_skips_a_delivery")
def test_the_swarm_prints_the_shrink_command_and_shrinks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("sim.swarm.random_options", lambda seed: MUTANT_RUN)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert swarm([3], 1, out=out, err=None, shrink_runs=15) == 1
    text = out.getvalue()
    assert "    shrink: python -m sim shrink --seed 3\n" in text
    assert "SHRINK seed 3: shrunk " in text and "budget of 15 runs spent" in text
    written = [path.name for path in tmp_path.glob("sim-shrunk-3-*.json")]
    assert len(written) == 1 and f"reproduce: python -m sim --options {written[0]}\n" in text
