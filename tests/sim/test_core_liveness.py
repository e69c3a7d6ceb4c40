"""Liveness under continuing faults (L4): a core of daemons stays connected while the others flap,
crash and are cut; the core must keep delivering and its membership must not flap. The
non-transitive cut is the documented limitation (protocol/membership.md section 11): measured
here, not judged by L4."""

from __future__ import annotations

import json
from typing import Any

from sim.checkers import check_all
from sim.checkers.liveness import (
    CORE_VIEWS_BASE,
    CORE_VIEWS_PER_CHANGE,
    check_l4,
    core_delays,
    core_regular_installs,
    core_report,
    core_spans,
    outside_changes,
)
from sim.options import Draws, SimOptions, random_options
from sim.optionsfile import parse_faults
from sim.run import run
from sim.trace import load_trace

CORE_RUN = "500:core:2500:d1,d2,d3 600:flap:d4:400:1800 1200:crash:d5:700"


def _run(spec: str, daemons: int = 5, safety_ms: int = 3000, seed: int = 4) -> tuple[str, ...]:
    opt = SimOptions(
        seed=seed,
        daemons=daemons,
        clients_per_daemon=1,
        groups=2,
        rate_per_client=20.0,
        safety_ms=safety_ms,
        settle_ms=1500,
        quiet_ms=700,
        faults=parse_faults(spec, daemons),
    )
    result = run(opt)
    assert not [v for v in result.violations if not v.startswith("L4")], result.violations[:3]
    return result.trace_lines


def test_a_core_keeps_delivering_while_outside_daemons_flap_and_crash() -> None:
    lines = _run(CORE_RUN)
    trace = load_trace(lines)
    assert check_l4(trace) == []
    [span] = core_spans(trace)
    assert span.judged and span.members == ("d1", "d2", "d3")
    assert span.start.details["until"] == 3000 and span.end is not None
    assert outside_changes(trace, span) >= 6  # the flap's toggles, the crash (down and back)
    views = core_regular_installs(trace, span)
    assert all(1 <= len(v) <= 6 for v in views.values())  # d4 and d5 left and came back
    delays = core_delays(trace, span)
    assert len(delays) > 100 and all(d is not None and d < span.within_ms for *_, d in delays)
    assert "judged by L4" in core_report(trace)[0]


def _mutated(lines: tuple[str, ...], change: Any) -> list[str]:
    events = [json.loads(line) for line in lines]
    return [json.dumps(e) for e in change(events)]


def test_l4_rejects_a_core_member_that_misses_a_message() -> None:
    lines = _run(CORE_RUN)
    trace = load_trace(lines)
    span = core_spans(trace)[0]
    mid, member, _ = next(x for x in core_delays(trace, span) if x[1] == "d2")

    def drop(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        def kept(e: dict[str, Any]) -> bool:
            return not (e.get("mid") == mid and e["d"].startswith(f"{member}:"))

        return [e for e in events if kept(e)]

    violations = check_l4(load_trace(_mutated(lines, drop)))
    assert len(violations) == 1 and "delivered by core member d2 never" in violations[0].message


def test_l4_rejects_a_core_whose_membership_flaps() -> None:
    lines = _run(CORE_RUN)
    trace = load_trace(lines)
    span = core_spans(trace)[0]
    allowed = CORE_VIEWS_BASE + CORE_VIEWS_PER_CHANGE * outside_changes(trace, span)
    first = core_regular_installs(trace, span)["d3"][0]

    def flap(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # d3 installs its first regular view of the phase again and again: flapping.
        copy = dict(events[first.idx])
        return events[: first.idx] + [copy] * allowed + events[first.idx :]

    violations = check_l4(load_trace(_mutated(lines, flap)))
    assert [v.prop for v in violations] == ["L4"]
    assert "core member d3 installed" in violations[0].message


def test_a_trace_that_stops_inside_a_core_phase_is_not_judged() -> None:
    lines = _run(CORE_RUN)
    cut = [line for line in lines if json.loads(line)["t"] < 2000]
    [span] = core_spans(load_trace(cut))
    assert not span.judged and span.why == "the trace ends inside it"


def test_the_non_transitive_cut_flaps_and_is_the_documented_limitation() -> None:
    """A known limitation marker, measured (protocol/membership.md section 11): d1 and d3 cannot
    talk, both talk to d2, and membership cycles for as long as the cut lasts. L4 does not judge
    the phase (its outside cut is not transitive); if the protocol learns to converge, this test
    fails and section 11 must be updated."""
    lines = _run("500:bridge:d2 500:core:2500:d1,d2", daemons=3)
    trace = load_trace(lines)
    [span] = core_spans(trace)
    assert not span.judged and "d1-d3 cut while both reach d2" in span.why
    assert check_l4(trace) == [] and not check_all(trace)
    views = core_regular_installs(trace, span)
    per_second = len(views["d2"]) / 2.5
    assert per_second >= 3.0  # measured 4.8-5.1/s over 7.5 s (section 11)
    last = max(i.t for i in views["d2"])
    assert last > 2700  # still changing views at the end of the cut: no convergence


def test_core_mode_draws_a_majority_core_and_outside_faults_only() -> None:
    for seed in range(20):
        opt = random_options(seed, Draws(core=True))
        [core] = [p for p in opt.faults if p.what == "core"]
        members = set(core.args[1:])
        assert len(members) == opt.daemons // 2 + 1 and random_options(seed) != opt
        for plan in opt.faults:
            named = {a for a in plan.args if isinstance(a, str)}
            assert plan is core or not named & members
            if plan.what == "partition":
                assert len({plan.args[opt.names.index(str(m))] for m in members}) == 1
