"""How ``groupcomm bench`` shows its results: a readable table (default), one JSON line per run
(``--json``), the groupcomm/zmq ratio (``--compare``) and the progress line on stderr.

Formatting only: the numbers are computed in ``analysis``. Table columns: ``deliver/s`` is
``deliver_rate_min`` (the slowest receiver), ``MB/s`` its payload megabytes (10^6 bytes) per
second (``mbytes_per_s``: per receiver, not summed), ``daemon MB`` / ``member MB`` each
process's peak RSS in MiB, ``client us`` is ``client_us_per_msg``, ``foreign%`` the CPU other
processes used during the window, ``wire B/msg`` the bytes each daemon's host sent per message
(``wire_out_bytes_per_msg``, ``--netns`` only; see docs/performance.md).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from groupcomm.benchmark.workload import format_size

COLUMNS: tuple[tuple[str, str, int], ...] = (
    # (header, record key, width)
    ("system", "system", 9),
    ("mode", "mode", 4),
    ("service", "service", 10),
    ("size", "size", 6),
    ("kind", "kind", 4),
    ("run", "run", 3),
    ("deliver/s", "deliver_rate_min", 9),
    ("MB/s", "mbytes_per_s", 6),
    ("send/s", "send_rate", 9),
    ("loss", "loss", 6),
    ("order", "order_same", 5),
    ("p50 us", "p50_us", 9),
    ("p99 us", "p99_us", 9),
    ("p99.9 us", "p999_us", 9),
    ("max us", "max_us", 9),
    ("daemon CPU %", "daemon_cpu_pct", 14),
    ("daemon MB", "daemon_rss_mb", 14),
    ("member MB", "member_rss_mb", 14),
    ("client us", "client_us_per_msg", 9),
    ("wire B/msg", "wire_out_bytes_per_msg", 17),
    ("foreign%", "foreign_cpu_pct", 8),
    ("ok", "ok", 3),
)


def _cell(value: Any, key: str = "") -> str:
    if key == "size" and isinstance(value, int):
        return format_size(value)
    if isinstance(value, dict):
        return _cell(list(value.values()))
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, list):
        return "/".join(_cell(v) for v in value)
    return str(value)


def table(records: Sequence[dict[str, Any]]) -> str:
    head = "  ".join(h.rjust(w) for h, _, w in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append("  ".join(_cell(r.get(key), key).rjust(w) for _, key, w in COLUMNS))
    for r in records:
        if r.get("kind") == "lat" and r.get("p50_us_by_path"):
            lines.append(path_line(r))
    for r in records:
        for problem in r.get("problems", []):
            lines.append(f"  ! {r['system']} run {r['run']}: {problem}")
    return "\n".join(lines)


def path_line(record: dict[str, Any]) -> str:
    """p50 by path of one latency run: ``d2>d3`` is sent next to d2, delivered next to d3."""
    paths = record["p50_us_by_path"]
    seq = record.get("sequencer")
    where = f", sequencer {seq}" if seq else ""
    cells = " ".join(f"{path} {us:,.0f}" for path, us in paths.items())
    run = f"{record['system']} run {record['run']}"
    return f"  {run} p50 us by path (sender>receiver{where}): {cells}"


def _median(records: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in records if isinstance(r.get(key), int | float)]
    return statistics.median(values) if values else None


def summary(records: Sequence[dict[str, Any]]) -> str:
    """Median (min-max) over runs, per system."""
    lines = []
    for system in dict.fromkeys(r["system"] for r in records):
        mine = [r for r in records if r["system"] == system]
        parts = []
        for label, key in (
            ("deliver/s min", "deliver_rate_min"),
            ("MB/s per receiver (slowest)", "mbytes_per_s"),
            ("MB/s summed over receivers", "mbytes_per_s_sum"),
            ("p50 us", "p50_us"),
            ("p99 us", "p99_us"),
        ):
            values = [r[key] for r in mine if isinstance(r.get(key), int | float)]
            if values:
                mid, low, high = statistics.median(values), min(values), max(values)
                parts.append(f"{label} {_num(mid)} ({_num(low)}-{_num(high)})")
        peaks = [max(r["daemon_rss_mb"]) for r in mine if r.get("daemon_rss_mb")]
        if peaks:
            parts.append(f"peak daemon RSS {max(peaks):,.0f} MiB")
        ok = sum(1 for r in mine if r["ok"])
        lines.append(
            f"{system}: median of {len(mine)} runs: " + ", ".join(parts) + f"; ok {ok}/{len(mine)}"
        )
    return "\n".join(lines)


def _num(x: float) -> str:
    """Large figures without decimals, small ones (MB/s of large messages) with 3 digits."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def ratio(records: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """groupcomm vs the zmq baseline, medians over runs: throughput as a fraction of zmq's,
    latency as a multiple of zmq's."""
    ours = [r for r in records if r["system"] == "groupcomm"]
    base = [r for r in records if r["system"] == "zmq"]
    out: dict[str, float | None] = {}
    for key, name in (
        ("deliver_rate_min", "tput_ratio"),
        ("mbytes_per_s", "mbytes_ratio"),
        ("p50_us", "p50_ratio"),
        ("p99_us", "p99_ratio"),
    ):
        a, b = _median(ours, key), _median(base, key)
        out[name] = round(a / b, 3) if a is not None and b else None
    return out


def ratio_line(r: dict[str, float | None]) -> str:
    def show(x: float | None, unit: str) -> str:
        return "-" if x is None else f"{x:.3f}{unit}"

    return (
        f"groupcomm / zmq baseline: throughput {show(r['tput_ratio'], 'x')}"
        f" ({show(None if r['tput_ratio'] is None else 100 * r['tput_ratio'], ' %')} of the"
        f" physical limit; MB/s {show(r.get('mbytes_ratio'), 'x')}),"
        f" p50 latency {show(r['p50_ratio'], 'x')}, p99 {show(r['p99_ratio'], 'x')}"
    )


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=False)


class ProgressLine:
    """One status line on stderr, overwritten in place with ``\\r``; silent when disabled (for
    ``--quiet``, or when stderr is not a terminal)."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.prefix = ""
        self._width = 0

    def __call__(self, text: str) -> None:
        if not self.enabled:
            return
        line = f"{self.prefix}: {text}" if self.prefix else text
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
