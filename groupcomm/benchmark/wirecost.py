"""Bytes on the wire per message, per daemon host (``--netns`` only): pure arithmetic on two
samples of the namespace LAN's traffic counters, taken at the window's edges.

Why: the question "epgm vs the TCP mesh" is about copies. A daemon on the TCP mesh sends each of
its data frames once per peer (N - 1 copies); on epgm it multicasts one copy, and only acks,
heartbeats and repairs go point to point. Dividing what each host sent in the window by the
messages its members originated there shows it directly, split by protocol (``mcast`` = UDP to
a multicast group, i.e. epgm data; ``tcp``; ``udp`` = other UDP, e.g. PGM NAKs; ``other`` =
IGMP, ICMP). A host whose members originated nothing (in ``--mode one`` every host but the
sender's) sends only acks, heartbeats and repairs; its bytes are divided by the messages the
group delivered instead, and ``per`` says which denominator a host's figures use.

The counters are read by subprocesses, which takes a few tens of ms; each sample carries the
time of its middle, and the byte counts are scaled from the span between the two samples to the
window (``window_s / span``), a first-order correction that keeps the figures per message
honest when reading the counters is slow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROTOCOLS = ("mcast", "tcp", "udp", "other")  # the keys of HostBytes.out (groupcomm.netlan)


@dataclass(frozen=True, slots=True)
class HostBytes:
    """What one host had sent so far: link-layer bytes (its interface counter, ARP included)
    and IPv4 bytes by protocol (``PROTOCOLS``, IP headers included)."""

    link_tx: int
    out: Mapping[str, int]

    @property
    def out_total(self) -> int:
        return sum(self.out.get(p, 0) for p in PROTOCOLS)


@dataclass(frozen=True, slots=True)
class WireSample:
    """Every host's counters, read at about ``t`` (monotonic seconds)."""

    t: float
    hosts: tuple[HostBytes, ...]


def _per(x: float, n: float) -> float | None:
    return round(x / n, 1) if n > 0 else None


def wire_cost(
    first: WireSample,
    last: WireSample,
    names: Sequence[str],
    originated: Sequence[int],
    delivered: float,
    window_s: float,
) -> dict[str, Any]:
    """The record's wire fields from two samples. ``names[i]`` labels host ``i`` (the daemon's
    name), ``originated[i]`` is how many messages the members on host ``i`` sent in the window,
    ``delivered`` how many the group delivered in the window (a message delivered to every
    receiver counts once)."""
    span = last.t - first.t
    scale = window_s / span if span > 0 else 1.0
    per_daemon: dict[str, dict[str, Any]] = {}
    compact: list[float | None] = []
    link_total = out_total = 0.0
    sent_total = sum(originated)
    for name, a, b, sent in zip(names, first.hosts, last.hosts, originated, strict=True):
        out = {p: (b.out.get(p, 0) - a.out.get(p, 0)) * scale for p in PROTOCOLS}
        total = sum(out.values())
        link_total += (b.link_tx - a.link_tx) * scale
        out_total += total
        per, n = ("sent", sent) if sent > 0 else ("delivered", delivered)
        per_daemon[name] = {
            "per": per,
            "bytes_per_sent_msg": _per(total, sent),
            "bytes_per_delivered_msg": _per(total, delivered),
            **{p: _per(v, n) for p, v in out.items()},
            "out_bytes": round(total),
            "originated": sent,
        }
        compact.append(_per(total, n))
    return {
        "wire_bytes_per_msg": _per(link_total, sent_total),
        "wire_total_bytes_per_delivered_msg": _per(out_total, delivered),
        "wire_out_bytes_per_msg": compact,
        "wire_per_daemon": per_daemon,
        "wire_span_s": round(span, 3),
    }


def no_wire_cost() -> dict[str, Any]:
    """The wire fields of a run without a LAN (loopback) or without both samples."""
    return {
        "wire_bytes_per_msg": None,
        "wire_total_bytes_per_delivered_msg": None,
        "wire_out_bytes_per_msg": None,
        "wire_per_daemon": None,
        "wire_span_s": None,
    }


def originated_by_host(
    nodes: Mapping[int, int], sent_win: Mapping[int, int], hosts: int
) -> list[int]:
    """Messages originated in the window per host, from each member's node (``nodes``: member
    id -> host index) and its ``sent_win``."""
    out = [0] * hosts
    for mid, node in nodes.items():
        out[node] += int(sent_win.get(mid, 0))
    return out
