"""Hand-written traces for the checker tests: a builder, a clean 3-daemon run, a crash/restart
run, and a large generated run; plus the tests that these valid traces pass every checker.

The clean run has singleton boots, a merge (transitional + regular daemon configurations),
group joins, messages of every service, a private and a multi-group message, a partition with
transitional deliveries (including an allowed EVS-6.2 hole) and transitional group views, a
merge with NETWORK vs_sets, the ``stable`` marker, a self-leave and rejoin, a disconnect and the
``end`` marker. Group view ids follow docs/simulation.md: regular ``<conf>/<group>/<n>``,
transitional ``<prev gid> > <next gid>``.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from typing import Any

from sim.checkers import check_all
from sim.trace import Trace, load_trace

Ev = dict[str, Any]

D1, D2, D3 = "d1:0", "d2:0", "d3:0"
C1, C2, C3 = "#c1#d1:0", "#c2#d2:0", "#c3#d3:0"
ALL = [D1, D2, D3]
R1 = {D1: "R1.d1:0", D2: "R1.d2:0", D3: "R1.d3:0"}
T2 = {d: f"T2.{d}<{R1[d]}" for d in ALL}
R2 = "R2.d1:0"
T3A, T3B = "T3.d1:0<R2.d1:0", "T3.d3:0<R2.d1:0"
R3A, R3B = "R3.d1:0", "R3.d3:0"
T4A, T4B = "T4.d1:0<R3.d1:0", "T4.d3:0<R3.d3:0"
R4 = "R4.d1:0"


def gid(conf: str, group: str, n: int) -> str:
    """A regular group view id: ``<regular conf>/<group>/<n>``."""
    return f"{conf}/{group}/{n}"


def tgid(prev: str, nxt: str) -> str:
    """A transitional group view id: ``<prev regular gid> > <next regular gid>``."""
    return f"{prev} > {nxt}"


class TraceBuilder:
    """Appends trace events as dicts, one ms apart; ``multicast`` writes a whole message."""

    def __init__(self) -> None:
        self.events: list[Ev] = []
        self.t = 0
        self.host: dict[str, str] = {}

    def emit(self, ev: str, **fields: Any) -> Ev:
        self.t += 1
        event: Ev = {"t": self.t, "ev": ev, **fields}
        self.events.append(event)
        return event

    def install(self, d: str, conf: str, kind: str, members: Sequence[str], epoch: int) -> None:
        self.emit("install", d=d, conf=conf, kind=kind, members=sorted(members), epoch=epoch)

    def change(
        self,
        d: str,
        trans: str,
        t_members: Sequence[str],
        reg: str,
        members: Sequence[str],
        epoch: int,
    ) -> None:
        self.install(d, trans, "transitional", t_members, epoch)
        self.install(d, reg, "regular", members, epoch)

    def open(self, p: str, d: str) -> None:
        self.host[p] = d
        self.emit("open", p=p, d=d)

    def close(self, p: str) -> None:
        self.emit("close", p=p, d=self.host[p])

    def gview(self, p: str, group: str, kind: str, gid: str, **extra: Any) -> None:
        self.emit("gview", p=p, d=self.host[p], group=group, kind=kind, gid=gid, **extra)

    def regular_view(
        self,
        viewers: Sequence[str],
        group: str,
        gid: str,
        members: Sequence[str],
        cause: str,
        vs_sets: Sequence[Sequence[str]],
        changed: Sequence[str] = (),
    ) -> None:
        extra: Ev = {
            "members": list(members),
            "cause": cause,
            "vs_sets": [list(v) for v in vs_sets],
        }
        if cause != "NETWORK":
            extra["changed"] = list(changed)
        for p in viewers:
            self.gview(p, group, "regular", gid, **extra)

    def trans_view(self, viewers: Sequence[str], group: str, prev: str, nxt: str) -> None:
        """Transitional view ``prev > nxt`` for ``viewers``, who move on together."""
        for p in viewers:
            self.gview(p, group, "transitional", tgid(prev, nxt), members=list(viewers))

    def member_change(
        self,
        group: str,
        gid: str,
        members: Sequence[str],
        cause: str,
        who: str,
        viewers: Sequence[str],
    ) -> None:
        """JOIN/LEAVE/DISCONNECT view for ``viewers`` with the single vs_set {who}."""
        self.regular_view(viewers, group, gid, members, cause, [[who]], [who])

    def send(
        self,
        p: str,
        mid: str,
        svc: str,
        groups: Sequence[str],
        conf: str,
        self_discard: bool = False,
    ) -> None:
        self.emit(
            "send",
            d=self.host[p],
            p=p,
            mid=mid,
            svc=svc,
            self_discard=self_discard,
            groups=list(groups),
            conf=conf,
        )

    def deliver(self, d: str, mid: str, svc: str, conf: str) -> None:
        self.emit("deliver", d=d, mid=mid, svc=svc, conf=conf)

    def cdeliver(self, p: str, mid: str, svc: str, groups: Sequence[str], sender: str) -> None:
        self.emit(
            "cdeliver", p=p, d=self.host[p], mid=mid, svc=svc, groups=list(groups), sender=sender
        )

    def multicast(
        self,
        p: str,
        mid: str,
        svc: str,
        groups: Sequence[str],
        conf: str,
        daemons: Sequence[str],
        receivers: Sequence[str],
        self_discard: bool = False,
    ) -> None:
        """Send, deliver at ``daemons`` in ``conf``, then cdeliver to ``receivers``."""
        self.send(p, mid, svc, groups, conf, self_discard)
        for d in daemons:
            self.deliver(d, mid, svc, conf)
        for q in receivers:
            self.cdeliver(q, mid, svc, groups, p)

    def lines(self) -> list[str]:
        return [json.dumps(e) for e in self.events]


def _boot_and_merge(b: TraceBuilder) -> None:
    for d in ALL:
        b.install(d, R1[d], "regular", [d], 1)
    for p, d in ((C1, D1), (C2, D2), (C3, D3)):
        b.open(p, d)
    for d in ALL:
        b.change(d, T2[d], [d], R2, ALL, 2)
    b.member_change("g", gid(R2, "g", 1), [C1], "JOIN", C1, [C1])
    b.member_change("g", gid(R2, "g", 2), [C1, C2], "JOIN", C2, [C1, C2])
    b.member_change("g", gid(R2, "g", 3), [C1, C2, C3], "JOIN", C3, [C1, C2, C3])
    b.member_change("h", gid(R2, "h", 1), [C1], "JOIN", C1, [C1])
    b.member_change("h", gid(R2, "h", 2), [C1, C2], "JOIN", C2, [C1, C2])


def _traffic_r2(b: TraceBuilder) -> None:
    every = [C1, C2, C3]
    b.multicast(C1, "m1", "AGREED", ["g"], R2, ALL, every)
    b.multicast(C2, "m2", "SAFE", ["g"], R2, ALL, every)
    b.multicast(C3, "m3", "FIFO", ["g", "h"], R2, ALL, every)
    b.multicast(C1, "m4", "CAUSAL", ["h"], R2, ALL, [C1, C2])
    b.multicast(C2, "m4b", "CAUSAL", ["h"], R2, ALL, [C1, C2])  # EVS-5: m4 -> m4b
    b.multicast(C2, "m5", "RELIABLE", [C3], R2, ALL, [C3])  # SP-PRIV
    b.multicast(C1, "m6", "AGREED", ["g"], R2, ALL, [C2, C3], self_discard=True)
    b.multicast(C3, "m7", "UNRELIABLE", ["g"], R2, ALL, every)


def _partition(b: TraceBuilder) -> None:
    b.emit("fault", what="partition", sides=[[D1, D2], [D3]])
    b.send(C1, "m9", "SAFE", ["g"], R2)  # not yet stable when the partition hits
    b.multicast(C3, "m8", "AGREED", ["g"], R2, [D3], [C3])  # only d3 gets it ordered
    for d in (D1, D2):
        b.install(d, T3A, "transitional", [D1, D2], 3)
    b.trans_view([C1, C2], "g", gid(R2, "g", 3), gid(R3A, "g", 1))
    for d in (D1, D2):  # EVS-6.2: hole m8 allowed, its sender d3 is not in T3A
        b.deliver(d, "m9", "SAFE", T3A)
    for p in (C1, C2):
        b.cdeliver(p, "m9", "SAFE", ["g"], C1)
    for d in (D1, D2):
        b.install(d, R3A, "regular", [D1, D2], 3)
    b.regular_view([C1, C2], "g", gid(R3A, "g", 1), [C1, C2], "NETWORK", [[C1, C2]])
    b.install(D3, T3B, "transitional", [D3], 3)
    b.trans_view([C3], "g", gid(R2, "g", 3), gid(R3B, "g", 1))
    b.install(D3, R3B, "regular", [D3], 3)
    b.regular_view([C3], "g", gid(R3B, "g", 1), [C3], "NETWORK", [[C3]])
    b.multicast(C1, "m10", "SAFE", ["g"], R3A, [D1, D2], [C1, C2])
    b.multicast(C1, "m10b", "AGREED", ["g"], R3A, [D1, D2], [C1, C2])
    b.multicast(C3, "m11", "SAFE", ["g"], R3B, [D3], [C3])


def _merge_and_finish(b: TraceBuilder) -> None:
    b.emit("fault", what="heal")
    for d in (D1, D2):
        b.change(d, T4A, [D1, D2], R4, ALL, 4)
    b.change(D3, T4B, [D3], R4, ALL, 4)
    # Interpretation (b): a merge that loses nobody delivers no transitional *group* view.
    b.regular_view([C1, C2, C3], "g", gid(R4, "g", 1), [C1, C2, C3], "NETWORK", [[C1, C2], [C3]])
    b.multicast(C2, "m12", "RELIABLE", ["g"], R4, ALL, [C1, C2, C3])  # before stable: L2 only
    b.emit("stable")
    b.multicast(C3, "m13", "SAFE", ["g", "h"], R4, ALL, [C1, C2, C3])
    b.gview(C3, "g", "self_leave", "", cause="LEAVE")
    b.trans_view([C1, C2], "g", gid(R4, "g", 1), gid(R4, "g", 2))
    b.member_change("g", gid(R4, "g", 2), [C1, C2], "LEAVE", C3, [C1, C2])
    b.multicast(C1, "m14", "AGREED", ["g"], R4, ALL, [C1, C2])
    b.close(C2)
    b.trans_view([C1], "g", gid(R4, "g", 2), gid(R4, "g", 3))
    b.member_change("g", gid(R4, "g", 3), [C1], "DISCONNECT", C2, [C1])
    # h had no view since R2: its counter restarted at the R4 install (next is 2).
    b.trans_view([C1], "h", gid(R2, "h", 2), gid(R4, "h", 2))
    b.member_change("h", gid(R4, "h", 2), [C1], "DISCONNECT", C2, [C1])
    b.multicast(C3, "m15a", "FIFO", ["g"], R4, ALL, [C1])  # SP-OPEN: non-member sender
    b.multicast(C3, "m15", "FIFO", ["g"], R4, ALL, [C1])
    b.member_change("g", gid(R4, "g", 4), [C1, C3], "JOIN", C3, [C1, C3])
    b.multicast(C1, "m16", "SAFE", ["g"], R4, ALL, [C1, C3])
    b.emit("reject", p=C1, d=D1, op="join", group=C3, reason="private name")


def clean_builder() -> TraceBuilder:
    """The clean 3-daemon run, before its ``end`` event."""
    b = TraceBuilder()
    _boot_and_merge(b)
    _traffic_r2(b)
    _partition(b)
    _merge_and_finish(b)
    return b


def clean_events() -> list[Ev]:
    """A fresh copy of the clean run's events (tests mutate it)."""
    b = clean_builder()
    b.emit("end", live=ALL)
    return copy.deepcopy(b.events)


