"""Metrics of one run: what a researcher measures, computed from the run's trace.

Owns the definitions (docs/simulation.md, "Metrics") and their computation as pure functions of
a loaded ``sim.trace.Trace`` plus ``RunnerCounters``, the few numbers only the runner sees
(frames and bytes sent, repairs, when each daemon's view change began). Like ``sim.trace`` it
never imports ``groupcomm``: the trace part works on any recorded trace, and fields that need
the runner's counters are None without them.

- partition detection: per side of each ``partition`` fault, the time from the fault until a
  daemon of the side (``first_ms``) and until every daemon of the side alive at the cut
  (``all_ms``) installs a regular configuration without any daemon of the other sides;
- merge: per ``heal`` fault and at ``stable`` (the final heal), the time until a regular
  configuration containing every daemon alive at the heal forms (``first_ms``: its first install)
  and until all of them installed it (``all_ms``);
- view-change rounds: every regular configuration formed after start-up, with the spread of
  its installs and, from the runner, its duration (first member leaving normal operation to the
  last install);
- delivery latency per service level, send to daemon ``deliver`` and to client ``cdeliver``;
- traffic per delivered message and repairs (NAKs sent, messages retransmitted).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sim.trace import SERVICES, Fault, Install, Stable, Trace


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerCounters:
    """Counters only the runner has. ``rounds``: (daemon token, regular configuration it then
    installed, time it left normal operation) for every view change that ended in an install."""

    frames_sent: int
    frame_bytes: int | None  # None when frames do not go through the codec
    naks: int
    retransmitted: int
    rounds: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SideDetection:
    side: tuple[str, ...]  # daemon names
    first_ms: int | None
    all_ms: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionMetric:
    t: int
    sides: tuple[SideDetection, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeMetric:
    t: int
    what: str  # "heal" (a fault) or "stable" (the final heal)
    live: tuple[str, ...]  # daemon tokens alive at the heal
    first_ms: int | None
    all_ms: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundMetric:
    conf: str
    t: int  # its first install
    members: int
    spread_ms: int  # first to last install
    duration_ms: int | None  # first member leaving normal operation to the last install


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyStats:
    svc: str
    level: str  # "daemon" (send to deliver) or "client" (send to cdeliver)
    count: int
    p50_ms: int
    p99_ms: int
    max_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunMetrics:
    end_ms: int
    partitions: tuple[PartitionMetric, ...]
    merges: tuple[MergeMetric, ...]
    rounds: tuple[RoundMetric, ...]
    regular_views: int  # regular configurations formed after start-up
    regular_installs: int  # their installs, summed over daemons
    latency: tuple[LatencyStats, ...]
    messages_sent: int
    messages_delivered: int  # distinct messages delivered by at least one daemon
    frames_sent: int | None
    frame_bytes: int | None
    frames_per_message: float | None
    bytes_per_message: float | None
    naks: int | None
    retransmitted: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compute_metrics(trace: Trace, counters: RunnerCounters | None = None) -> RunMetrics:
    """Every metric of one run."""
    events = trace.events
    regulars = [e for e in events if isinstance(e, Install) and e.regular]
    startups = _startup_confs(trace)
    rounds = _rounds(trace, startups, counters.rounds if counters else ())
    delivered = len(trace.delivers_of)
    frames = counters.frames_sent if counters else None
    nbytes = counters.frame_bytes if counters else None
    return RunMetrics(
        end_ms=events[-1].t if events else 0,
        partitions=tuple(_partitions(trace, regulars)),
        merges=tuple(_merges(trace, regulars)),
        rounds=rounds,
        regular_views=len(rounds),
        regular_installs=sum(1 for e in regulars if e.conf not in startups),
        latency=tuple(_latencies(trace)),
        messages_sent=len(trace.sends),
        messages_delivered=delivered,
        frames_sent=frames,
        frame_bytes=nbytes,
        frames_per_message=_ratio(frames, delivered),
        bytes_per_message=_ratio(nbytes, delivered),
        naks=counters.naks if counters else None,
        retransmitted=counters.retransmitted if counters else None,
    )


def _ratio(total: int | None, count: int) -> float | None:
    return None if total is None or not count else round(total / count, 2)


def name_of(token: str) -> str:
    """Daemon name of a token ``name:incarnation``."""
    return token.rsplit(":", 1)[0]


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of a non-empty sorted sequence (q in (0, 1])."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


# ---------------------------------------------------------------------------- who is alive


def _alive_at(trace: Trace, idx: int) -> list[str]:
    """Daemon tokens that started before event ``idx`` and had not crashed by then."""
    out = []
    for d, evs in trace.daemon_events.items():
        crash = trace.crashes.get(d)
        if evs[0].idx < idx and (crash is None or crash.idx > idx):
            out.append(d)
    return sorted(out)


def _current(trace: Trace, d: str, idx: int) -> Install | None:
    """The regular configuration daemon ``d`` had installed last before event ``idx``."""
    last = None
    for inst in trace.installs.get(d, []):
        if inst.idx >= idx:
            break
        if inst.regular:
            last = inst
    return last


def _window_end(events: Sequence[Any], idx: int, ends: tuple[str, ...], stable: bool) -> int:
    """Index of the first event after ``idx`` that ends a measurement window."""
    for e in events[idx + 1 :]:
        if (isinstance(e, Fault) and e.what in ends) or (stable and isinstance(e, Stable)):
            return int(e.idx)
    return len(events)


def _between(regulars: list[Install], start: int, end: int) -> list[Install]:
    idxs = [e.idx for e in regulars]
    return regulars[bisect.bisect_right(idxs, start) : bisect.bisect_left(idxs, end)]


# ------------------------------------------------------------------------------ partitions


def fault_sides(fault: Fault) -> list[list[str]] | None:
    """A partition fault's sides: its ``sides`` field, or side labels in ``args`` (one per
    daemon ``d1``, ``d2``... in order); None if neither is there."""
    sides = fault.details.get("sides")
    if isinstance(sides, list) and all(isinstance(s, list) for s in sides):
        return [[str(n) for n in s] for s in sides]
    args = fault.details.get("args")
    if isinstance(args, list) and args and all(isinstance(a, int) for a in args):
        names = [f"d{i + 1}" for i in range(len(args))]
        return [[n for n, a in zip(names, args, strict=True) if a == x] for x in sorted(set(args))]
    return None


# Faults that split the daemons into sides (each carries ``sides`` in its trace event).
SIDED_CUTS = ("partition", "isolate", "majority")


def _partitions(trace: Trace, regulars: list[Install]) -> Iterable[PartitionMetric]:
    events = trace.events
    for e in events:
        if not (isinstance(e, Fault) and e.what in SIDED_CUTS):
            continue
        sides = fault_sides(e)
        if sides is None:
            continue
        end = _window_end(events, e.idx, (*SIDED_CUTS, "heal"), stable=True)
        window = _between(regulars, e.idx, end)
        alive = _alive_at(trace, e.idx)
        yield PartitionMetric(
            t=e.t,
            sides=tuple(_detection(trace, e, frozenset(s), alive, window, end) for s in sides),
        )


def _detection(
    trace: Trace,
    cut: Fault,
    side: frozenset[str],
    alive: list[str],
    window: list[Install],
    end: int,
) -> SideDetection:
    """When the daemons of ``side`` installed a regular configuration without the others."""
    found: dict[str, int] = {}
    tokens = [d for d in alive if name_of(d) in side]
    for d in tokens:
        current = _current(trace, d, cut.idx)
        if current is not None and {name_of(m) for m in current.members} <= side:
            found[d] = cut.t
    for inst in window:
        if inst.d in tokens and inst.d not in found and {name_of(m) for m in inst.members} <= side:
            found[inst.d] = inst.t
    required = [d for d in tokens if d in found or not _crashed_before(trace, d, end)]
    times = [found[d] - cut.t for d in tokens if d in found]
    complete = bool(required) and all(d in found for d in required)
    return SideDetection(
        side=tuple(sorted(side)),
        first_ms=min(times) if times else None,
        all_ms=max(times) if complete else None,
    )


def _crashed_before(trace: Trace, d: str, idx: int) -> bool:
    crash = trace.crashes.get(d)
    return crash is not None and crash.idx < idx


# ---------------------------------------------------------------------------------- merges


def _merges(trace: Trace, regulars: list[Install]) -> Iterable[MergeMetric]:
    events = trace.events
    for e in events:
        if isinstance(e, Fault) and e.what == "heal":
            what = "heal"
        elif isinstance(e, Stable):
            what = "stable"
        else:
            continue
        end = _window_end(events, e.idx, SIDED_CUTS, stable=False)
        live = _alive_at(trace, e.idx)
        first, last = _merge_times(trace, e.idx, live, _between(regulars, e.idx, end))
        yield MergeMetric(
            t=e.t,
            what=what,
            live=tuple(live),
            first_ms=None if first is None else first - e.t,
            all_ms=None if last is None else last - e.t,
        )


def _merge_times(
    trace: Trace, idx: int, live: list[str], window: list[Install]
) -> tuple[int | None, int | None]:
    """(first install, last live daemon's install) of the first configuration holding ``live``."""
    if not live:
        return None, None
    t = trace.events[idx].t
    currents = [_current(trace, d, idx) for d in live]
    only = currents[0]
    if (
        only is not None
        and all(c is not None and c.conf == only.conf for c in currents)
        and set(live) <= set(only.members)
    ):
        return t, t
    wanted = set(live)
    first: int | None = None
    installed: dict[str, dict[str, int]] = {}
    for inst in window:
        if not wanted <= set(inst.members):
            continue
        if first is None:
            first = inst.t
        got = installed.setdefault(inst.conf, {})
        got[inst.d] = inst.t
        if wanted <= got.keys():
            return first, max(got[d] for d in wanted)
    return first, None


# ---------------------------------------------------------------------------------- rounds


def _startup_confs(trace: Trace) -> frozenset[str]:
    """Regular configurations that are only their installers' start-up (first) install."""
    first = {insts[0].conf for insts in trace.installs.values() if insts}
    later = {inst.conf for insts in trace.installs.values() for inst in insts[1:]}
    return frozenset(first - later)


def _rounds(
    trace: Trace, startups: frozenset[str], starts: Iterable[tuple[str, str, int]]
) -> tuple[RoundMetric, ...]:
    began: dict[str, int] = {}
    for _token, conf, t in starts:
        began[conf] = min(t, began.get(conf, t))
    by_conf: dict[str, list[Install]] = {}
    for insts in trace.installs.values():
        for inst in insts:
            if inst.regular and inst.conf not in startups:
                by_conf.setdefault(inst.conf, []).append(inst)
    out = []
    for conf, insts in by_conf.items():
        first = min(i.t for i in insts)
        last = max(i.t for i in insts)
        start = began.get(conf)
        out.append(
            RoundMetric(
                conf=conf,
                t=first,
                members=len(insts[0].members),
                spread_ms=last - first,
                duration_ms=None if start is None else last - start,
            )
        )
    return tuple(sorted(out, key=lambda r: (r.t, r.conf)))


# --------------------------------------------------------------------------------- latency


def _latencies(trace: Trace) -> Iterable[LatencyStats]:
    samples: dict[tuple[str, str], list[int]] = {}
    for level, by_mid in (("daemon", trace.delivers_of), ("client", trace.cdelivers_of)):
        for mid, delivers in by_mid.items():
            send = trace.sends.get(mid)
            if send is None:
                continue
            out = samples.setdefault((send.svc, level), [])
            out.extend(d.t - send.t for d in delivers)
    for svc in SERVICES:
        for level in ("daemon", "client"):
            values = sorted(samples.get((svc, level), []))
            if values:
                yield LatencyStats(
                    svc=svc,
                    level=level,
                    count=len(values),
                    p50_ms=percentile(values, 0.5),
                    p99_ms=percentile(values, 0.99),
                    max_ms=values[-1],
                )


# ------------------------------------------------------------------------------ formatting


def _ms(value: int | float | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def format_metrics(m: RunMetrics, max_rounds: int = 12) -> list[str]:
    """A readable table of ``m``, one string per line."""
    lines = ["metrics (simulated ms; '-' = did not happen in its window):"]
    lines.append("  partition detection (fault -> a view without the other sides):")
    for p in m.partitions:
        sides = " | ".join(",".join(s.side) for s in p.sides)
        lines.append(f"    cut at {p.t:>6} ms  {sides}")
        for s in p.sides:
            side = ",".join(s.side)
            lines.append(
                f"      side {side:<20} first {_ms(s.first_ms):>6}  all {_ms(s.all_ms):>6}"
            )
    if not m.partitions:
        lines.append("    (no partition)")
    lines.append("  merge (heal -> a view with every live daemon):")
    for h in m.merges:
        lines.append(
            f"    {h.what:<6} at {h.t:>6} ms  {len(h.live)} live  "
            f"first {_ms(h.first_ms):>6}  all {_ms(h.all_ms):>6}"
        )
    lines.extend(_format_rounds(m, max_rounds))
    head = f"{'delivery latency':<18} {'level':<7} {'count':>7} {'p50':>5} {'p99':>5} {'max':>5}"
    lines.append(f"  {head}")
    for st in m.latency:
        lines.append(
            f"    {st.svc:<16} {st.level:<7} {st.count:>7} {st.p50_ms:>5} {st.p99_ms:>5} "
            f"{st.max_ms:>5}"
        )
    lines.append(
        f"  traffic: {m.messages_sent} messages sent, {m.messages_delivered} delivered; "
        f"{_ms(m.frames_sent)} frames, {_ms(m.frame_bytes)} bytes; per delivered message "
        f"{_ms(m.frames_per_message)} frames, {_ms(m.bytes_per_message)} bytes"
    )
    lines.append(f"  repairs: {_ms(m.naks)} NAKs, {_ms(m.retransmitted)} messages retransmitted")
    return lines


def _format_rounds(m: RunMetrics, max_rounds: int) -> list[str]:
    durations = sorted(r.duration_ms for r in m.rounds if r.duration_ms is not None)
    summary = (
        f"p50 {percentile(durations, 0.5)} max {durations[-1]} ms" if durations else "no durations"
    )
    lines = [
        f"  view changes: {m.regular_views} regular views formed, {m.regular_installs} installs; "
        f"round duration {summary}"
    ]
    for r in m.rounds[:max_rounds]:
        lines.append(
            f"    {r.conf:<24} at {r.t:>6} ms  {r.members} members  "
            f"took {_ms(r.duration_ms):>5}  installs spread {r.spread_ms} ms"
        )
    if len(m.rounds) > max_rounds:
        lines.append(f"    ... {len(m.rounds) - max_rounds} more")
    return lines


def metrics_record(metrics: RunMetrics, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document of one run's metrics, with ``extra`` (options, verdict) first."""
    return {**extra, "metrics": metrics.to_json()}
