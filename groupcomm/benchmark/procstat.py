"""CPU time and memory of processes, read from ``/proc`` by the orchestrator.

The orchestrator reads them instead of the processes reporting their own, so that the hot loops
carry no measuring code and daemons need no hooks. CPU comes from ``/proc/PID/stat``
(utime + stime of all threads); the peer kit found the host-wide ``/proc/stat`` unreliable for
paced loads on this VM. A snapshot of *every* process is also taken, to tell how much CPU other
tenants of the machine used during the window ("foreign" CPU): the figures of a disturbed run
are not comparable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> tuple[str, list[str]] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    left, right = raw.find("("), raw.rfind(")")
    if left < 0 or right < 0:
        return None
    return raw[left + 1 : right], raw[right + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by ``pid`` (None if it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    rest = fields[1]
    try:
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    except (IndexError, ValueError):
        return None


def all_cpu() -> dict[int, tuple[str, float]]:
    """``{pid: (command name, CPU seconds)}`` of every process on the host."""
    out: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is None:
            continue
        comm, rest = fields
        try:
            out[int(entry)] = (comm, (int(rest[11]) + int(rest[12])) / CLK_TCK)
        except (IndexError, ValueError):
            continue
    return out


def memory_kb(pid: int) -> tuple[int, int] | None:
    """``(VmRSS, VmHWM)`` of ``pid`` in KiB (None if it is gone)."""
    rss = hwm = -1
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return (rss, hwm) if rss >= 0 and hwm >= 0 else None


@dataclass
class CpuWindow:
    """CPU used by named processes (and by everybody else) between ``begin`` and ``end``."""

    pids: dict[str, int]  # label -> pid
    start: dict[int, tuple[str, float]] | None = None
    t_start: float = 0.0

    def begin(self, now: float) -> None:
        self.start, self.t_start = all_cpu(), now

    def end(self, now: float) -> tuple[dict[str, float | None], float, list[tuple[str, float]]]:
        """``(percent of one CPU per label, foreign percent, top 3 foreign commands)``."""
        assert self.start is not None
        stop = all_cpu()
        elapsed = max(now - self.t_start, 1e-9)
        per: dict[str, float | None] = {}
        for label, pid in self.pids.items():
            a, b = self.start.get(pid), stop.get(pid)
            per[label] = None if a is None or b is None else 100.0 * (b[1] - a[1]) / elapsed
        foreign = _foreign(self.start, stop, set(self.pids.values()) | {os.getpid()})
        top = sorted(foreign.items(), key=lambda kv: -kv[1])[:3]
        return (
            per,
            100.0 * sum(foreign.values()) / elapsed,
            [(name, round(100.0 * s / elapsed, 1)) for name, s in top],
        )


def _foreign(
    start: Mapping[int, tuple[str, float]],
    stop: Mapping[int, tuple[str, float]],
    mine: Iterable[int],
) -> dict[str, float]:
    """CPU seconds per command name of every process not in ``mine``."""
    skip = set(mine)
    used: dict[str, float] = {}
    for pid, (comm, cpu) in stop.items():
        if pid in skip:
            continue
        delta = cpu - start.get(pid, (comm, 0.0))[1]
        if delta > 0:
            used[comm] = used.get(comm, 0.0) + delta
    return used


@dataclass
class PeakMemory:
    """The largest RSS seen per label while sampling, and the last VmHWM (kernel's peak)."""

    pids: dict[str, int]
    peak_kb: dict[str, int] | None = None

    def sample(self) -> None:
        if self.peak_kb is None:
            self.peak_kb = dict.fromkeys(self.pids, 0)
        for label, pid in self.pids.items():
            mem = memory_kb(pid)
            if mem is not None:
                self.peak_kb[label] = max(self.peak_kb[label], *mem)

    def peak_mb(self) -> dict[str, float]:
        return {k: round(v / 1024, 1) for k, v in (self.peak_kb or {}).items()}
