"""Member results + process samples -> one run record (the JSON line of ``groupcomm bench``).

Here the workload's definitions become numbers: throughput is the *slowest* receiver's delivered
msg/s in the window; loss is counted against what the senders say they sent, after the drain;
latency is pooled over receivers, and its p50 also given per path (sender's daemon to
receiver's); order is compared on the common stretch (``stats``). Client CPU per message
divides a member's CPU in the window by the messages it sent plus those it delivered in the
window. A run is ``ok`` when every member finished, nothing was lost (except for UNRELIABLE),
and the order was the same where the service promises it (AGREED, SAFE).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from groupcomm import compiled
from groupcomm.benchmark.stats import (
    check_stream,
    compare_orders,
    latency_summary,
    loss,
    percentile,
    rate,
)
from groupcomm.benchmark.wirecost import WireSample, no_wire_cost, originated_by_host, wire_cost
from groupcomm.benchmark.workload import MemberSpec, Workload

ORDERED_SERVICES = ("agreed", "safe")


@dataclass
class RunInputs:
    """What the runner collected for one run."""

    system: str  # "groupcomm" or "zmq"
    work: Workload
    run: int
    results: dict[int, dict[str, Any]]  # member id -> its result JSON (missing: no file)
    keys: dict[int, array[int]]  # receiver id -> delivery order
    exit_codes: dict[int, int | None]  # member id -> exit status (None: killed)
    member_cpu_pct: dict[int, float | None] = field(default_factory=dict)
    daemon_cpu_pct: list[float | None] = field(default_factory=list)
    daemon_rss_mb: list[float] = field(default_factory=list)
    member_rss_mb: dict[int, float] = field(default_factory=dict)  # member id -> peak RSS MiB
    foreign_cpu_pct: float = 0.0
    foreign_top: list[tuple[str, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # found by the runner
    placement: str = "loopback"
    wire: tuple[WireSample, WireSample] | None = None  # traffic counters at w0, w1 (LAN only)
    hosts: tuple[str, ...] = ()  # names of the hosts/daemons, in node order (wire figures)
    transport: str = "tcp"  # the daemons' data plane (the baseline: its own TCP)
    daemon_trace: bool = False  # the daemons wrote their per-message trace
    protocol: dict[str, int] = field(default_factory=dict)  # [protocol] overrides
    sequencer: str | None = None  # the view's coordinator, which ordered the run's messages


def _r(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


def client_cpu(
    work: Workload, results: Mapping[int, Mapping[str, Any]], cpu: Mapping[int, float | None]
) -> dict[str, float | None]:
    """Client CPU microseconds per message: per member, and averaged by role."""
    per_member: dict[int, float] = {}
    for mid, res in results.items():
        pct = cpu.get(mid)
        msgs = int(res.get("sent_win", 0)) + int(res.get("received_win", 0))
        if pct is not None and msgs:
            per_member[mid] = pct / 100.0 * work.window_s / msgs * 1e6
    senders = [v for m, v in per_member.items() if results[m]["send"] and not results[m]["recv"]]
    receivers = [v for m, v in per_member.items() if results[m]["recv"] and not results[m]["send"]]
    both = [v for m, v in per_member.items() if results[m]["send"] and results[m]["recv"]]

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 2) if xs else None

    return {
        "client_us_per_msg": mean(list(per_member.values())),
        "client_us_per_sent": mean(senders),
        "client_us_per_recv": mean(receivers),
        "client_us_per_msg_io": mean(both),
    }


def latency_by_path(
    specs: list[MemberSpec], recv_res: dict[int, dict[str, Any]]
) -> dict[str, float]:
    """p50 latency (us) per path ``"d<sender's daemon>>d<receiver's daemon>"``: where the time
    goes depends on the hops, e.g. whether the sender's daemon is the sequencer."""
    node = {s.id: s.node for s in specs}
    by_path: dict[str, list[int]] = {}
    for receiver, res in recv_res.items():
        to = f"d{node[receiver] + 1}"
        for lat, src in zip(res.get("lat_ns", []), res.get("lat_src", []), strict=False):
            if src in node:
                by_path.setdefault(f"d{node[src] + 1}>{to}", []).append(lat)
    return {
        path: round(percentile(sorted(xs), 0.5) / 1e3, 1) for path, xs in sorted(by_path.items())
    }


