"""A study's numbers: the flat per-run metrics it records, their aggregation per cell (mean and
95 % Student t interval), and the CSV and Markdown summaries.

Owns the study metric names (``STUDY_METRICS``: one number per run, derived from
``sim.metrics.RunMetrics`` plus the run's cost), how a run's metrics are flattened into them
(``flat_metrics``), the confidence interval, and the two text outputs. A metric a run does not
have (a partition never detected, a merge that did not happen while the faults lasted, a service
level nobody used) is ``None`` in ``runs.jsonl``: aggregation counts those runs as *missing* and
reports the count; they are never averaged as 0. The study itself is ``sim.studyfile`` (the
file and its grid) and ``sim.studyrun`` (runs, resume, writing the outputs); the plots
``sim.studyplot``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.metrics import RunMetrics, percentile
from sim.trace import SERVICES

Number = int | float


@dataclass(frozen=True, slots=True)
class MetricInfo:
    unit: str
    text: str


def _latency_metrics() -> dict[str, MetricInfo]:
    out: dict[str, MetricInfo] = {}
    for svc in SERVICES:
        for q in ("p50", "p99"):
            out[f"{svc.lower()}_{q}_ms"] = MetricInfo(
                "ms", f"{svc} delivery latency, send to daemon deliver, {q} of the run"
            )
            out[f"client_{svc.lower()}_{q}_ms"] = MetricInfo(
                "ms", f"{svc} delivery latency, send to client cdeliver, {q} of the run"
            )
    return out


STUDY_METRICS: dict[str, MetricInfo] = {
    "detect_ms": MetricInfo(
        "ms",
        "first partition: until every daemon of every side installed a view without the other "
        "sides (max over sides of all_ms); missing if a side did not before the next fault",
    ),
    "detect_first_ms": MetricInfo(
        "ms", "first partition: until the first daemon of any side installed such a view"
    ),
    "detect_major_ms": MetricInfo(
        "ms", "first partition: until every daemon of the largest side installed such a view"
    ),
    "detect_minor_ms": MetricInfo(
        "ms", "first partition: until every daemon of the smallest side installed such a view"
    ),
    "merge_ms": MetricInfo(
        "ms",
        "first heal fault: until every daemon alive at the heal installed one view holding all "
        "of them, while the faults last; missing if that only happened after the final heal "
        "(the end of the safety phase, when loss stops) or never",
    ),
    "merge_first_ms": MetricInfo(
        "ms", "first heal fault: until the first install of that merged view (same window)"
    ),
    "merge_stable_ms": MetricInfo(
        "ms", "final heal (end of the safety phase): until every live daemon installed one view"
    ),
    "views": MetricInfo("views", "regular views formed after start-up"),
    "round_p50_ms": MetricInfo("ms", "median view-change round duration of the run"),
    "round_max_ms": MetricInfo("ms", "longest view-change round of the run"),
    **_latency_metrics(),
    "messages_sent": MetricInfo("messages", "messages sent"),
    "messages_delivered": MetricInfo("messages", "distinct messages delivered"),
    "frames_sent": MetricInfo("frames", "frames sent (heartbeats included, lost ones too)"),
    "frame_bytes": MetricInfo("bytes", "bytes of every frame sent (null without the codec)"),
    "frames_per_msg": MetricInfo("frames", "frames sent per delivered message"),
    "bytes_per_msg": MetricInfo("bytes", "protocol bytes sent per delivered message"),
    "naks": MetricInfo("NAKs", "NAKs sent (repairs)"),
    "retransmitted": MetricInfo("messages", "messages retransmitted"),
    "violations": MetricInfo("violations", "property violations of the run (0 when it passes)"),
    "events": MetricInfo("events", "trace events"),
    "wall_s": MetricInfo("s", "wall-clock seconds of the run (simulation and checks)"),
    "cpu_s": MetricInfo("CPU-s", "CPU seconds of the run (simulation and checks)"),
    "cpu_s_per_daemon": MetricInfo("CPU-s", "CPU seconds of the run per daemon"),
}

# Always aggregated and shown: what a run costs.
COST_METRICS: tuple[str, ...] = ("cpu_s", "cpu_s_per_daemon")


def flat_metrics(
    m: RunMetrics | None, daemons: int, violations: int, events: int, wall_s: float, cpu_s: float
) -> dict[str, Number | None]:
    """Every ``STUDY_METRICS`` value of one run (None where the run has none)."""
    out: dict[str, Number | None] = dict.fromkeys(STUDY_METRICS)
    out.update(
        violations=violations,
        events=events,
        wall_s=round(wall_s, 3),
        cpu_s=round(cpu_s, 3),
        cpu_s_per_daemon=round(cpu_s / daemons, 4),
    )
    if m is None:
        return out
    if m.partitions:
        sides = m.partitions[0].sides
        alls = [s.all_ms for s in sides]
        out["detect_ms"] = None if None in alls else max(a for a in alls if a is not None)
        firsts = [s.first_ms for s in sides if s.first_ms is not None]
        out["detect_first_ms"] = min(firsts) if firsts else None
        out["detect_major_ms"] = max(sides, key=lambda s: len(s.side)).all_ms
        out["detect_minor_ms"] = min(sides, key=lambda s: len(s.side)).all_ms
    heal = next((h for h in m.merges if h.what == "heal"), None)
    stable = next((h for h in m.merges if h.what == "stable"), None)
    if heal is not None:
        window = None if stable is None else stable.t - heal.t
        for key, value in (("merge_ms", heal.all_ms), ("merge_first_ms", heal.first_ms)):
            out[key] = None if value is None or (window is not None and value > window) else value
    if stable is not None:
        out["merge_stable_ms"] = stable.all_ms
    out["views"] = m.regular_views
    durations = sorted(r.duration_ms for r in m.rounds if r.duration_ms is not None)
    if durations:
        out["round_p50_ms"] = percentile(durations, 0.5)
        out["round_max_ms"] = durations[-1]
    for st in m.latency:
        prefix = "" if st.level == "daemon" else "client_"
        out[f"{prefix}{st.svc.lower()}_p50_ms"] = st.p50_ms
        out[f"{prefix}{st.svc.lower()}_p99_ms"] = st.p99_ms
    out.update(
        messages_sent=m.messages_sent,
        messages_delivered=m.messages_delivered,
        frames_sent=m.frames_sent,
        frame_bytes=m.frame_bytes,
        frames_per_msg=m.frames_per_message,
        bytes_per_msg=m.bytes_per_message,
        naks=m.naks,
        retransmitted=m.retransmitted,
    )
    return out


# ------------------------------------------------------------------------- statistics

# Two-sided 95 % Student t quantiles (t_{0.975, df}); beyond the table, the normal's 1.96.
_T975: dict[int, float] = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
    18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060,
    26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}  # fmt: skip


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (scipy's if it is
    installed, else the table above, conservative between its rows)."""
    if df < 1:
        raise ValueError("a t interval needs at least two values")
    try:
        from scipy.stats import t  # type: ignore[import-not-found, import-untyped, unused-ignore]

        return float(t.ppf(0.975, df))
    except ImportError:
        pass
    if df in _T975:
        return _T975[df]
    below = [k for k in _T975 if k < df]
    return _T975[max(below)] if df <= 120 else 1.96


