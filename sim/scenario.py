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
               {"at": 700, "do": "leave", ...}, {"at": 700, "do": "restart", "daemon": "d1"}],
     "end_ms": 3000,
     "expect": {"final_members": ["d2", "d3"],        # daemon names in the final view
                "views": {"#b#d2": ["regular JOIN #b#d2", "transitional", ...]},
                "same_order": ["#b#d2", "#c#d3"],  # these clients delivered the same sequence
                "gathering_at": {"953": ["d2"]}}}  # d2 is mid view change at 953 ms
"""

from __future__ import annotations

import json
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
from sim.options import SimOptions
from sim.runner import Simulation
from sim.trace import load_trace


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    name: str
    problems: tuple[str, ...]
    views: dict[str, list[str]]
    deliveries: dict[str, list[str]]


def view_text(cmd: DeliverMembership) -> str:
    if cmd.kind == "transitional":
        return "transitional"
    if cmd.kind == "self_leave":
        return "self_leave"
    return f"regular {cmd.cause} {' '.join(cmd.members)}"


class ScenarioRun:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.sim = Simulation(
            SimOptions(
                seed=int(spec.get("seed", 1)), daemons=int(spec["daemons"]), latency_tail=0.0
            )
        )
        self.views: dict[str, list[str]] = {}
        self.deliveries: dict[str, list[str]] = {}
        self.sim.on_membership = lambda _d, c: self.views.setdefault(c.conn, []).append(
            view_text(c)
        )
        self.sim.on_deliver = self._delivered

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
        problems = [f"{v.prop}: {v.message}" for v in check_all(load_trace(sim.trace_lines()))]
        problems.extend(self._expectations())
        return ScenarioResult(self.spec["name"], tuple(problems), self.views, self.deliveries)

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
        elif do == "crash":
            sim.at(at, lambda: sim.crash(step["daemon"]))
        elif do == "restart":
            sim.at(at, lambda: self._restart(step["daemon"]))
        elif do == "partition":
            sides: list[list[str]] = step["sides"]
            side_of = {d: i for i, side in enumerate(sides) for d in side}
            blocked = {(a, b) for a in side_of for b in side_of if side_of[a] != side_of[b]}
            sim.at(at, lambda: setattr(sim, "blocked", blocked))
        elif do == "heal":
            sim.at(at, lambda: sim.blocked.clear())
        else:
            raise ValueError(f"unknown scenario step {do!r}")

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
    return ScenarioRun(json.loads(path.read_text())).run()