def crash_events() -> list[Ev]:
    """d3:0 crashes with its own messages undelivered, restarts as d3:1 and merges back."""
    b = TraceBuilder()
    d3b, c4 = "d3:1", "#c4#d3:1"
    _boot_and_merge(b)
    b.multicast(C1, "x1", "SAFE", ["g"], R2, ALL, [C1, C2, C3])
    b.send(C3, "x2", "AGREED", ["g"], R2)
    b.send(C3, "x3", "SAFE", ["g"], R2)
    b.emit("crash", d=D3)
    for d in (D1, D2):
        b.install(d, T3A, "transitional", [D1, D2], 3)
    b.trans_view([C1, C2], "g", gid(R2, "g", 3), gid(R3A, "g", 1))
    for d in (D1, D2):
        b.deliver(d, "x2", "AGREED", T3A)  # the sender crashed: survivors still deliver it
    for p in (C1, C2):
        b.cdeliver(p, "x2", "AGREED", ["g"], C3)
    for d in (D1, D2):
        b.install(d, R3A, "regular", [D1, D2], 3)
    b.regular_view([C1, C2], "g", gid(R3A, "g", 1), [C1, C2], "NETWORK", [[C1, C2]])
    b.install(d3b, "R1.d3:1", "regular", [d3b], 1)
    b.open(c4, d3b)
    b.emit("stable")
    for d in (D1, D2):
        b.change(d, T4A, [D1, D2], R4, [D1, D2, d3b], 4)
    b.change(d3b, "T4.d3:1<R1.d3:1", [d3b], R4, [D1, D2, d3b], 4)
    # g kept its members across R4 (no view); its counter restarted at 1, so the JOIN is 2.
    b.member_change("g", gid(R4, "g", 2), [C1, C2, c4], "JOIN", c4, [C1, C2, c4])
    b.multicast(c4, "x4", "SAFE", ["g"], R4, [D1, D2, d3b], [C1, C2, c4])
    b.emit("end", live=[D1, D2, d3b])
    return copy.deepcopy(b.events)