@dataclass(frozen=True, slots=True)
class Stat:
    """One metric over the runs of one cell: ``n`` runs had it, ``missing`` did not."""

    n: int
    missing: int
    mean: float | None
    ci95: float | None  # half-width; None with fewer than two values
    sd: float | None
    low: float | None
    high: float | None


def stat(values: Sequence[Number | None]) -> Stat:
    have = [float(v) for v in values if v is not None]
    missing = len(values) - len(have)
    if not have:
        return Stat(0, missing, None, None, None, None, None)
    mean = sum(have) / len(have)
    if len(have) < 2:
        return Stat(1, missing, mean, None, None, have[0], have[0])
    sd = math.sqrt(sum((v - mean) ** 2 for v in have) / (len(have) - 1))
    ci = t975(len(have) - 1) * sd / math.sqrt(len(have))
    return Stat(len(have), missing, mean, ci, sd, min(have), max(have))


@dataclass(frozen=True, slots=True)
class CellSummary:
    cell: Mapping[str, Any]  # axis -> value (its label in the study file)
    runs: int
    failed: int  # runs with a violation or an exception
    stats: Mapping[str, Stat]


def summarise(
    cells: Sequence[Mapping[str, Any]],
    records: Mapping[int, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str],
) -> list[CellSummary]:
    """Per cell (in grid order), the stats of ``metrics`` over its records."""
    out = []
    for i, cell in enumerate(cells):
        recs = records.get(i, ())
        stats = {name: stat([r.get("metrics", {}).get(name) for r in recs]) for name in metrics}
        failed = sum(1 for r in recs if not r.get("ok"))
        out.append(CellSummary(cell=cell, runs=len(recs), failed=failed, stats=stats))
    return out


