"""How the fan-out command shows its records: a table per part on stdout, JSON lines for
``--out``. Formatting only; the numbers come from ``aggregate``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

FANOUT_COLUMNS: tuple[tuple[str, str, int], ...] = (
    # (header, record key, width)
    ("system", "system", 13),
    ("service", "service", 8),
    ("offered/s", "offered_rate", 9),
    ("sent/s", "send_rate", 8),
    ("slowest/s", "deliver_rate_min", 9),
    ("mean/s", "deliver_rate_mean", 8),
    ("loss", "loss", 6),
    ("p50 ms", "p50_ms", 7),
    ("p99 ms", "p99_ms", 7),
    ("p99.9 ms", "p999_ms", 8),
    ("max ms", "max_ms", 7),
    ("server CPU %", "server_cpu_pct", 14),
    ("server us/line", "server_us_per_line", 14),
    ("consumer us/line", "consumer_us_per_line", 16),
    ("job CPU %", "job_cpu_pct", 9),
    ("server MB", "server_rss_mb", 14),
    ("foreign%", "foreign_cpu_pct", 8),
    ("ok", "ok", 3),
)

CATCHUP_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("system", "system", 13),
    ("away s", "away_s", 6),
    ("backlog", "backlog_lines", 8),
    ("catch-up s", "catchup_s", 10),
    ("lines/s", "catchup_lines_per_s", 8),
    ("gaps", "gaps", 5),
    ("dups", "duplicates", 5),
    ("live p99 ms", "p99_ms", 11),
    ("live slowest/s", "deliver_rate_min", 14),
    ("ok", "ok", 3),
)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, list):
        return "/".join(cell(v) for v in value)
    return str(value)


def _rows(
    records: Sequence[dict[str, Any]], columns: tuple[tuple[str, str, int], ...]
) -> list[str]:
    head = "  ".join(h.rjust(w) for h, _, w in columns)
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append("  ".join(cell(r.get(key)).rjust(w) for _, key, w in columns))
    return lines


def table(records: Sequence[dict[str, Any]]) -> str:
    """The fan-out table, then the catch-up table, then what was skipped or went wrong."""
    fanout = [r for r in records if r.get("part") == "fanout" and "skipped" not in r]
    catchup = [
        {**r, **r.get("catchup", {}), "ok": r.get("ok")}
        for r in records
        if r.get("part") == "catchup" and "skipped" not in r
    ]
    lines: list[str] = []
    if fanout:
        lines += _rows(fanout, FANOUT_COLUMNS)
        for r in fanout:
            by_node = r.get("p99_ms_by_node") or {}
            if by_node:
                cells = ", ".join(f"{h} {cell(v)}" for h, v in by_node.items())
                lines.append(f"  {_name(r)}: p99 ms by consumer host: {cells}")
    if catchup:
        lines += ["", "catch-up (one consumer away, then resuming from its stored position):"]
        lines += _rows(catchup, CATCHUP_COLUMNS)
    for r in records:
        if "skipped" in r:
            lines.append(f"  {r['system']} {r['part']}: skipped: {r['skipped']}")
        for problem in r.get("problems", []):
            lines.append(f"  ! {_name(r)} {r['part']}: {problem}")
    return "\n".join(lines)


def _name(record: dict[str, Any]) -> str:
    service = record.get("service")
    return f"{record['system']} {service}" if service else str(record["system"])


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record)