def big_events(rounds: int = 64, per_round: int = 100) -> list[Ev]:
    """A large valid run: 5 daemons, 10 connections in group g, re-forming configurations."""
    b = TraceBuilder()
    daemons = [f"n{i}:0" for i in range(5)]
    conns = [f"#u{j}{i}#n{i}:0" for i in range(5) for j in range(2)]
    for i, d in enumerate(daemons):
        b.install(d, f"R1.{d}", "regular", [d], 1)
        b.open(conns[2 * i], d)
        b.open(conns[2 * i + 1], d)
    for e in range(2, rounds + 2):
        conf = f"R{e}.n0:0"
        for d in daemons:
            if e == 2:
                b.change(d, f"T2.{d}<R1.{d}", [d], conf, daemons, e)
            else:
                b.change(d, f"T{e}.n0:0<R{e - 1}.n0:0", daemons, conf, daemons, e)
        if e == 2:
            for k, p in enumerate(conns):
                view = gid(conf, "g", k + 1)
                b.member_change("g", view, conns[: k + 1], "JOIN", p, conns[: k + 1])
        for k in range(per_round):
            p = conns[k % len(conns)]
            svc = ("RELIABLE", "FIFO", "CAUSAL", "AGREED", "SAFE")[k % 5]
            b.multicast(p, f"b{e}.{k}", svc, ["g"], conf, daemons, conns)
    b.emit("stable")
    b.emit("end", live=daemons)
    return b.events


def to_trace(events: Sequence[Ev]) -> Trace:
    return load_trace(json.dumps(e) for e in events)


# ---------------------------------------------------------------------------- tests


def test_clean_run_passes_every_checker() -> None:
    assert check_all(to_trace(clean_events())) == []


def test_crash_run_passes_every_checker() -> None:
    assert check_all(to_trace(crash_events())) == []


def test_big_run_passes_quickly() -> None:
    events = big_events()
    assert len(events) > 100_000
    trace = to_trace(events)
    start = time.perf_counter()
    assert check_all(trace) == []
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0, f"checkers took {elapsed:.2f}s on {len(events)} events"


def test_builder_events_are_json_round_trippable() -> None:
    events = clean_events()
    assert [json.loads(line) for line in (json.dumps(e) for e in events)] == events
