"""The runs of a sweep (``python -m groupcomm.benchmark.sweep``) and how long they will take.

Pure: the sweep command turns its options into a ``Grid``, asks it for its ``runs()`` and their
time estimate, prints the estimate before starting, then runs them one by one. Three parts:

- **tput**: throughput, all-to-all, for every size x service x daemon count, plus the zmq
  baseline once per size x daemon count (it has no service levels);
- **lat**: latency vs offered load (``--lat-sweep``), AGREED and the baseline, one size and
  daemon count, ascending rates;
- **flood**: one sender flooding (``--mode one``, AGREED) per flood size x daemon count: peak
  daemon RSS and send rate vs delivered rate under overload.

Runs are ordered part by part, and within a part run by run (run 1 of every cell, then run 2
...), so the runs of one cell are spread over time like ``--compare`` spreads the systems, and
an interrupted sweep still has complete earlier parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from groupcomm.benchmark.workload import FLOOD_BATCH, SERVICES, Workload

PARTS = ("tput", "lat", "flood")
SETUP_S = 3.0  # per run on loopback: interpreter, daemons forming a view, members joining
NETNS_SETUP_S = 1.0  # ... and building and removing the namespace LAN
TPUT_DRAIN_S = 1.0  # what a flood typically still has in flight at the end
WORST_EXTRA_S = 10.0  # slow starts and stragglers, on top of a full drain


@dataclass(frozen=True, slots=True)
class Cell:
    """One point of the grid: a part, a system and a workload (the same for every run)."""

    part: str
    system: str
    work: Workload

    @property
    def nodes(self) -> int:
        """Daemons (groupcomm) or the hosts the baseline uses in their place."""
        return self.work.daemons


@dataclass(frozen=True, slots=True)
class Grid:
    sizes: tuple[int, ...] = (100, 1000, 10_000, 100_000)
    services: tuple[str, ...] = SERVICES
    daemons: tuple[int, ...] = (3, 5)
    runs: int = 3
    dur: float = 7.0
    warm: float = 1.0
    drain: float = 5.0
    batch: int = FLOOD_BATCH
    baseline: bool = True  # the zmq baseline next to groupcomm in "tput" and "lat"
    lat_rates: tuple[float, ...] = ()
    lat_size: int = 100
    lat_daemons: int = 3
    flood_sizes: tuple[int, ...] = (100, 100_000)
    parts: tuple[str, ...] = ("tput", "flood")  # of PARTS, in this order

    def _work(
        self,
        mode: str,
        kind: str,
        size: int,
        daemons: int,
        service: str = "agreed",
        lat_rate: float = 1000.0,
    ) -> Workload:
        return Workload(
            mode=mode,
            size=size,
            service=service,
            kind=kind,
            daemons=daemons,
            dur=self.dur,
            warm=self.warm,
            drain=self.drain,
            lat_rate=lat_rate,
            batch=self.batch,
        )

    def cells(self, part: str) -> list[Cell]:
        """Every cell of ``part``, in table order; ``ValueError`` for a bad workload."""
        out: list[Cell] = []
        if part == "tput":
            for size in self.sizes:
                for n in self.daemons:
                    if self.baseline:
                        out.append(Cell(part, "zmq", self._work("all", "tput", size, n)))
                    for service in self.services:
                        w = self._work("all", "tput", size, n, service)
                        out.append(Cell(part, "groupcomm", w))
        elif part == "lat":
            for rate in sorted(self.lat_rates):
                w = self._work("all", "lat", self.lat_size, self.lat_daemons, lat_rate=rate)
                out.append(Cell(part, "groupcomm", w))
                if self.baseline:
                    out.append(Cell(part, "zmq", w))
        elif part == "flood":
            for size in self.flood_sizes:
                for n in self.daemons:
                    out.append(Cell(part, "groupcomm", self._work("one", "tput", size, n)))
        else:
            raise ValueError(f"unknown part {part!r} (one of {', '.join(PARTS)})")
        return out

    def runs_in_order(self) -> list[tuple[int, Cell]]:
        """``(run index, cell)`` for every run of the sweep, in the order they will run."""
        order: list[tuple[int, Cell]] = []
        for part in self.parts:
            cells = self.cells(part)
            for run in range(self.runs):
                order += [(run, c) for c in cells]
        return order


def estimate_s(runs: list[tuple[int, Cell]], netns: bool) -> tuple[float, float]:
    """(typical, worst) seconds for ``runs``: each takes its ``dur`` plus set-up, a flood
    also some drain; the worst case drains fully and starts slowly."""
    setup = SETUP_S + (NETNS_SETUP_S if netns else 0.0)
    typical = worst = 0.0
    for _, cell in runs:
        w = cell.work
        typical += w.dur + setup + (min(TPUT_DRAIN_S, w.drain) if w.kind == "tput" else 0.0)
        worst += w.dur + setup + w.drain + WORST_EXTRA_S
    return typical, worst


def describe(runs: list[tuple[int, Cell]], netns: bool) -> str:
    """One line per part and the estimate, printed before the sweep starts."""
    lines = []
    for part in PARTS:
        mine = [c for _, c in runs if c.part == part]
        if mine:
            systems = sorted({c.system for c in mine})
            lines.append(f"  {part}: {len(mine)} runs ({', '.join(systems)})")
    typical, worst = estimate_s(runs, netns)
    lines.append(
        f"  total: {len(runs)} runs, about {typical / 60:.0f} min"
        f" ({typical:.0f} s; at most {worst / 60:.0f} min if every run drains fully)"
    )
    return "\n".join(lines)
