"""A sweep's run records -> markdown tables for docs/performance.md, the latency points and
knee for the plot, and the daemons' memory bound under overload.

Pure (records in, text out), so that a sweep's JSON-lines file can be rendered again later
(``sweep --report FILE``) and every table is unit-tested without running anything. A cell shows
the median of its runs and their range, ``median (min-max)``, and ``[k/n ok]`` when some runs
were not ``ok`` (loss, a membership change, a member that failed): their figures still count,
as in the rest of docs/performance.md, and the problems are listed under the tables.

Records carry the sweep's ``part`` (``tput``, ``lat``, ``flood``) and ``nodes`` (the daemon
count, also for the baseline, whose ``daemons`` field is 0).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from groupcomm.benchmark.workload import SERVICES, Workload

KEEP_UP = 0.95  # a latency point fails when the slowest receiver delivers less of the offer
MIB = 1 << 20


def normalize(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record with ``part`` and ``nodes``, inferred when it came from ``groupcomm bench
    --out`` rather than from a sweep: latency runs are ``lat``, one-sender floods ``flood``,
    the rest ``tput``; ``nodes`` is the daemon count (for the baseline: its hosts)."""
    r = dict(record)
    r.setdefault("transport", "tcp")
    if "part" not in r:
        r["part"] = (
            "lat" if r.get("kind") == "lat" else "flood" if r.get("mode") == "one" else "tput"
        )
    if "nodes" not in r:
        members = int(r.get("members") or 0)
        r["nodes"] = r.get("daemons") or (members - 1 if r.get("mode") == "one" else members)
    return r


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if self.n == 1 or self.low == self.high:
            return _num(self.median)
        return f"{_num(self.median)} ({_num(self.low)}-{_num(self.high)})"


def spread(values: Iterable[Any]) -> Spread | None:
    """Median, min and max of the numbers among ``values`` (None when there are none)."""
    xs = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not xs:
        return None
    return Spread(statistics.median(xs), min(xs), max(xs), len(xs))


def _pick(records: Iterable[Mapping[str, Any]], **match: Any) -> list[Mapping[str, Any]]:
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def _cell(records: Sequence[Mapping[str, Any]], key: str) -> str:
    s = spread(r.get(key) for r in records)
    if s is None:
        return "-"
    ok = sum(1 for r in records if r.get("ok"))
    return str(s) + ("" if ok == len(records) else f" [{ok}/{len(records)} ok]")


def _median(records: Sequence[Mapping[str, Any]], key: str) -> float | None:
    s = spread(r.get(key) for r in records)
    return None if s is None else s.median


def _transports(records: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """The groupcomm data planes among ``records``: ``[None]`` (no need to tell them apart)
    unless there are several, as in the report of two sweeps' files put together."""
    found = sorted({str(r.get("transport")) for r in records if r.get("system") == "groupcomm"})
    return list[str | None](found) if len(found) > 1 else [None]


# ----------------------------------------------------------------------------- throughput


def _rows(mine: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, dict[str, Any]]]:
    """The rows of a throughput table: (size, label, what its records match), the baseline
    first at each size, then the service levels (per data plane if there are several)."""
    rows: list[tuple[int, str, dict[str, Any]]] = []
    for size in sorted({int(r["size"]) for r in mine}):
        if _pick(mine, size=size, system="zmq"):
            rows.append((size, "zmq baseline", {"system": "zmq"}))
        for service in SERVICES:
            for t in _transports(mine):
                match = {"system": "groupcomm", "service": service}
                match |= {} if t is None else {"transport": t}
                if _pick(mine, size=size, **match):
                    rows.append((size, service.upper() + ("" if t is None else f" ({t})"), match))
    return rows


