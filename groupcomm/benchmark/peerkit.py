"""The peer benchmark kit's latency runs (``/work/shared/peers``, ``bench.py ... --kind lat``)
as curves for the sweep's latency table and plot (``sweep --peer-runs FILE``).

The kit appends one JSON line per run to ``<results>/runs.jsonl``: ``label`` (``--label``, by
default the peer's name), ``mode``, ``kind``, ``size``, ``ok`` (every member exited 0 and wrote
its result), ``loss_max``, ``tput_min`` (msg/s delivered by the slowest receiver in the window),
``send_rate_total``, ``lat_p50_us``, ``lat_p99_us``, and ``gaps``/``late_start``/``err`` when a
receiver missed messages or a member reported an error.

It does not record the offered rate (``--lat-rate``). It is taken, in this order, from a
``lat_rate`` field (should the kit ever write one); from the members' raw results in the run's
``rundir`` (the ``rate_cfg`` of every sender, summed), also looked for under ``raw/`` next to the
runs file when the results were moved; else from ``send_rate_total`` (what the senders managed
to send in the window), snapped to the nearest of the sweep's rates within 5 % or else rounded to
3 significant digits. The last is a guess: a sender that falls behind (CPG's
``CS_ERR_TRY_AGAIN``) sends less than it was offered, and its point then lands at the lower rate.

A run counts as ok when the kit says ``ok``, there was no loss (``loss_max`` 0, no ``gaps``, no
``late_start``), no member reported an error and every receiver saw the same order; a rate's
point is a ``LatPoint`` with the medians of its runs, so that it fails as a groupcomm point does
(a run not ok, or the slowest receiver delivering less than 95 % of the offer).

The curve's name (the ``system``) is the label up to its first ``-`` (``cpg-3node-knet`` ->
``cpg``), or the whole label when that short name is shared by several labels of the file (e.g.
``cpg-3node-knet`` and ``cpg-3node-knet-sched_rr``) or is one of the sweep's own systems.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from groupcomm.benchmark.sweepreport import LatPoint

SNAP = 0.05  # send_rate_total within 5 % of a sweep rate counts as that rate
OWN_SYSTEMS = ("groupcomm", "zmq")  # the sweep's systems: a peer curve must not take their names


@dataclass(frozen=True, slots=True)
class PeerRun:
    """One latency run of the peer kit, reduced to what the sweep's table and plot need."""

    system: str
    label: str
    peer: str  # the kit's peer: cpg, spread, redis, zmq
    run: int
    rate: float
    rate_from: str  # "lat_rate", "rate_cfg" or "send_rate_total"
    p50_us: float | None
    p99_us: float | None
    delivered: float | None
    problems: tuple[str, ...]
    nodes: str  # cpg, spread: "ns" (one daemon per namespace) or "single"
    service: str  # spread: agreed or safe

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def setup(self) -> str:
        """The kit's settings that the label may not tell (empty for the other peers)."""
        if self.peer == "cpg":
            return f"nodes {self.nodes}"
        if self.peer == "spread":
            return f"nodes {self.nodes}, {self.service.upper()}"
        return ""


@dataclass(frozen=True, slots=True)
class PeerCurves:
    """The peer systems' latency points, their runs, and notes for the report."""

    points: dict[str, list[LatPoint]]
    runs: list[PeerRun]
    source: str

    def describe(self) -> str:
        """A paragraph for results.md: where the curves come from, how the offered rates were
        found, and every run that was not ok."""
        if not self.runs:
            return ""
        systems = []
        for system in self.points:
            runs = [r for r in self.runs if r.system == system]
            about = [f"label {', '.join(sorted({r.label for r in runs}))}"]
            about += sorted({r.setup for r in runs if r.setup})
            about.append(f"{len(runs)} run{'s' if len(runs) > 1 else ''}")
            systems.append(f"{system} ({'; '.join(about)})")
        text = (
            f"Peer kit curves from `{self.source}` (3 members, `bench.py --mode all --kind lat`): "
            + ", ".join(systems)
            + "."
        )
        guessed = []
        for system in self.points:
            mine = [r for r in self.runs if r.system == system]
            rates = {r.rate for r in mine if r.rate_from == "send_rate_total"}
            if rates:
                guessed.append(f"{system} at {', '.join(f'{x:,.0f}' for x in sorted(rates))} msg/s")
        if guessed:
            text += (
                " The kit does not record the offered rate, and these runs' raw results are "
                "gone, so their offered rate is the senders' measured send rate (a sender that "
                "falls behind lands at a lower rate than it was offered): "
                + "; ".join(guessed)
                + "."
            )
        bad = [r for r in self.runs if not r.ok]
        if bad:
            text += "\n\nPeer kit runs that were not ok:\n\n" + "\n".join(
                f"- {r.system} at {r.rate:,.0f} msg/s, run {r.run + 1}: {'; '.join(r.problems)}"
                for r in bad
            )
        return text


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a runs.jsonl (blank lines skipped); ``OSError``/``ValueError``."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError(f"line {n}: not a JSON object")
        out.append(record)
    return out


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _label(record: Mapping[str, Any]) -> str:
    return str(record.get("label") or record.get("peer") or "peer")


def system_names(labels: Iterable[str], taken: Sequence[str] = OWN_SYSTEMS) -> dict[str, str]:
    """Label -> curve name: the label up to its first ``-`` unless another label has the same
    short name or it is one of ``taken``; then the whole label (``<label> (peer kit)`` if even
    that is taken)."""
    labels = sorted(set(labels))
    short = {label: label.split("-", 1)[0] or label for label in labels}
    names = {}
    for label in labels:
        name = short[label]
        if name in taken or sum(1 for s in short.values() if s == name) > 1:
            name = label if label not in taken else f"{label} (peer kit)"
        names[label] = name
    return names


