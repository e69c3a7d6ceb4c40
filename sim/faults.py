"""Fault injection: partitions (symmetric and asymmetric), heal, crash/restart, clean leave,
pause, loss bursts, holds (a lagging local client), and the nemesis: partition shapes (isolate
one, majority/minority, majorities ring, bridge), link cuts, flapping daemons and links, per-link
latency and loss, swizzle clogging, clock jumps and drift, and continuing-fault core phases.
Applied at scheduled times; ``heal_all`` ends the safety phase.

Every applied fault is a ``fault`` event in the trace (``what``, ``args`` as planned; a
partition also lists its ``sides`` by daemon name). The nemesis' events also list the ``links``
they cut (undirected, ``[a, b]`` in daemon order), and every later change of a timed fault is an
event of its own with a ``state``: ``cut``/``restored`` for a flap's toggle or a swizzle's step
(which names its daemon ``d``), ``on``/``off`` for a slow or lossy link. A core phase writes
``state: "start"`` (``core``, ``until``, ``deliver_within_ms``, the core links it ``restored``)
and ``state: "end"`` (``transitive``: whether every cut during it was transitive and no
non-cut fault touched the outside, else ``why``), which L4 reads (sim/checkers/liveness.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from groupcomm.core.events import BacklogChanged, ShutdownRequested
from sim.checkers.liveness import core_delivery_bound_ms
from sim.faultplan import (
    CUT_LINKS,
    CUT_SHAPES,
    FaultPlan,
    Link,
    fault_end,
    fault_links,
    isolation_links,
    swizzle_steps,
)
from sim.runner import Pair, Simulation
from sim.workload import Workload

Arg = str | int | float

# Faults the nemesis applies (the others are the daemon faults of ``Faults``).
NEMESIS_KINDS = frozenset(
    (*CUT_SHAPES - {"partition"}, "cut", "flap", "flaplink", "slow", "lossy", "swizzle")
) | {"clock", "core"}
# Outside faults after which a core phase is not judged by L4 (they are no cuts, or not
# transitive ones); cuts are judged by the links they leave (``Simulation.cut_problem``).
NOT_JUDGED = {
    "slow": "a slow link",
    "lossy": "a lossy link",
    "clock": "a clock fault",
    "hold": "a held daemon (it slows every member's delivery)",
}


def directed(links: Iterable[Link]) -> frozenset[Pair]:
    return frozenset(p for a, b in links for p in ((a, b), (b, a)))


def _listed(links: Iterable[Link]) -> list[list[str]]:
    return [[a, b] for a, b in links]


@dataclass(slots=True)
class CorePhase:
    members: tuple[str, ...]
    until: int
    why: str = ""  # why L4 does not judge it ('' : it does)


class Nemesis:
    """The link-level faults on a ``Simulation`` (``NEMESIS_KINDS``), shared by random runs
    (``Faults``) and scenario files. ``stop`` ends every timed fault and clock skew."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.stopped = False
        self.keys = 0
        self.core: CorePhase | None = None

    def apply(self, plan: FaultPlan) -> None:
        sim = self.sim
        names = sim.names
        what = plan.what
        args = list(plan.args)
        links = fault_links(plan, names)
        if what in CUT_SHAPES:
            sim.blocked = set(directed(links))
            extra = {}
            if what == "isolate":
                extra["sides"] = [[str(args[0])], [n for n in names if n != args[0]]]
            elif what == "majority":
                extra["sides"] = [[str(a) for a in args], [n for n in names if n not in args]]
            sim.record("fault", what=what, args=args, links=_listed(links), **extra)
        elif what == "cut":
            sim.blocked |= directed(links)
            sim.record("fault", what=what, args=args, links=_listed(links))
        elif what in ("flap", "flaplink"):
            self._flap(plan, links)
        elif what == "swizzle":
            self._swizzle(plan)
        elif what in ("slow", "lossy"):
            key = self._key()
            amount = float(args[2])
            sim.set_degraded(key, what, directed(links), amount)
            sim.record("fault", what=what, args=args, links=_listed(links), state="on")
            sim.at(int(fault_end(plan)), partial(self._undegrade, key, what, links))
        elif what == "clock":
            name, jump, rate = str(args[0]), int(args[1]), float(args[2])
            if plan.at_ms == 0 and name in sim.boot_clocks:
                sim.boot_clocks.discard(name)  # set at boot (Simulation.start_daemon)
            else:
                sim.set_clock(name, jump, rate)
            sim.record("fault", what=what, args=args, d=name)
        elif what == "core":
            self._start_core(plan)
        self.observe(what)

    def _key(self) -> int:
        self.keys += 1
        return self.keys

    # ------------------------------------------------------------------ timed cuts
    def _flap(self, plan: FaultPlan, links: list[Link]) -> None:
        """Cut the links at once, restore them a period later, cut again... for the duration;
        restored at its end."""
        period, duration = int(plan.args[-2]), int(plan.args[-1])
        key = self._key()
        toggles = [plan.at_ms + k * period for k in range(-(-duration // period))]
        for k, at in enumerate(toggles):
            first = list(plan.args) if k == 0 else None
            self.sim.at(at, partial(self._toggle, key, plan.what, links, k % 2 == 0, first))
        if len(toggles) % 2:  # the last toggle cut: restore at the end
            end = plan.at_ms + duration
            self.sim.at(end, partial(self._toggle, key, plan.what, links, False, None))

    def _toggle(
        self, key: int, what: str, links: list[Link], cut: bool, args: list[Arg] | None
    ) -> None:
        if self.stopped:
            return
        self.sim.set_layer(key, directed(links) if cut else None)
        extra = {} if args is None else {"args": args}
        state = "cut" if cut else "restored"
        self.sim.record("fault", what=what, state=state, links=_listed(links), **extra)
        self.observe(what)

    def _swizzle(self, plan: FaultPlan) -> None:
        """FoundationDB's swizzle clogging: stop each daemon's links in turn, one step apart,
        then restore them in reverse order."""
        key = self._key()
        clogged: list[str] = []
        for i, (at, daemon, cut) in enumerate(swizzle_steps(plan)):
            first = list(plan.args) if i == 0 else None
            self.sim.at(at, partial(self._swizzle_step, key, clogged, daemon, cut, first))

    def _swizzle_step(
        self, key: int, clogged: list[str], daemon: str, cut: bool, args: list[Arg] | None
    ) -> None:
        if self.stopped:
            return
        sim = self.sim
        if cut:
            clogged.append(daemon)
        else:
            clogged.remove(daemon)
        layer: set[Link] = set()
        for d in clogged:
            layer.update(isolation_links(d, sim.names))
        sim.set_layer(key, directed(layer) if layer else None)
        extra = {} if args is None else {"args": args}
        state = "cut" if cut else "restored"
        links = _listed(isolation_links(daemon, sim.names))
        sim.record("fault", what="swizzle", state=state, d=daemon, links=links, **extra)
        self.observe("swizzle")

    def _undegrade(self, key: int, what: str, links: list[Link]) -> None:
        if self.stopped:
            return
        self.sim.set_degraded(key, what, frozenset(), 0.0)
        self.sim.record("fault", what=what, state="off", links=_listed(links))
        self.observe(what)

    # ------------------------------------------------------------------ core phases
    def _start_core(self, plan: FaultPlan) -> None:
        sim = self.sim
        members = tuple(str(a) for a in plan.args[1:])
        until = int(fault_end(plan))
        inside = {(a, b) for a in members for b in members if a != b}
        restored = sorted(
            {(a, b) if sim.names.index(a) < sim.names.index(b) else (b, a)
             for a, b in sim.blocked & inside},
            key=lambda ln: (sim.names.index(ln[0]), sim.names.index(ln[1])),
        )  # fmt: skip
        sim.blocked -= inside
        opt = sim.opt
        bound = core_delivery_bound_ms(
            heartbeat_ms=opt.heartbeat_ms,
            suspect_timeout_ms=opt.suspect_timeout_ms,
            flush_timeout_ms=opt.flush_timeout_ms,
            install_timeout_ms=opt.install_timeout_ms,
            gather_timeout_ms=opt.gather_timeout_ms,
            daemons=opt.daemons,
        )
        sim.record(
            "fault",
            what="core",
            args=list(plan.args),
            state="start",
            core=list(members),
            until=until,
            deliver_within_ms=bound,
            restored=_listed(restored),
        )
        self.core = CorePhase(members, until)
        problem = sim.cut_problem()
        if problem:
            self.core.why = f"at its start: {problem}"
        sim.at(until, self._end_core)

    def _end_core(self) -> None:
        core = self.core
        if core is None:
            return
        self.core = None
        extra = {"why": core.why} if core.why else {}
        self.sim.record(
            "fault",
            what="core",
            state="end",
            core=list(core.members),
            transitive=not core.why,
            **extra,
        )

    def observe(self, what: str) -> None:
        """During a core phase, note the first reason L4 cannot judge it: a fault that is no
        cut (``NOT_JUDGED``) or cuts that are not transitive."""
        core = self.core
        if core is None or core.why or what == "core":
            return
        sim = self.sim
        if what in NOT_JUDGED:
            core.why = f"{NOT_JUDGED[what]} at {sim.now} ms"
        elif what in CUT_SHAPES or what in CUT_LINKS or what in ("flap", "flaplink", "swizzle"):
            problem = sim.cut_problem()
            if problem:
                core.why = f"{what} at {sim.now} ms: {problem}"

    # ------------------------------------------------------------------------ stop
    def stop(self) -> None:
        """The liveness phase begins: every timed cut and link fault ends, clocks run at rate
        1 again (from their current reading: a clock never runs backwards)."""
        sim = self.sim
        self.stopped = True
        for key in list(sim.layers):
            sim.set_layer(key, None)
        for key in list(sim.degraded):
            sim.set_degraded(key, "", frozenset(), 0.0)
        for name, clock in list(sim.clocks.items()):
            if clock.rate != 1.0:
                sim.set_clock(name, 0, 1.0)
        if self.core is not None:
            self._end_core()


class Faults:
    def __init__(self, sim: Simulation, workload: Workload) -> None:
        self.sim = sim
        self.workload = workload
        self.healed = False
        self.nemesis = Nemesis(sim)

    def schedule(self, plans: tuple[FaultPlan, ...]) -> None:
        for plan in plans:
            self.sim.at(plan.at_ms, partial(self.apply, plan))

    def apply(self, plan: FaultPlan) -> None:
        if self.healed:
            return
        if plan.what in NEMESIS_KINDS:
            self.nemesis.apply(plan)
            return
        sim = self.sim
        names = sim.names
        args = plan.args
        if plan.what == "partition":
            sim.record("fault", what=plan.what, args=list(args), sides=plan.sides(names))
        else:
            sim.record("fault", what=plan.what, args=list(args))
        if plan.what == "partition":
            sim.blocked = {
                (a, b)
                for i, a in enumerate(names)
                for j, b in enumerate(names)
                if args[i] != args[j]
            }
        elif plan.what == "asymmetric":
            sim.blocked.add((str(args[0]), str(args[1])))
        elif plan.what == "heal":
            sim.blocked.clear()
        elif plan.what in ("crash", "leave"):
            self._take_down(str(args[0]), int(args[1]), clean=plan.what == "leave")
        elif plan.what == "pause":
            daemon = sim.daemons[str(args[0])]
            if daemon.alive and daemon.paused_until <= sim.now:
                daemon.paused_until = sim.now + int(args[1])
                sim.at(daemon.paused_until, lambda: sim.resume(daemon))
        elif plan.what == "hold":
            # A local client lags: the daemon holds until it catches up. The release is not
            # gated by the heal, so no daemon stays held into the liveness phase.
            daemon = sim.daemons[str(args[0])]
            sim.feed(daemon, BacklogChanged(lagging=True))
            sim.at(sim.now + int(args[1]), partial(sim.feed, daemon, BacklogChanged(lagging=False)))
        elif plan.what == "loss":
            sim.loss = float(args[0])
            sim.at(sim.now + int(args[1]), self._end_loss_burst)
        self.nemesis.observe(plan.what)

    def _end_loss_burst(self) -> None:
        # Back to the run's base loss, unless the liveness phase began meanwhile: healing means
        # no loss from then on (a late restore used to bring it back, e.g. seed 1032).
        if not self.healed:
            self.sim.loss = self.sim.opt.loss

    def _take_down(self, name: str, down_ms: int, clean: bool) -> None:
        sim = self.sim
        daemon = sim.daemons[name]
        if not daemon.alive or daemon.paused_until > sim.now:
            return
        if clean:
            sim.feed(daemon, ShutdownRequested())
        sim.crash(name)
        sim.at(sim.now + down_ms, lambda: self.restart(name))

    def restart(self, name: str) -> None:
        sim = self.sim
        old = sim.daemons[name]
        if old.alive:
            return
        daemon = sim.start_daemon(name, old.incarnation + 1)
        self.workload.open_clients(daemon)

    def heal_all(self) -> None:
        """Start of the liveness phase: no more faults; everything reconnected and running."""
        sim = self.sim
        self.healed = True
        self.nemesis.stop()
        sim.blocked.clear()
        sim.loss = 0.0
        for name in sim.names:
            daemon = sim.daemons[name]
            if not daemon.alive:
                self.restart(name)
            elif daemon.paused_until > sim.now:
                daemon.paused_until = sim.now
                sim.resume(daemon)
        sim.record("stable")