def wire_table(records: Sequence[Mapping[str, Any]]) -> str:
    """``--netns`` throughput runs: bytes each daemon's host sent per message it originated
    (the mean over daemons) and all hosts' bytes per delivered message, medians of the runs."""
    mine = [r for r in _pick(records, part="tput") if r.get("wire_out_bytes_per_msg")]
    if not mine:
        return ""
    nodes = sorted({int(r["nodes"]) for r in mine})
    lines = [
        "| size (B) | service |" + "".join(f" {n} daemons |" for n in nodes),
        "|---|---|" + "---|" * len(nodes),
    ]
    for size, label, match in _rows(mine):
        cells = []
        for n in nodes:
            runs = _pick(mine, size=size, nodes=n, **match)
            means = []
            for r in runs:
                xs = [x for x in r["wire_out_bytes_per_msg"] if isinstance(x, int | float)]
                means.append(sum(xs) / len(xs) if xs else None)
            each, total = spread(means), _median(runs, "wire_total_bytes_per_delivered_msg")
            cells.append(
                ""
                if each is None
                else f"{_num(each.median)} / {'-' if total is None else _num(total)}"
            )
        lines.append(f"| {size:,} | {label} | " + " | ".join(cells) + " |")
    return (
        "Bytes on the wire (IPv4, all protocols): per message a daemon's host originated (mean "
        "over the daemons) / all hosts per delivered message, medians of the runs. The TCP mesh "
        "sends N - 1 copies of each message, epgm one.\n\n" + "\n".join(lines) + "\n"
    )


def tput_tables(records: Sequence[Mapping[str, Any]]) -> str:
    """Throughput all-to-all: msg/s of the slowest receiver per size x service x daemons, the
    zmq baseline first at each size; then MB/s and the share of the baseline (medians)."""
    mine = _pick(records, part="tput")
    if not mine:
        return ""
    nodes = sorted({int(r["nodes"]) for r in mine})
    rows = _rows(mine)
    cols = "".join(f" {n} daemons |" for n in nodes)
    rule = "|---|---|" + "---|" * len(nodes)
    first = [f"| size (B) | service |{cols}", rule]
    second = [f"| size (B) | service |{cols}", rule]
    for size, label, match in rows:
        system = match["system"]
        cells, shares = [], []
        for n in nodes:
            runs = _pick(mine, size=size, nodes=n, **match)
            cells.append(_cell(runs, "deliver_rate_min") if runs else "")
            mb = _median(runs, "mbytes_per_s")
            base = _median(_pick(mine, size=size, system="zmq", nodes=n), "deliver_rate_min")
            ours = _median(runs, "deliver_rate_min")
            share = f" ({100 * ours / base:.1f} %)" if ours is not None and base else ""
            shares.append("" if mb is None else f"{_num(mb)}{share if system != 'zmq' else ''}")
        first.append(f"| {size:,} | {label} | " + " | ".join(cells) + " |")
        second.append(f"| {size:,} | {label} | " + " | ".join(shares) + " |")
    return (
        "Throughput, all-to-all (every daemon's member sends and receives): msg/s delivered "
        "by the slowest receiver, median (min-max) of the runs.\n\n"
        + "\n".join(first)
        + "\n\nThe same as MB/s (median), and in parentheses groupcomm's share of the zmq "
        "baseline at the same size and daemon count.\n\n" + "\n".join(second) + "\n"
    )


# -------------------------------------------------------------------------------- latency


@dataclass(frozen=True, slots=True)
class LatPoint:
    """One offered rate of the latency sweep, medians over its runs."""

    rate: float
    p50_us: float | None
    p99_us: float | None
    delivered: float | None  # msg/s of the slowest receiver
    ok: int
    runs: int

    @property
    def failing(self) -> bool:
        """Loss or another problem in some run, or the receivers could not keep up."""
        return self.ok < self.runs or self.delivered is None or self.delivered < KEEP_UP * self.rate


def lat_points(records: Sequence[Mapping[str, Any]]) -> dict[str, list[LatPoint]]:
    """System -> its points in ascending offered rate."""
    mine = _pick(records, part="lat")
    out: dict[str, list[LatPoint]] = {}
    for system in ("groupcomm", "zmq"):
        points = []
        for rate in sorted({float(r["lat_rate"]) for r in _pick(mine, system=system)}):
            runs = [r for r in _pick(mine, system=system) if float(r["lat_rate"]) == rate]
            points.append(
                LatPoint(
                    rate,
                    _median(runs, "p50_us"),
                    _median(runs, "p99_us"),
                    _median(runs, "deliver_rate_min"),
                    sum(1 for r in runs if r.get("ok")),
                    len(runs),
                )
            )
        if points:
            out[system] = points
    return out


