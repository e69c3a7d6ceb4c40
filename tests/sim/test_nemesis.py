"""The nemesis: partition shapes, link cuts, flaps, swizzles, per-link latency and loss, clock
faults; the opt-in random modes (--nemesis, --buggify) and their repro. Every shape parses from
--faults, is a ``fault`` event listing the links it cut, and cuts exactly those links."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from groupcomm.core.frames import Leave
from groupcomm.core.ids import ViewId
from sim.__main__ import main
from sim.draws import nemesis_faults
from sim.faultplan import fault_links
from sim.faults import Nemesis
from sim.options import (
    Draws,
    FaultPlan,
    OptionsError,
    SimOptions,
    buggify_settings,
    random_options,
)
from sim.optionsfile import load_options, options_from_json, options_to_json, parse_faults
from sim.run import run, simulate
from sim.runner import Simulation
from sim.scenario import ScenarioError, ScenarioRun, check_scenario
from sim.shrink import fault_text, without_daemons
from sim.swarm import swarm

SMALL: dict[str, Any] = {
    "clients_per_daemon": 1,
    "groups": 2,
    "rate_per_client": 10.0,
    "safety_ms": 2000,
    "settle_ms": 1500,
    "quiet_ms": 700,
}
RING5 = [["d1", "d3"], ["d1", "d4"], ["d2", "d4"], ["d2", "d5"], ["d3", "d5"]]


def _faults(trace_lines: tuple[str, ...]) -> list[dict[str, Any]]:
    events = (json.loads(line) for line in trace_lines)
    return [e for e in events if e["ev"] == "fault"]


def test_every_shape_parses_and_is_a_fault_event_listing_its_links() -> None:
    spec = (
        "100:isolate:d5 200:heal 300:majority:d1,d2,d3 400:ring 500:ring:d1,d3,d5,d2,d4 "
        "600:bridge:d3 700:cut:d1-d3,d2-d4 800:heal 900:flap:d4:100:250 "
        "1000:flaplink:d1:d2:100:150 1100:slow:d1:d2:40:200 1200:lossy:d2:d3:0.5:200 "
        "1300:swizzle:50:d2,d5 1400:clock:d3:100:1.25 1500:heal"
    )
    opt = SimOptions(seed=3, daemons=5, faults=parse_faults(spec, 5), **SMALL)
    result = run(opt)
    assert result.ok, result.violations[:3]
    events = _faults(result.trace_lines)
    first = {e["what"]: e for e in reversed(events)}  # the first event of each kind
    assert first["isolate"]["links"] == [[d, "d5"] for d in ("d1", "d2", "d3", "d4")]
    assert first["isolate"]["sides"] == [["d5"], ["d1", "d2", "d3", "d4"]]
    assert first["majority"]["sides"] == [["d1", "d2", "d3"], ["d4", "d5"]]
    rings = [e for e in events if e["what"] == "ring"]
    assert rings[0]["args"] == [] and rings[0]["links"] == RING5
    # Ring order d1 d3 d5 d2 d4: each keeps its two ring neighbours.
    assert rings[1]["links"] == [
        ["d1", "d2"],
        ["d1", "d5"],
        ["d2", "d3"],
        ["d3", "d4"],
        ["d4", "d5"],
    ]
    assert first["bridge"]["links"] == [["d1", "d4"], ["d1", "d5"], ["d2", "d4"], ["d2", "d5"]]
    assert first["cut"]["links"] == [["d1", "d3"], ["d2", "d4"]]
    assert first["flap"]["args"] == ["d4", 100, 250] and first["flap"]["state"] == "cut"
    assert first["flaplink"]["links"] == [["d1", "d2"]]
    assert first["slow"]["state"] == "on" and first["lossy"]["links"] == [["d2", "d3"]]
    assert first["swizzle"]["d"] == "d2" and first["clock"]["d"] == "d3"
    kinds = {e["what"] for e in events}
    assert kinds >= {"isolate", "majority", "ring", "bridge", "cut", "flap", "flaplink", "slow"}
    assert kinds >= {"lossy", "swizzle", "clock", "heal"}


def _arrivals(sim: Simulation, src: str, targets: tuple[str, ...]) -> list[tuple[str, int]]:
    """(destination, arrival time) of each copy of one frame ``src`` sends now."""
    got: list[tuple[str, int]] = []

    def at(t_ms: int, action: Any) -> None:
        cells = [c.cell_contents for c in action.__closure__]
        got.append((next(c for c in cells if isinstance(c, str) and c in sim.names), t_ms))

    sim.at = at  # type: ignore[method-assign]
    try:
        token = f"{src}:1"
        sim.send(src, targets, Leave(view=ViewId(epoch=1, coord=token), sender=token))
    finally:
        del sim.at
    return got


def _reachable(sim: Simulation) -> set[tuple[str, str]]:
    """The directed pairs over which a frame arrives now."""
    return {
        (src, dst)
        for src in sim.names
        for dst, _ in _arrivals(sim, src, tuple(n for n in sim.names if n != src))
    }


@pytest.mark.parametrize(
    ("spec", "daemons", "cut"),
    [
        ("0:ring", 5, RING5),
        ("0:bridge:d2", 3, [["d1", "d3"]]),
        ("0:bridge:d3", 5, [["d1", "d4"], ["d1", "d5"], ["d2", "d4"], ["d2", "d5"]]),
        ("0:cut:d1-d3", 5, [["d1", "d3"]]),
        ("0:ring:d1,d2,d3,d4", 4, [["d1", "d3"], ["d2", "d4"]]),
    ],
)
def test_ring_bridge_and_cut_cut_only_their_links(
    spec: str, daemons: int, cut: list[list[str]]
) -> None:
    opt = SimOptions(seed=1, daemons=daemons, codec=False, latency_tail=0.0)
    sim = Simulation(opt)
    Nemesis(sim).apply(parse_faults(spec, daemons)[0])
    everything = {(a, b) for a in sim.names for b in sim.names if a != b}
    dropped = {(a, b) for a, b in cut} | {(b, a) for a, b in cut}
    assert _reachable(sim) == everything - dropped  # frames between connected pairs flow
    assert [list(x) for x in fault_links(parse_faults(spec, daemons)[0], sim.names)] == cut


def test_slow_and_lossy_links_touch_only_their_link() -> None:
    opt = SimOptions(seed=1, daemons=3, codec=False, latency_tail=0.0, latency_max_ms=1)
    sim = Simulation(opt)
    nemesis = Nemesis(sim)
    nemesis.apply(FaultPlan(at_ms=0, what="slow", args=("d1", "d2", 300, 500)))
    nemesis.apply(FaultPlan(at_ms=0, what="lossy", args=("d2", "d3", 1.0, 500)))
    assert sorted(_arrivals(sim, "d1", ("d2", "d3"))) == [("d2", 301), ("d3", 1)]
    assert _arrivals(sim, "d2", ("d3",)) == []  # lost
    assert [d for d, _ in _arrivals(sim, "d2", ("d1",))] == ["d1"]  # slow, not lossy
    sim.run_until(600)  # both end on their own timers
    assert not sim.link_delay and not sim.link_loss


def test_swizzle_clogs_in_order_and_restores_in_reverse() -> None:
    spec = "300:swizzle:100:d3,d1,d4"
    opt = SimOptions(seed=2, daemons=4, faults=parse_faults(spec, 4), **SMALL)
    steps = [e for e in _faults(run(opt).trace_lines) if e["what"] == "swizzle"]
    assert [(e["t"], e["state"], e["d"]) for e in steps] == [
        (300, "cut", "d3"),
        (400, "cut", "d1"),
        (500, "cut", "d4"),
        (600, "restored", "d4"),
        (700, "restored", "d1"),
        (800, "restored", "d3"),
    ]
    assert steps[0]["args"] == [100, "d3", "d1", "d4"]
    assert steps[1]["links"] == [["d1", "d2"], ["d1", "d3"], ["d1", "d4"]]


def test_flapping_toggles_every_period_and_ends_restored() -> None:
    spec = "300:flap:d2:200:1000 400:flaplink:d1:d3:150:300"
    opt = SimOptions(seed=2, daemons=3, faults=parse_faults(spec, 3), **SMALL)
    result = run(opt)
    assert result.ok, result.violations[:3]
    events = _faults(result.trace_lines)
    flap = [(e["t"], e["state"]) for e in events if e["what"] == "flap"]
    assert flap == [
        (300, "cut"),
        (500, "restored"),
        (700, "cut"),
        (900, "restored"),
        (1100, "cut"),
        (1300, "restored"),
    ]
    link = [(e["t"], e["state"], e["links"]) for e in events if e["what"] == "flaplink"]
    assert link == [(400, "cut", [["d1", "d3"]]), (550, "restored", [["d1", "d3"]])]


def test_a_clock_offset_is_invisible_and_only_extreme_drift_is_felt() -> None:
    """The core only subtracts readings of its own clock: an offset changes nothing (the same
    trace), a drift changes nothing until a timer crosses another daemon's (docs/simulation.md,
    "Clocks")."""
    base = SimOptions(seed=1, daemons=3, **SMALL)
    plain = run(base).trace_lines
    skewed = run(replace(base, faults=parse_faults("0:clock:d1:7000:1.0", 3))).trace_lines
    assert [line for line in skewed if '"what":"clock"' not in line] == list(plain)

    def views(rate: float) -> int:
        faults = parse_faults(f"0:clock:d1:0:{rate}", 3)
        sim = simulate(replace(base, faults=faults))
        return sum(1 for e in sim.trace if e["ev"] == "install" and e["kind"] == "regular")

    assert views(2.0) == views(0.5) == views(1.0)  # no view change but the first merge
    assert views(8.0) > views(1.0) + 6  # suspects every peer before its next heartbeat


def test_bad_shapes_are_refused_naming_the_problem() -> None:
    for spec, daemons, problem in (
        ("100:ring", 3, "at least 4 daemons"),
        ("100:majority:d1,d2", 4, "strict majority"),
        ("100:cut:d1-d1", 3, "from itself"),
        ("100:cut:d1-d2,d2-d1", 3, "a link twice"),
        ("100:swizzle:50:d1,d1", 3, "twice"),
        ("100:clock:d1:0:50", 3, "clock rate"),
        ("100:ring:d1,d2,d3", 4, "every daemon once"),
        ("100:core:500:d1,d2 300:crash:d2:100", 3, "loses core daemon d2"),
        ("100:core:500:d1,d2 300:partition:d1/d2,d3", 3, "cuts core link d1-d2"),
        ("100:core:500:d1,d2,d3 50:flap:d1:50:300", 4, "cuts core link d1-d2"),
        ("100:core:5000:d1,d2", 3, "must end in the safety phase"),
    ):
        with pytest.raises(OptionsError, match=problem):
            SimOptions(seed=1, daemons=daemons, faults=parse_faults(spec, daemons))


def test_new_faults_print_and_parse_back_and_survive_dropping_a_daemon() -> None:
    spec = "100:majority:d1,d2,d3 200:cut:d1-d3 300:swizzle:50:d4,d5 400:core:500:d1,d2,d3"
    opt = SimOptions(seed=1, daemons=5, faults=parse_faults(spec, 5))
    text = " ".join(fault_text(p, opt.names) for p in opt.faults)
    assert parse_faults(text, 5) == opt.faults
    smaller = without_daemons(opt, [4])  # d5 goes: every fault still names real daemons
    assert smaller is not None and smaller.daemons == 4


def test_plain_seeds_are_untouched_and_nemesis_adds_new_shapes() -> None:
    kinds: set[str] = set()
    for seed in range(30):
        plain = random_options(seed)
        drawn = random_options(seed, Draws(nemesis=True))
        assert set(plain.faults) <= set(drawn.faults)
        extra = nemesis_faults(seed, plain.daemons, plain.safety_ms)
        assert len(drawn.faults) == len(plain.faults) + len(extra) and extra
        kinds |= {p.what for p in extra}
        assert drawn == random_options(seed, Draws(nemesis=True))
    assert kinds >= {"isolate", "majority", "ring", "bridge", "cut", "flap", "swizzle", "clock"}


def test_buggify_changes_protocol_settings_in_about_half_the_seeds() -> None:
    changed = 0
    for seed in range(200):
        settings: dict[str, Any] = dict(buggify_settings(seed))
        opt = random_options(seed, Draws(buggify=True))
        assert opt == replace(random_options(seed), **settings)
        changed += bool(settings)
        if settings:
            assert opt.tick_ms <= opt.heartbeat_ms
            assert opt.suspect_timeout_ms >= max(4 * opt.heartbeat_ms, 160)
            assert opt.install_timeout_ms >= opt.flush_timeout_ms + 2 * opt.heartbeat_ms
    assert 70 <= changed <= 110


def test_a_buggified_run_round_trips_its_options_file_and_reproduces_its_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    seed = next(s for s in range(100) if len(buggify_settings(s)) >= 4)
    opt = random_options(seed, Draws(buggify=True))
    assert options_from_json(json.loads(json.dumps(options_to_json(opt)))) == opt
    small = ["--daemons", "3", "--safety-ms", "1200", "--settle-ms", "1200", "--quiet-ms", "600"]
    assert main(["--seed", str(seed), "--buggify", *small, "--trace", "a.jsonl"]) == 0
    out = capsys.readouterr().out
    repro = next(x for x in out.splitlines() if "reproduce:" in x).split("reproduce:")[1].split()
    assert repro[3] == "--options" and "protocol(" in out
    saved = json.loads(Path(repro[4]).read_text())
    assert all(saved[name] == value for name, value in buggify_settings(seed).items())
    assert main([*repro[3:], "--trace", "b.jsonl"]) == 0
    assert Path("a.jsonl").read_bytes() == Path("b.jsonl").read_bytes()


def test_draw_flags_are_refused_with_an_options_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"seed": 1}))
    with pytest.raises(SystemExit):
        main(["--options", str(path), "--nemesis"])
    assert "--nemesis" in capsys.readouterr().err
    with pytest.raises(OptionsError, match="not with nemesis"):
        Draws(nemesis=True, core=True)


def test_scenario_files_take_the_new_shapes() -> None:
    spec: dict[str, Any] = {
        "name": "bridge",
        "daemons": 3,
        "end_ms": 2500,
        "clients": {"#a#d1": ["g"], "#b#d3": ["g"]},
        "steps": [
            {"at": 300, "do": "bridge", "daemon": "d2"},
            {"at": 400, "do": "flap", "daemon": "d3", "period_ms": 100, "duration_ms": 300},
            {"at": 500, "do": "cut", "links": [["d1", "d2"]]},
            {"at": 900, "do": "heal"},
            {"at": 1000, "do": "swizzle", "daemons": ["d1", "d3"], "step_ms": 50},
            {"at": 1100, "do": "slow", "link": ["d1", "d2"], "ms": 30, "duration_ms": 200},
        ],
    }
    result = ScenarioRun(spec).run()
    faults = [json.loads(line) for line in result.trace_lines if '"fault"' in line]
    assert [f["what"] for f in faults][:3] == ["bridge", "flap", "cut"]
    assert faults[0]["links"] == [["d1", "d3"]]
    for step, problem in (
        ({"at": 300, "do": "ring"}, "at least 4 daemons"),
        ({"at": 1900, "do": "flap", "daemon": "d1", "period_ms": 50, "duration_ms": 200}, "end"),
        ({"at": 300, "do": "cut", "links": [["d1"]]}, "pairs"),
        ({"at": 300, "do": "isolate", "daemon": "d1", "x": 1}, "takes daemon"),
    ):
        bad = {**spec, "steps": [step]}
        with pytest.raises(ScenarioError, match=problem):
            check_scenario(bad)


def test_a_failing_swarm_seed_with_draws_is_reproduced_by_its_options_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def failing(options: SimOptions) -> SimpleNamespace:
        return SimpleNamespace(ok=False, violations=("FAKE t=1: boom",), wall_s=0.0)

    monkeypatch.setattr("sim.swarm.run", failing)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert swarm([5], 1, out=out, err=None, draws=Draws(nemesis=True, buggify=True)) == 1
    text = out.getvalue()
    [path] = tmp_path.glob("sim-options-5-*.json")
    assert f"    reproduce: python -m sim --options {path.name}\n" in text
    assert f"    shrink: python -m sim shrink --options {path.name}\n" in text
    assert "swarm: 1 seeds (--nemesis --buggify), 1 failed" in text
    assert load_options(path) == random_options(5, Draws(nemesis=True, buggify=True))
