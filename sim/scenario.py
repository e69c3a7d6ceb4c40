"""Scripted scenarios (``protocol/scenarios/*.json``): a topology, a workload and a fault
schedule, plus the transcript every client must see. Used by the spec's executable transcripts
and by researchers who want a specific schedule instead of a random one.

Scenario JSON::

    {"name": str, "description": str, "daemons": 3, "seed": 1,
     "clients": {"#a#d1": ["g"], ...},                # connection -> groups joined at start
     "steps": [{"at": 500, "do": "multicast", "conn": "#a#d1", "groups": ["g"],
                "service": "AGREED", "count": 10, "every": 5},
               {"at": 600, "do": "crash", "daemon": "d1"},
               {"at": 600, "do": "partition", "sides": [["d1", "d2"], ["d3"]]},
               {"at": 900, "do": "heal"}, {"at": 700, "do": "join", "conn": ..., "group": ...},
               {"at": 700, "do": "leave", ...}, {"at": 700, "do": "restart", "daemon": "d1"},
               # the nemesis' shapes (docs/simulation.md, "Faults"), keys in argument order:
               {"at": 500, "do": "bridge", "daemon": "d2"},
               {"at": 500, "do": "isolate", "daemon": "d3"},
               {"at": 500, "do": "majority", "daemons": ["d1", "d2", "d3"]},
               {"at": 500, "do": "ring", "order": ["d1", "d3", "d2", "d5", "d4"]},  # order optional
               {"at": 500, "do": "cut", "links": [["d1", "d3"]]},
               {"at": 500, "do": "flap", "daemon": "d4", "period_ms": 200, "duration_ms": 1000},
               {"at": 500, "do": "flaplink", "link": ["d1", "d2"], "period_ms": 200,
                "duration_ms": 1000},
               {"at": 500, "do": "slow", "link": ["d1", "d2"], "ms": 80, "duration_ms": 1000},
               {"at": 500, "do": "lossy", "link": ["d1", "d2"], "rate": 0.3, "duration_ms": 900},
               {"at": 500, "do": "swizzle", "daemons": ["d2", "d4"], "step_ms": 100},
               {"at": 500, "do": "clock", "daemon": "d1", "jump_ms": 0, "rate": 1.5}],
     "end_ms": 3000,
     "expect": {"final_members": ["d2", "d3"],        # daemon names in the final view
                "views": {"#b#d2": ["regular JOIN #b#d2", "transitional", ...]},
                "same_order": ["#b#d2", "#c#d3"],  # these clients delivered the same sequence
                "gathering_at": {"953": ["d2"]}},  # d2 is mid view change at 953 ms
     "options": {"loss": 0.05, "suspect_timeout_ms": 500}}  # network and protocol settings

A scenario is checked before it runs (``check_scenario``): unknown keys, unknown daemons or
connections, partitions whose sides overlap or leave a daemon out, a crash of a crashed daemon,
a restart of a live one, a client operation after its daemon restarted (its connection died with
the crash), a fault after the liveness phase began (``end_ms - 500``), a timed fault (flap,
flaplink, slow, lossy, swizzle) still running then, a shape the run's daemons cannot make (a ring
of 3) are refused with a ``ScenarioError`` naming the step and the problem. Every scripted
fault writes a ``fault`` event into the trace, as random faults do.

``python -m sim scenario FILE [--trace FILE] [--metrics] [--metrics-json FILE]`` runs one.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from groupcomm.core.commands import DeliverMembership, DeliverMessage
from groupcomm.core.events import (
    JoinRequested,
    LeaveRequested,
    MulticastRequested,
    SessionOpened,
)
from groupcomm.core.ids import token_name
from groupcomm.core.service import Service
from sim.checkers import check_all
from sim.faultplan import FaultPlan, daemon_names, fault_end, fault_problem, side_labels
from sim.faults import Nemesis
from sim.metrics import RunnerCounters, compute_metrics, format_metrics, metrics_record
from sim.options import PROTOCOL_FIELDS, OptionsError, SimOptions
from sim.optionsfile import parse_fields
from sim.runner import Simulation
from sim.trace import load_trace

STABLE_BEFORE_END_MS = 500  # the liveness phase: the last 500 ms of a scenario
TOP_KEYS = frozenset(
    ("name", "description", "daemons", "seed", "clients", "steps", "end_ms", "expect", "options")
)
EXPECT_KEYS = frozenset(("final_members", "views", "same_order", "gathering_at", "delivered_count"))
# Step kinds: (required keys, optional keys), besides "at" and "do".
STEP_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "multicast": (frozenset(("conn", "groups")), frozenset(("service", "count", "every"))),
    "join": (frozenset(("conn", "group")), frozenset()),
    "leave": (frozenset(("conn", "group")), frozenset()),
    "crash": (frozenset(("daemon",)), frozenset()),
    "restart": (frozenset(("daemon",)), frozenset()),
    "partition": (frozenset(("sides",)), frozenset()),
    "heal": (frozenset(), frozenset()),
}
# The nemesis' faults: the step's keys, in the order of the fault's arguments (FAULT_ARGS).
NEMESIS_STEPS: dict[str, tuple[str, ...]] = {
    "isolate": ("daemon",),
    "majority": ("daemons",),
    "ring": ("order",),
    "bridge": ("daemon",),
    "cut": ("links",),
    "flap": ("daemon", "period_ms", "duration_ms"),
    "flaplink": ("link", "period_ms", "duration_ms"),
    "slow": ("link", "ms", "duration_ms"),
    "lossy": ("link", "rate", "duration_ms"),
    "swizzle": ("step_ms", "daemons"),
    "clock": ("daemon", "jump_ms", "rate"),
}
STEP_KEYS.update(
    {
        kind: (frozenset(keys) - {"order"}, frozenset(keys) & {"order"})
        for kind, keys in NEMESIS_STEPS.items()
    }
)
FAULT_STEPS = frozenset(("crash", "restart", "partition", "heal", *NEMESIS_STEPS))
# SimOptions a scenario may set ("options"): the network and the protocol, not the workload.
SCENARIO_OPTIONS: tuple[str, ...] = (
    "latency_min_ms",
    "latency_max_ms",
    "latency_tail",
    "loss",
    "duplication",
    "codec",
    *PROTOCOL_FIELDS,
)


class ScenarioError(ValueError):
    """A scenario file that is malformed, ambiguous or inconsistent."""


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    name: str
    problems: tuple[str, ...]
    views: dict[str, list[str]]
    deliveries: dict[str, list[str]]
    trace_lines: tuple[str, ...] = ()
    counters: RunnerCounters | None = None


def view_text(cmd: DeliverMembership) -> str:
    if cmd.kind == "transitional":
        return "transitional"
    if cmd.kind == "self_leave":
        return "self_leave"
    return f"regular {cmd.cause} {' '.join(cmd.members)}"


class ScenarioRun:
    def __init__(self, spec: dict[str, Any]) -> None:
        overrides = check_scenario(spec)
        self.spec = spec
        self.sim = Simulation(
            SimOptions(
                seed=int(spec.get("seed", 1)),
                daemons=int(spec["daemons"]),
                **{"latency_tail": 0.0, **overrides},
            )
        )
        self.views: dict[str, list[str]] = {}
        self.deliveries: dict[str, list[str]] = {}
        self.sim.on_membership = lambda _d, c: self.views.setdefault(c.conn, []).append(
            view_text(c)
        )
        self.sim.on_deliver = self._delivered
        self.nemesis = Nemesis(self.sim)

    def _delivered(self, _daemon: str, cmd: DeliverMessage) -> None:
        self.deliveries.setdefault(cmd.conn, []).append(cmd.payload.decode())

    def _client_daemon(self, conn: str) -> str:
        return conn.rsplit("#", 1)[1]

    def run(self) -> ScenarioResult:
        sim = self.sim
        for name in sim.names:
            sim.start_daemon(name, 0)
        for conn, groups in self.spec.get("clients", {}).items():
            self._open(conn, groups)
        for step in self.spec.get("steps", []):
            self._schedule(step)
        self.phase_problems: list[str] = []
        for when, names in self.spec.get("expect", {}).get("gathering_at", {}).items():
            sim.at(int(when), partial(self._probe_gathering, when, names))
        end = int(self.spec.get("end_ms", 3000))
        sim.run_until(end - 500)
        sim.record("stable")
        sim.run_until(end)
        sim.record("end", live=sorted(d.token for d in sim.daemons.values() if d.alive))
        lines = sim.trace_lines()
        problems = [f"{v.prop}: {v.message}" for v in check_all(load_trace(lines))]
        problems.extend(self._expectations())
        return ScenarioResult(
            self.spec["name"],
            tuple(problems),
            self.views,
            self.deliveries,
            tuple(lines),
            sim.counters(),
        )

    def _probe_gathering(self, when: str, names: list[str]) -> None:
        for name in names:
            phase = self.sim.daemons[name].node.phase
            if phase != "gather":
                self.phase_problems.append(f"{name} is {phase} at {when} ms, expected gather")

    def _open(self, conn: str, groups: list[str]) -> None:
        daemon = self.sim.daemons[self._client_daemon(conn)]
        self.sim.feed(daemon, SessionOpened(conn=conn))
        for group in groups:
            self.sim.feed(daemon, JoinRequested(conn=conn, group=group))

    def _schedule(self, step: dict[str, Any]) -> None:
        sim = self.sim
        at = int(step["at"])
        do = step["do"]
        if do == "multicast":
            service = int(Service[step.get("service", "AGREED")])
            for i in range(int(step.get("count", 1))):
                text = f"{step['conn']}:{at}:{i}"
                event = MulticastRequested(
                    conn=step["conn"],
                    groups=tuple(step["groups"]),
                    service=service,
                    msg_type=0,
                    payload=text.encode(),
                )
                when = at + i * int(step.get("every", 1))
                sim.at(when, partial(self._to_client_daemon, event.conn, event))
        elif do in ("join", "leave"):
            cls = JoinRequested if do == "join" else LeaveRequested
            event2 = cls(conn=step["conn"], group=step["group"])
            sim.at(at, lambda: self._to_client_daemon(step["conn"], event2))
        elif do in FAULT_STEPS:
            sim.at(at, partial(self._fault, step))
        else:
            raise ScenarioError(f"unknown scenario step {do!r}")

    def _fault(self, step: dict[str, Any]) -> None:
        """A scripted fault, recorded in the trace as the random faults are."""
        sim = self.sim
        do = step["do"]
        if do in NEMESIS_STEPS:
            self.nemesis.apply(step_plan(step))
        elif do == "partition":
            sides: list[list[str]] = step["sides"]
            labels = side_labels(sides, sim.names)
            sim.record("fault", what=do, args=list(labels), sides=[list(x) for x in sides])
            sim.blocked = {
                (a, b)
                for a, la in zip(sim.names, labels, strict=True)
                for b, lb in zip(sim.names, labels, strict=True)
                if la != lb
            }
        elif do == "heal":
            sim.record("fault", what=do, args=[])
            sim.blocked.clear()
        else:
            sim.record("fault", what=do, args=[step["daemon"]])
            if do == "crash":
                sim.crash(step["daemon"])
            else:
                self._restart(step["daemon"])

    def _to_client_daemon(self, conn: str, event: Any) -> None:
        self.sim.feed(self.sim.daemons[self._client_daemon(conn)], event)

    def _restart(self, name: str) -> None:
        old = self.sim.daemons[name]
        self.sim.start_daemon(name, old.incarnation + 1)

    def _expectations(self) -> list[str]:
        expect = self.spec.get("expect", {})
        problems: list[str] = list(self.phase_problems)
        if "final_members" in expect:
            live = [d for d in self.sim.daemons.values() if d.alive]
            for daemon in live:
                names = sorted(token_name(m) for m in daemon.node.members)
                if names != sorted(expect["final_members"]):
                    problems.append(f"{daemon.token} ends in view {names}")
        for conn, views in expect.get("views", {}).items():
            if self.views.get(conn, []) != views:
                problems.append(f"{conn} saw views {self.views.get(conn, [])}, expected {views}")
        same = expect.get("same_order", [])
        orders = {tuple(self.deliveries.get(c, [])) for c in same}
        if len(orders) > 1:
            problems.append(f"clients {same} delivered different sequences")
        for conn, count in expect.get("delivered_count", {}).items():
            if len(self.deliveries.get(conn, [])) != count:
                got = len(self.deliveries.get(conn, []))
                problems.append(f"{conn} delivered {got} messages, expected {count}")
        return problems


def run_scenario(path: Path) -> ScenarioResult:
    """Run a scenario file; ``ScenarioError`` if it is malformed, ambiguous or inconsistent."""
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
    try:
        return ScenarioRun(spec).run()
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


# ------------------------------------------------------------------------------ validation


def check_scenario(spec: object) -> dict[str, Any]:
    """Refuse a malformed, ambiguous or inconsistent scenario (``ScenarioError`` naming the
    problem); return its validated ``options``."""
    if not isinstance(spec, Mapping):
        raise ScenarioError("a scenario must be a JSON object")
    unknown = sorted(set(spec) - TOP_KEYS)
    if unknown:
        raise ScenarioError(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(TOP_KEYS))})")
    for key in ("name", "daemons", "steps"):
        if key not in spec:
            raise ScenarioError(f"missing key {key!r}")
    daemons = _int_at_least(spec["daemons"], 1, "daemons")
    end_ms = _int_at_least(spec.get("end_ms", 3000), STABLE_BEFORE_END_MS + 1, "end_ms")
    _int_at_least(spec.get("seed", 1), 0, "seed")
    names = daemon_names(daemons)
    clients = _check_clients(spec.get("clients", {}), names)
    steps = spec["steps"]
    if not isinstance(steps, list):
        raise ScenarioError("'steps' must be a list")
    for i, step in enumerate(steps):
        _check_step(i, step, names, clients, end_ms)
    _check_lifecycle(steps, clients)
    expect = spec.get("expect", {})
    if not isinstance(expect, Mapping) or set(expect) - EXPECT_KEYS:
        known = ", ".join(sorted(EXPECT_KEYS))
        raise ScenarioError(f"'expect' must be an object with keys among {known}")
    try:
        return parse_fields(spec.get("options", {}), SCENARIO_OPTIONS, "options")
    except OptionsError as exc:
        raise ScenarioError(str(exc)) from None


def _int_at_least(value: object, low: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ScenarioError(f"{what} must be an integer >= {low}, got {value!r}")
    return value


def _check_clients(clients: object, names: list[str]) -> dict[str, str]:
    """Connection -> daemon name, for a valid ``clients`` object."""
    if not isinstance(clients, Mapping):
        raise ScenarioError("'clients' must map connection names to lists of groups")
    out: dict[str, str] = {}
    for conn, groups in clients.items():
        daemon = conn.rsplit("#", 1)[-1]
        if not conn.startswith("#") or conn.count("#") != 2 or daemon not in names:
            raise ScenarioError(f"client {conn!r} is not #user#dN with dN one of {names}")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ScenarioError(f"client {conn!r}: groups must be a list of names")
        out[conn] = daemon
    return out


def _check_step(
    i: int, step: object, names: list[str], clients: dict[str, str], end_ms: int
) -> None:
    if not isinstance(step, Mapping):
        raise ScenarioError(f"step {i + 1} must be an object")
    do, at = step.get("do"), step.get("at")
    where = f"step {i + 1} ({do} at {at} ms)"
    if do not in STEP_KEYS:
        raise ScenarioError(f"{where}: unknown step kind (known: {', '.join(STEP_KEYS)})")
    if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at < end_ms:
        raise ScenarioError(f"{where}: 'at' must be an integer in [0, end_ms={end_ms})")
    required, optional = STEP_KEYS[do]
    keys = set(step) - {"do", "at"}
    if required - keys or keys - required - optional:
        wanted = ", ".join(sorted(required | optional)) or "nothing"
        raise ScenarioError(f"{where}: takes {wanted}, got {', '.join(sorted(keys)) or 'nothing'}")
    if do in FAULT_STEPS and at >= end_ms - STABLE_BEFORE_END_MS:
        raise ScenarioError(
            f"{where}: faults must come before the liveness phase "
            f"(end_ms - {STABLE_BEFORE_END_MS} = {end_ms - STABLE_BEFORE_END_MS} ms)"
        )
    problem = _step_problem(step, names, clients, end_ms)
    if problem:
        raise ScenarioError(f"{where}: {problem}")


def step_plan(step: Mapping[str, Any]) -> FaultPlan:
    """A nemesis step as the fault it makes (``ScenarioError`` if its values are mistyped)."""
    do = step["do"]
    args: list[Any] = []
    for key in NEMESIS_STEPS[do]:
        value = step.get(key, [])
        if key in ("daemons", "order", "link"):
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                raise ScenarioError(f"{key!r} must be a list of daemon names")
            if key == "link" and len(value) != 2:
                raise ScenarioError("'link' must be a pair of daemon names")
            args.extend(value)
        elif key == "links":
            if not isinstance(value, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(n, str) for n in p)
                for p in value
            ):
                raise ScenarioError("'links' must be a list of pairs of daemon names")
            args.extend(n for pair in value for n in pair)
        else:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ScenarioError(f"{key!r} must be a name or a number, got {value!r}")
            args.append(value)
    return FaultPlan(at_ms=int(step["at"]), what=do, args=tuple(args))


def _step_problem(
    step: Mapping[str, Any], names: list[str], clients: dict[str, str], end_ms: int
) -> str:
    do = step["do"]
    if do in NEMESIS_STEPS:
        try:
            plan = step_plan(step)
        except ScenarioError as exc:
            return str(exc)
        stable = end_ms - STABLE_BEFORE_END_MS
        problem = fault_problem(plan, len(names), stable)
        if not problem and fault_end(plan) != float("inf") and fault_end(plan) > stable:
            problem = f"must end before the liveness phase ({stable} ms)"
        return problem
    if "conn" in step and step["conn"] not in clients:
        return f"connection {step['conn']!r} is not one of the scenario's clients"
    if "daemon" in step and step["daemon"] not in names:
        return f"{step['daemon']!r} is no daemon of this scenario ({', '.join(names)})"
    if do == "partition":
        sides = step["sides"]
        if not isinstance(sides, list) or not all(
            isinstance(s, list) and all(isinstance(n, str) for n in s) for s in sides
        ):
            return "'sides' must be a list of lists of daemon names"
        try:
            side_labels(sides, names)
        except ValueError as exc:
            return str(exc)
    if do == "multicast":
        groups, service = step["groups"], step.get("service", "AGREED")
        if not isinstance(groups, list) or not groups:
            return "'groups' must be a non-empty list"
        if service not in Service.__members__:
            return f"unknown service {service!r} (known: {', '.join(Service.__members__)})"
        for key, low in (("count", 1), ("every", 0)):
            value = step.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                return f"{key!r} must be an integer >= {low}"
    if do in ("join", "leave") and not isinstance(step["group"], str):
        return "'group' must be a name"
    return ""


def _check_lifecycle(steps: list[Mapping[str, Any]], clients: dict[str, str]) -> None:
    """Crash/restart alternate per daemon; a client acts only before its daemon restarts."""
    crashed: set[str] = set()
    restarted_at: dict[str, int] = {}
    order = sorted(range(len(steps)), key=lambda i: (int(steps[i]["at"]), i))
    for i in order:
        step = steps[i]
        where = f"step {i + 1} ({step['do']} at {step['at']} ms)"
        daemon = str(step.get("daemon"))
        if step["do"] == "crash":
            if daemon in crashed:
                raise ScenarioError(f"{where}: {daemon} is already crashed")
            crashed.add(daemon)
        elif step["do"] == "restart":
            if daemon not in crashed:
                raise ScenarioError(f"{where}: {daemon} is running (restart needs a crash first)")
            crashed.discard(daemon)
            restarted_at.setdefault(daemon, int(step["at"]))
    for i, step in enumerate(steps):
        conn = step.get("conn")
        host = clients.get(conn) if isinstance(conn, str) else None
        if host in restarted_at and int(step["at"]) >= restarted_at[host]:
            raise ScenarioError(
                f"step {i + 1} ({step['do']} at {step['at']} ms): {conn}'s connection died "
                f"with {host}'s crash (restarted at {restarted_at[host]} ms)"
            )


# ---------------------------------------------------------------------------- command line


def main(argv: list[str]) -> int:
    """``python -m sim scenario FILE``: run a scenario, check it, optionally measure it."""
    parser = argparse.ArgumentParser(
        prog="python -m sim scenario", description="Run a scripted scenario file."
    )
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument("--trace", type=Path, metavar="FILE", help="write the trace here")
    parser.add_argument("--metrics", action="store_true", help="print the run's metrics")
    parser.add_argument("--metrics-json", type=Path, metavar="FILE", help="metrics as JSON")
    ns = parser.parse_args(argv)
    try:
        result = run_scenario(ns.file)
    except (OSError, ScenarioError) as exc:
        parser.error(str(exc))
    if ns.trace:
        ns.trace.write_text("\n".join(result.trace_lines) + "\n")
    metrics = compute_metrics(load_trace(result.trace_lines), result.counters)
    if ns.metrics:
        print("\n".join(format_metrics(metrics)))
    if ns.metrics_json:
        record = metrics_record(metrics, {"scenario": str(ns.file), "ok": not result.problems})
        ns.metrics_json.write_text(json.dumps(record, indent=1) + "\n")
    for problem in result.problems:
        print(f"PROBLEM {problem}")
    print(f"scenario {result.name}: {'ok' if not result.problems else 'FAILED'}")
    return 0 if not result.problems else 1