def knee(points: Sequence[LatPoint]) -> float | None:
    """The lowest offered rate that fails (``LatPoint.failing``): where loss or failure starts."""
    return next((p.rate for p in sorted(points, key=lambda p: p.rate) if p.failing), None)


def lat_table(points: Mapping[str, Sequence[LatPoint]]) -> str:
    if not points:
        return ""
    systems = list(points)
    rates = sorted({p.rate for ps in points.values() for p in ps})
    head = "| offered msg/s |" + "".join(
        f" {s} p50 µs | {s} p99 µs | {s} delivered/s |" for s in systems
    )
    lines = [head, "|---|" + "---|---|---|" * len(systems)]
    for rate in rates:
        cells = []
        for s in systems:
            p = next((q for q in points[s] if q.rate == rate), None)
            if p is None:
                cells += ["", "", ""]
                continue
            mark = f" [{p.ok}/{p.runs} ok]" if p.ok < p.runs else ""
            cells += [
                "-" if p.p50_us is None else _num(p.p50_us),
                "-" if p.p99_us is None else _num(p.p99_us),
                ("-" if p.delivered is None else _num(p.delivered)) + mark,
            ]
        lines.append(f"| {_num(rate)} | " + " | ".join(cells) + " |")
    knees = ", ".join(
        f"{s} {'none in range' if (k := knee(ps)) is None else f'at {_num(k)} msg/s'}"
        for s, ps in points.items()
    )
    return (
        "Latency vs offered load, all-to-all, AGREED (the baseline: no order), medians of the "
        "runs. The knee (the first offered rate with loss, a failed run, or a slowest receiver "
        f"below {KEEP_UP:.0%} of the offer): {knees}.\n\n" + "\n".join(lines) + "\n"
    )


# ---------------------------------------------------------------------------- memory bound


def sessions_per_daemon(work: Workload) -> list[int]:
    """Client sessions (member processes) on each daemon."""
    out = [0] * work.daemons
    for m in work.members():
        out[m.node] += 1
    return out


def memory_bound_bytes(
    daemons: int, sessions: int, window_bytes: int, send_window: int, slow_consumer_bytes: int
) -> int:
    """What one daemon may hold in message payload by its flow control: ``window_bytes`` of
    unstable messages per sending daemon (every daemon of the view), plus per client session
    ``session_send_window`` accepted but not yet stamped and ``slow_consumer_bytes`` delivered
    but not yet consumed. Payload only: interpreter, object and socket-buffer overhead come on
    top."""
    return daemons * window_bytes + sessions * (send_window + slow_consumer_bytes)