def _raw_rate(record: Mapping[str, Any], base: Path | None) -> float | None:
    """The offered rate from the members' raw results: ``rate_cfg`` summed over senders."""
    rundir = record.get("rundir")
    if not isinstance(rundir, str) or not rundir:
        return None
    places = [Path(rundir)]
    if base is not None:
        places.append(base / "raw" / Path(rundir).name)
    for place in places:
        try:
            files = sorted(place.glob("m*.json"))
            members = [json.loads(f.read_text()) for f in files]
        except (OSError, ValueError):
            continue
        rates = [
            _number(m.get("rate_cfg"))
            for m in members
            if isinstance(m, dict) and m.get("send") in (1, True)
        ]
        if rates and all(r is not None and r > 0 for r in rates):
            return float(f"{sum(r for r in rates if r is not None):.4g}")  # 3 x 333.333 -> 1000
    return None


def offered_rate(
    record: Mapping[str, Any], rates: Sequence[float] = (), base: Path | None = None
) -> tuple[float, str] | None:
    """(msg/s offered by the whole group, where it came from), or None if nothing tells."""
    explicit = _number(record.get("lat_rate"))
    if explicit is not None and explicit > 0:
        return explicit, "lat_rate"
    raw = _raw_rate(record, base)
    if raw is not None:
        return raw, "rate_cfg"
    sent = _number(record.get("send_rate_total"))
    if sent is None or sent <= 0:
        return None
    near = min(rates, key=lambda r: abs(r - sent), default=None)
    if near is not None and abs(sent - near) <= SNAP * near:
        return float(near), "send_rate_total"
    return float(f"{sent:.3g}"), "send_rate_total"


def run_problems(record: Mapping[str, Any]) -> list[str]:
    """Why a peer kit run does not count as ok (empty when it does)."""
    out = []
    if not record.get("ok"):
        rc = record.get("rc")
        out.append(f"a member failed or wrote no result (exit codes {json.dumps(rc)})")
    loss = _number(record.get("loss_max"))
    if loss is None:
        out.append("no loss figure (no sender or receiver result)")
    elif loss > 0:
        out.append(f"loss {loss:.3g}")
    if record.get("gaps"):
        out.append(f"gaps {json.dumps(record['gaps'])}")
    if record.get("late_start"):
        out.append("a receiver missed the start of a stream")
    if record.get("err"):
        out.append(f"errors {json.dumps(record['err'])}")
    if record.get("order_same") is False:
        out.append("the receivers saw different orders")
    if _number(record.get("lat_p50_us")) is None:
        out.append("no latency samples")
    return out


def peer_runs(
    records: Iterable[Mapping[str, Any]],
    size: int,
    rates: Sequence[float] = (),
    base: Path | None = None,
    labels: Sequence[str] = (),
) -> list[PeerRun]:
    """The latency runs (``--mode all --kind lat``, ``size`` bytes) among ``records``; with
    ``labels``, only those whose label or short name (up to the first ``-``) is listed."""
    mine = [
        r
        for r in records
        if r.get("kind") == "lat"
        and r.get("mode") == "all"
        and _number(r.get("size")) == size
        and (not labels or _label(r) in labels or _label(r).split("-", 1)[0] in labels)
    ]
    names = system_names(_label(r) for r in mine)
    out = []
    for r in mine:
        rate = offered_rate(r, rates, base)
        if rate is None:
            continue
        out.append(
            PeerRun(
                system=names[_label(r)],
                label=_label(r),
                peer=str(r.get("peer") or _label(r).split("-", 1)[0]),
                run=int(_number(r.get("run")) or 0),
                rate=rate[0],
                rate_from=rate[1],
                p50_us=_number(r.get("lat_p50_us")),
                p99_us=_number(r.get("lat_p99_us")),
                delivered=_number(r.get("tput_min")),
                problems=tuple(run_problems(r)),
                nodes=str(r.get("nodes", "?")),
                service=str(r.get("service", "?")),
            )
        )
    return out


def _median(xs: Iterable[float | None]) -> float | None:
    values = [x for x in xs if x is not None]
    return statistics.median(values) if values else None


def peer_points(runs: Sequence[PeerRun]) -> dict[str, list[LatPoint]]:
    """System -> its points in ascending offered rate (medians of the runs at each rate)."""
    out: dict[str, list[LatPoint]] = {}
    for system in dict.fromkeys(r.system for r in runs):
        mine = [r for r in runs if r.system == system]
        points = []
        for rate in sorted({r.rate for r in mine}):
            at = [r for r in mine if r.rate == rate]
            points.append(
                LatPoint(
                    rate,
                    _median(r.p50_us for r in at),
                    _median(r.p99_us for r in at),
                    _median(r.delivered for r in at),
                    sum(1 for r in at if r.ok),
                    len(at),
                )
            )
        out[system] = points
    return out


def load_curves(
    paths: Sequence[Path],
    size: int,
    rates: Sequence[float] = (),
    labels: Sequence[str] = (),
) -> PeerCurves:
    """Read the peer kit's runs files and turn their latency runs into curves (``OSError`` or
    ``ValueError`` when a file cannot be read). Labels are named over all files together."""
    runs: list[PeerRun] = []
    for path in paths:
        runs += peer_runs(read_runs(path), size, rates, path.parent, labels)
    # named over all files: the same short name in two files is just as ambiguous
    names = system_names({r.label for r in runs})
    runs = [replace(r, system=names[r.label]) for r in runs]
    return PeerCurves(peer_points(runs), runs, ", ".join(str(p) for p in paths))
