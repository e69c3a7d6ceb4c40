"""Synthetic lines of the peer kit's runs.jsonl (``/work/shared/peers/bench.py``), modelled on
real corosync CPG latency runs (3 members in namespaces, 100 B, --lat-rate 1000)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def peer_line(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "label": "cpg-3node-knet",
        "peer": "cpg",
        "mode": "all",
        "kind": "lat",
        "size": 100,
        "run": 0,
        "ok": True,
        "rc": {"0": 0, "1": 0, "2": 0},
        "rundir": "/nonexistent/raw/cpg-3node-knet_all_lat_100_r0_1796461953",
        "load1_before": 0.5,
        "ts": "2026-12-05T09:12:43",
        "transport": "tcp",
        "enc": "raw",
        "batch": 1,
        "window": 0,
        "pipeline": 1,
        "nodes": "ns",
        "service": "agreed",
        "fc": "ack",
        "tput_min": 1000,
        "tput_mean": 1000,
        "recv_totals": [7002, 7002, 7002],
        "sent_total": 7002,
        "send_rate_total": 999.999,
        "loss_max": 0.0,
        "order_same": True,
        "lat_n": 18000,
        "lat_p50_us": 252.515,
        "lat_p90_us": 384.2,
        "lat_p99_us": 905.36,
        "lat_p999_us": 1422.9,
        "lat_max_us": 2112.1,
        "members_seen": [3, 3, 3, 3, 3, 3],
        "daemon_cpu_pct": [34.3, 34.3, 34.2],
        "run_cpu_pct": 107.0,
        "foreign_cpu_pct": 0.3,
        "foreign_top": [[0.2, "process_api"]],
    }
    base.update(kw)
    return base


def cpg_lines() -> list[dict[str, Any]]:
    """CPG keeps up at 1,000 and 5,000 msg/s (one 5,000 run lost messages) and not at 20,000;
    plus lines the sweep must ignore (throughput, mode one, 1000 B)."""
    out = [
        peer_line(run=0, lat_p50_us=250.0, lat_p99_us=900.0),
        peer_line(run=1, lat_p50_us=460.0, lat_p99_us=4700.0, send_rate_total=1000.166),
        peer_line(run=2, lat_p50_us=290.0, lat_p99_us=3600.0),
    ]
    for run, loss in enumerate((0.0, 0.0, 0.002)):
        out.append(
            peer_line(
                run=run,
                send_rate_total=4999.9,
                tput_min=4990.0 if loss else 5000.0,
                loss_max=loss,
                lat_p50_us=400.0 + 100 * run,
                lat_p99_us=2000.0,
            )
        )
    # 20,000 offered, the senders fall behind (CS_ERR_TRY_AGAIN) and manage 15,000: the rate
    # as a kit that records it would (test_peerkit also finds it in the raw results)
    out.append(peer_line(send_rate_total=15_000.0, tput_min=15_000.0, lat_p50_us=9e4, lat_rate=2e4))
    out += [
        peer_line(kind="tput", tput_min=60_000, send_rate_total=60_000, lat_p50_us=None),
        peer_line(mode="one", rc={"0": 0, "1": 0, "2": 0, "3": 0}),
        peer_line(size=1000, lat_p50_us=700.0),
    ]
    return out


def write_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path
