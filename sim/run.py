"""One simulated run: build the cluster, run the safety phase with faults, heal, settle, check,
and measure (``sim.metrics``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from sim.checkers import check_all
from sim.faults import Faults
from sim.metrics import RunMetrics, RunnerCounters, compute_metrics
from sim.options import QUIET_MS, SimOptions
from sim.optionsfile import repro_command
from sim.runner import Simulation
from sim.trace import load_trace
from sim.workload import Workload

__all__ = ["QUIET_MS", "RunResult", "run", "simulate"]


@dataclass(frozen=True, slots=True)
class RunResult:
    options: SimOptions
    violations: tuple[str, ...]
    events: int
    sends: int
    deliveries: int
    installs: int
    wall_s: float
    trace_lines: tuple[str, ...]
    counters: RunnerCounters | None = None
    metrics: RunMetrics | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return not self.violations

    def reproduce(self, options_file: Path | None = None) -> str:
        """The command that makes this run again: ``--seed N`` when its options are the seed's,
        else ``--options FILE`` (the caller saved them there: ``sim.optionsfile``)."""
        return repro_command(self.options, options_file)


def simulate(options: SimOptions) -> Simulation:
    sim = Simulation(options)
    stop_ms = options.safety_ms + options.settle_ms - options.quiet_ms
    workload = Workload(sim, stop_ms)
    faults = Faults(sim, workload)
    for name in sim.names:
        workload.open_clients(sim.start_daemon(name, 0))
    faults.schedule(options.faults)
    sim.run_until(options.safety_ms)
    faults.heal_all()
    end = options.safety_ms + options.settle_ms
    sim.run_until(end)
    live = sorted(d.token for d in sim.daemons.values() if d.alive)
    sim.record("end", live=live)
    return sim


def run(options: SimOptions) -> RunResult:
    started = time.perf_counter()
    sim = simulate(options)
    lines = sim.trace_lines()
    trace = load_trace(lines)
    violations = [f"{v.prop} t={v.t}: {v.message}" for v in check_all(trace)]
    violations.extend(f"CORE {a}" for a in sim.anomalies)
    counters = sim.counters()
    metrics = compute_metrics(trace, counters)
    counts = {"send": 0, "deliver": 0, "install": 0}
    for event in sim.trace:
        if event["ev"] in counts:
            counts[event["ev"]] += 1
    return RunResult(
        options=options,
        violations=tuple(violations),
        events=len(lines),
        sends=counts["send"],
        deliveries=counts["deliver"],
        installs=counts["install"],
        wall_s=time.perf_counter() - started,
        trace_lines=tuple(lines),
        counters=counters,
        metrics=metrics,
    )