# ---------------------------------------------------------------------------- formatting


def decimals(value: float) -> int:
    size = abs(value)
    return 0 if size == 0 or size >= 100 else 1 if size >= 10 else 2 if size >= 0.1 else 3


def fmt(value: float | None, places: int | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.{decimals(value) if places is None else places}f}"


def fmt_stat(s: Stat) -> str:
    """``453 ± 87``, ``453 (n=1)``, with ``[2/6 missing]`` when some runs had no value."""
    if s.mean is None:
        text = "-"
    else:
        places = decimals(s.mean)
        text = f"{s.mean:.{places}f}"
        text += f" ± {s.ci95:.{places}f}" if s.ci95 is not None else " (n=1)"
    if s.missing:
        text += f" [{s.missing}/{s.n + s.missing} missing]"
    return text


def label(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------------------------- CSV


def write_csv(
    path: Path, axes: Sequence[str], metrics: Sequence[str], rows: Iterable[CellSummary]
) -> None:
    """One row per cell: its axes, runs, failed, then per metric mean, ci95, sd, n, missing."""
    head = [*axes, "runs", "failed"]
    for name in metrics:
        head += [f"{name}_{x}" for x in ("mean", "ci95", "sd", "n", "missing")]
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(head)
        for row in rows:
            line: list[Any] = [label(row.cell[a]) for a in axes]
            line += [row.runs, row.failed]
            for name in metrics:
                s = row.stats[name]
                line += [_num(s.mean), _num(s.ci95), _num(s.sd), s.n, s.missing]
            writer.writerow(line)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


# ----------------------------------------------------------------------------- Markdown


def markdown_table(
    axes: Sequence[str], metrics: Sequence[str], rows: Sequence[CellSummary]
) -> list[str]:
    """The summary table(s): a row per cell, a column per metric (mean ± 95 % CI), at most
    five metric columns per table."""
    lines: list[str] = []
    for start in range(0, len(metrics), 5):
        chunk = metrics[start : start + 5]
        head = [*axes, "runs", *chunk]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" if h in axes else "--:" for h in head) + "|")
        for row in rows:
            runs = f"{row.runs}" + (f" ({row.failed} failed)" if row.failed else "")
            cells = [label(row.cell[a]) for a in axes] + [runs]
            cells += [fmt_stat(row.stats[name]) for name in chunk]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def metric_glossary(metrics: Sequence[str]) -> list[str]:
    return [
        f"- `{name}` ({STUDY_METRICS[name].unit}): {STUDY_METRICS[name].text}" for name in metrics
    ]
