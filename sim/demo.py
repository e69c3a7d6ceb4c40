"""A scripted, narrated simulation: three daemons, a partition, a merge.

``python -m sim demo`` prints the group views and deliveries each client sees, then checks the
whole trace against every property. It is the README's first command until the live daemon
demo (``groupcomm demo``) exists.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from groupcomm.core.commands import DeliverMembership, DeliverMessage
from groupcomm.core.events import JoinRequested, MulticastRequested, SessionOpened
from groupcomm.core.service import Service
from sim.checkers import check_all
from sim.options import SimOptions
from sim.runner import Simulation
from sim.trace import load_trace

GROUP = "chat"


def _client(name: str) -> str:
    return f"#app#{name}"


class Narrator:
    def __init__(self, sim: Simulation, out: Callable[[str], None]) -> None:
        self.sim = sim
        self.out = out
        self.orders: dict[str, list[str]] = {}

    def delivered(self, daemon: str, cmd: DeliverMessage) -> None:
        self.orders.setdefault(cmd.conn, []).append(cmd.payload.decode())
        self.out(f"  {self.sim.now:5d} ms  {cmd.conn:10s} <- {cmd.payload.decode()}")

    def membership(self, daemon: str, cmd: DeliverMembership) -> None:
        if cmd.kind == "transitional":
            text = "TRANSITIONAL view (members were lost; what follows closes the old view)"
        elif cmd.kind == "self_leave":
            text = "left the group"
        else:
            vs = " | ".join(",".join(s) for s in cmd.vs_sets)
            text = f"{cmd.cause} view {list(cmd.members)} vs_sets [{vs}]"
        self.out(f"  {self.sim.now:5d} ms  {cmd.conn:10s} == {text}")


def _say(sim: Simulation, when: int, text: str, out: Callable[[str], None]) -> None:
    sim.at(when, lambda: out(f"\n--- {when} ms: {text}"))


def _multicast(sim: Simulation, when: int, name: str, text: str) -> None:
    event = MulticastRequested(
        conn=_client(name),
        groups=(GROUP,),
        service=int(Service.AGREED),
        msg_type=0,
        payload=text.encode(),
    )
    sim.at(when, lambda: sim.feed(sim.daemons[name], event))


def run_demo(out: Callable[[str], None] = print) -> int:
    sim = Simulation(
        SimOptions(seed=1, daemons=3, latency_min_ms=1, latency_max_ms=3, latency_tail=0.0)
    )
    narrator = Narrator(sim, out)
    sim.on_deliver = narrator.delivered
    sim.on_membership = narrator.membership
    out("groupcomm simulated demo: daemons d1 d2 d3, one client '#app#dN' each, group 'chat'")
    for name in sim.names:
        daemon = sim.start_daemon(name, 0)
        sim.feed(daemon, SessionOpened(conn=_client(name)))
        sim.feed(daemon, JoinRequested(conn=_client(name), group=GROUP))
    _say(sim, 400, "everyone multicasts AGREED at once", out)
    for i, name in enumerate(sim.names):
        _multicast(sim, 400, name, f"hello from {name}")
        _multicast(sim, 401 + i, name, f"second from {name}")
    _say(sim, 700, "network partition: {d1,d2} | {d3}", out)
    sim.at(
        700, lambda: sim.blocked.update({("d3", "d1"), ("d3", "d2"), ("d1", "d3"), ("d2", "d3")})
    )
    _multicast(sim, 1300, "d1", "d1 talks during the partition")
    _multicast(sim, 1300, "d3", "d3 talks alone")
    _say(sim, 1600, "network heals", out)
    sim.at(1600, sim.blocked.clear)
    _multicast(sim, 2300, "d2", "after the merge")
    sim.run_until(3000)
    sim.record("stable")
    sim.run_until(3500)
    sim.record("end", live=sorted(d.token for d in sim.daemons.values()))
    return _summarise(sim, narrator, out)


def _summarise(sim: Simulation, narrator: Narrator, out: Callable[[str], None]) -> int:
    violations = check_all(load_trace(sim.trace_lines()))
    out("\nsummary")
    first = narrator.orders.get(_client("d1"), [])[:6]
    same = all(order[:6] == first for order in narrator.orders.values())
    out(f"  first six deliveries identical at every client: {same}")
    out(f"  trace: {len(sim.trace)} events; properties violated: {len(violations)}")
    for v in violations[:10]:
        out(f"  VIOLATION {v.prop}: {v.message}")
    return 0 if same and not violations else 1


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="python -m sim demo", description=__doc__).parse_args(argv)
    return run_demo()
