"""Fault injection: partitions (symmetric and asymmetric), heal, crash/restart, clean leave,
pause, loss bursts, holds (a lagging local client). Applied at scheduled times; ``heal_all``
ends the safety phase. Every applied fault is a ``fault`` event in the trace (``what``, ``args``
as planned; a partition also lists its ``sides`` by daemon name)."""

from __future__ import annotations

from functools import partial

from groupcomm.core.events import BacklogChanged, ShutdownRequested
from sim.options import FaultPlan
from sim.runner import Simulation
from sim.workload import Workload


class Faults:
    def __init__(self, sim: Simulation, workload: Workload) -> None:
        self.sim = sim
        self.workload = workload
        self.healed = False

    def schedule(self, plans: tuple[FaultPlan, ...]) -> None:
        for plan in plans:
            self.sim.at(plan.at_ms, partial(self.apply, plan))

    def apply(self, plan: FaultPlan) -> None:
        if self.healed:
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
