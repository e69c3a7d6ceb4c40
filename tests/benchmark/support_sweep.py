"""Synthetic sweep records for the report, plot and sweep tests."""

from __future__ import annotations

from typing import Any


def rec(part: str, system: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "part": part,
        "system": system,
        "mode": "one" if part == "flood" else "all",
        "kind": "lat" if part == "lat" else "tput",
        "size": 100,
        "service": "agreed" if system == "groupcomm" else "none",
        "nodes": 3,
        "run": 0,
        "ok": True,
        "problems": [],
        "deliver_rate_min": 1000.0,
        "mbytes_per_s": 0.1,
        "send_rate": 1000.0,
        "p50_us": 100.0,
        "p99_us": 1000.0,
        "lat_rate": None,
        "daemon_rss_mb": [60.0, 40.0, 41.0],
        "foreign_cpu_pct": 5.0,
        "protocol": {},
        "placement": "loopback",
        "ts": "2026-11-23T12:00:00+0000",
    }
    base.update(kw)
    return base


def lat_records() -> list[dict[str, Any]]:
    """groupcomm keeps up to 5,000 msg/s and fails at 10,000; zmq keeps up everywhere."""
    out = [
        rec("lat", "groupcomm", lat_rate=1000, p50_us=2000, deliver_rate_min=1000),
        rec("lat", "groupcomm", lat_rate=5000, p50_us=4000, deliver_rate_min=4990),
        rec("lat", "groupcomm", lat_rate=10_000, p50_us=9e5, deliver_rate_min=7000, ok=False),
    ]
    for rate in (1000, 5000, 10_000):
        out.append(rec("lat", "zmq", lat_rate=rate, p50_us=150, deliver_rate_min=rate))
    return out