def _mib(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _flood_row(
    runs: Sequence[Mapping[str, Any]],
    daemons: int,
    size: int,
    window_bytes: int,
    send_window: int,
    slow_consumer_bytes: int,
) -> str:
    sent, got = _median(runs, "send_rate"), _median(runs, "deliver_rate_min")
    rss = [list(r.get("daemon_rss_mb") or []) for r in runs]
    d1 = max((x[0] for x in rss if x), default=None)
    rest = max((v for x in rss for v in x[1:]), default=None)
    bounds = [
        memory_bound_bytes(daemons, s, window_bytes, send_window, slow_consumer_bytes) / MIB
        for s in sessions_per_daemon(Workload(mode="one", daemons=daemons, size=size))
    ]
    ratio = "-" if not sent or got is None else f"{got / sent:.2f}"
    ok = sum(1 for r in runs if r.get("ok"))
    return (
        f"| {daemons} | {size:,} | {_cell(runs, 'send_rate')} | "
        f"{_cell(runs, 'deliver_rate_min')} | {ratio} | {_mib(d1)} / {_mib(rest)} | "
        f"{bounds[0]:.0f} / {max(bounds[1:], default=bounds[0]):.0f} | {ok}/{len(runs)} |"
    )


def flood_table(
    records: Sequence[Mapping[str, Any]],
    window_bytes: int,
    send_window: int,
    slow_consumer_bytes: int,
) -> str:
    """One sender flooding (mode one): its send rate vs the delivered rate, and each daemon's
    peak RSS (the largest over the runs) next to its payload bound."""
    mine = _pick(records, part="flood")
    if not mine:
        return ""
    lines = [
        "| daemons | size (B) | sender send/s | delivered/s (slowest) | delivered / sent "
        "| peak RSS MiB, d1 / others | payload bound MiB, d1 / others | runs ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in _transports(mine):
        which = mine if t is None else _pick(mine, transport=t)
        for size in sorted({int(r["size"]) for r in which}):
            for n in sorted({int(r["nodes"]) for r in _pick(which, size=size)}):
                runs = _pick(which, size=size, nodes=n)
                row = _flood_row(runs, n, size, window_bytes, send_window, slow_consumer_bytes)
                lines.append(row if t is None else row.replace(f"| {n} |", f"| {n} ({t}) |", 1))
    return (
        "Overload: one sender floods (mode one, AGREED), flow control slows it to what the group "
        "delivers. Payload bound per daemon = daemons x window_bytes + sessions x "
        f"(session_send_window + slow_consumer_bytes) = daemons x {window_bytes / MIB:g} MiB + "
        f"sessions x ({send_window / MIB:g} + {slow_consumer_bytes / MIB:g}) MiB "
        "(d1 has 2 sessions, the sender and a receiver; the others 1). RSS includes the "
        "interpreter (about 30 MiB at rest) and per-message object overhead.\n\n"
        + "\n".join(lines)
        + "\n"
    )


# ------------------------------------------------------------------------------- document


def problems(records: Sequence[Mapping[str, Any]], limit: int = 40) -> str:
    """One line per run that was not ``ok``."""
    bad = [r for r in records if not r.get("ok")]
    lines = []
    for r in bad[:limit]:
        what = f"{r.get('part')} {r.get('system')} {r.get('size')} B"
        if r.get("system") == "groupcomm":
            what += f" {str(r.get('service', '')).upper()}"
        if r.get("kind") == "lat":
            what += f" at {_num(float(r.get('lat_rate') or 0))} msg/s"
        what += f", {r.get('nodes')} daemons, run {int(r.get('run', 0)) + 1}"
        lines.append(f"- {what}: {'; '.join(map(str, r.get('problems', [])))}")
    if len(bad) > limit:
        lines.append(f"- ... and {len(bad) - limit} more (see the JSON lines)")
    return "\n".join(lines)


def render(
    records: Sequence[Mapping[str, Any]],
    header: Sequence[str],
    window_bytes: int,
    send_window: int,
    slow_consumer_bytes: int,
    peers: Mapping[str, Sequence[LatPoint]] | None = None,
    peer_note: str = "",
) -> str:
    """The whole markdown report: ``header`` lines (command, date, machine), then a section
    per part that has records, then the problems. ``peers``: more latency curves (the peer
    kit's, ``peerkit``) as column blocks of the latency table, followed by ``peer_note``."""
    foreign = spread(r.get("foreign_cpu_pct") for r in records)
    out = ["\n".join(header)]
    if foreign is not None:
        out.append(
            f"Foreign CPU during the windows (other processes, % of one CPU): median "
            f"{foreign.median:.0f}, range {foreign.low:.0f}-{foreign.high:.0f}. "
            f"Runs ok: {sum(1 for r in records if r.get('ok'))}/{len(records)}."
        )
    for text in (
        tput_tables(records),
        wire_table(records),
        lat_table({**lat_points(records), **(peers or {})}),
        peer_note if peers else "",
        flood_table(records, window_bytes, send_window, slow_consumer_bytes),
    ):
        if text:
            out.append(text.rstrip("\n"))
    bad = problems(records)
    if bad:
        out.append("Runs that were not ok:\n\n" + bad)
    return "\n\n".join(out) + "\n"