def summarize(inp: RunInputs) -> dict[str, Any]:
    work = inp.work
    problems = list(inp.problems)
    specs = work.members()
    for spec in specs:
        res = inp.results.get(spec.id)
        code = inp.exit_codes.get(spec.id)
        if res is None:
            problems.append(f"member {spec.id}: no result (exit {code})")
        elif res.get("err"):
            problems.append(f"member {spec.id}: {res['err']}")
        elif code != 0:
            problems.append(f"member {spec.id}: exit status {code}")
    receivers = [s.id for s in specs if s.recv]
    senders = [s.id for s in specs if s.send]
    recv_res = {m: inp.results[m] for m in receivers if m in inp.results}
    send_res = {m: inp.results[m] for m in senders if m in inp.results}
    window = work.window_s
    rates = [
        rate(int(recv_res[m]["received_win"]) if m in recv_res else 0, window) for m in receivers
    ]
    sent_total = sum(int(r["sent"]) for r in send_res.values())
    sent_win = sum(int(r["sent_win"]) for r in send_res.values())
    checks = {m: check_stream(inp.keys[m]) for m in receivers if m in inp.keys}
    losses = [loss(sent_total, checks[m].unique) if m in checks else 1.0 for m in receivers]
    worst_loss = max(losses) if losses else 0.0
    order = compare_orders([inp.keys[m] for m in receivers if m in inp.keys])
    lat: list[int] = []
    for r in recv_res.values():
        lat.extend(r.get("lat_ns", []))
    views = sum(int(r.get("views_during_run", 0)) for r in inp.results.values())
    ordered = inp.system == "groupcomm"
    if worst_loss > 0 and not (inp.system == "groupcomm" and work.service == "unreliable"):
        problems.append(f"loss {worst_loss:.6f}")
    if ordered and work.service in ORDERED_SERVICES and not order.same:
        problems.append("receivers delivered different orders")
    if views:
        problems.append(f"{views} membership changes during the run")
    rate_min = min(rates) if rates else 0.0
    record: dict[str, Any] = {
        "system": inp.system,
        "mode": work.mode,
        "kind": work.kind,
        "size": work.size,
        "service": work.service if ordered else "none",
        "daemons": work.daemons if ordered else 0,
        "members": len(specs),
        "placement": inp.placement,
        "transport": inp.transport,
        "batch": work.send_batch(inp.system),
        "member_gc": work.member_gc,
        "run": inp.run,
        "ok": not problems,
        "problems": problems,
        "deliver_rate_min": round(rate_min, 1),
        "deliver_rate_mean": round(sum(rates) / len(rates), 1) if rates else 0.0,
        "deliver_rates": [round(x, 1) for x in rates],
        "mbytes_per_s": round(rate_min * work.size / 1e6, 3),
        "mbytes_per_s_sum": round(sum(rates) * work.size / 1e6, 3),
        "send_rate": round(rate(sent_win, window), 1),
        "sent_total": sent_total,
        "loss": round(worst_loss, 6),
        "duplicates": sum(c.duplicates for c in checks.values()),
        "fifo_violations": sum(c.fifo_violations for c in checks.values()),
        "order_same": order.same if ordered else None,
        "order_identical": order.identical,
        "order_common": order.common,
        **latency_summary(lat),
        "p50_us_by_path": latency_by_path(specs, recv_res),
        "sequencer": inp.sequencer,
        "daemon_cpu_pct": [_r(x) for x in inp.daemon_cpu_pct],
        "daemon_rss_mb": inp.daemon_rss_mb,
        "member_rss_mb": {str(k): v for k, v in sorted(inp.member_rss_mb.items())},
        "member_cpu_pct": {str(k): _r(v) for k, v in sorted(inp.member_cpu_pct.items())},
        **client_cpu(work, inp.results, inp.member_cpu_pct),
        "run_cpu_pct": _r(
            sum(x for x in (*inp.daemon_cpu_pct, *inp.member_cpu_pct.values()) if x is not None)
        ),
        "foreign_cpu_pct": _r(inp.foreign_cpu_pct),
        "foreign_top": inp.foreign_top,
        **_wire(inp, send_res, recv_res),
        "daemon_trace": inp.daemon_trace,
        "protocol": inp.protocol,
        "views_during_run": views,
        "ready_s_max": _r(
            max((float(r.get("ready_s", 0)) for r in inp.results.values()), default=0), 2
        ),
        "dur": work.dur,
        "warm": work.warm,
        "lat_rate": work.lat_rate if work.kind == "lat" else None,
        "stagger": work.stagger,
        # the daemons' build: the same checkout and environment as this process
        "compiled": compiled.active() if inp.system == "groupcomm" else None,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return record


def _wire(
    inp: RunInputs,
    send_res: Mapping[int, Mapping[str, Any]],
    recv_res: Mapping[int, Mapping[str, Any]],
) -> dict[str, Any]:
    """Bytes on the wire per message (``wirecost``): per host by the messages its members
    originated in the window, in total by the messages the group delivered in the window (the
    mean over receivers: a message delivered to every receiver counts once)."""
    work = inp.work
    if inp.wire is None or len(inp.hosts) != work.daemons:
        return no_wire_cost()
    nodes = {m.id: m.node for m in work.members() if m.send}
    sent = {m: int(r.get("sent_win", 0)) for m, r in send_res.items()}
    originated = originated_by_host(nodes, sent, work.daemons)
    got = [int(r.get("received_win", 0)) for r in recv_res.values()]
    delivered = sum(got) / len(got) if got else 0.0
    return wire_cost(*inp.wire, inp.hosts, originated, delivered, work.window_s)
