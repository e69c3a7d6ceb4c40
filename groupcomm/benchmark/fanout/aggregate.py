"""From what the publishers and consumers of one run wrote to one record: the slowest
consumer's rate, pooled latency, loss, CPU, and for a catch-up run what the away consumer did.

Pure (no I/O, no clocks), so every rule is unit-tested on hand-made results:

- **rate**: lines a consumer delivered inside the window ``[start + warm, start + dur)``, per
  second; ``deliver_rate_min`` is the slowest consumer's, the figure of a fan-out (every
  consumer must get every line, so the slowest one is what the feed sustains).
- **latency**: deliver time minus send time for lines *sent* in the window, every such line of
  every consumer, pooled (merged histograms, ``histogram``).
- **loss**: per consumer, the share of the lines the publishers sent that it never delivered
  (by the end of the drain); ``loss`` is the worst consumer's.
- **CPU**: ``server_us_per_line`` is the servers' (all daemons', or redis-server's) CPU time
  per line fanned out to every consumer (the mean consumer's lines delivered in the window);
  ``consumer_us_per_line`` the consumers' CPU per line each delivered; ``job_cpu_pct`` what the
  servers, publishers and consumers used together, in % of one CPU (the machine has 200).
- a consumer that went away (``catchup``) is left out of all three; its figures are the
  record's ``catchup``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from groupcomm.benchmark.fanout.histogram import LatencyHistogram
from groupcomm.benchmark.fanout.plan import FanoutConfig


@dataclass
class RunData:
    system: str
    service: str  # groupcomm's service; "" for Redis
    cfg: FanoutConfig
    publishers: list[dict[str, Any]]  # result files (tally.PublisherResult.to_json)
    consumers: list[dict[str, Any]]  # result files (tally.ConsumerResult.to_json)
    placement: str = "netns"
    frame_bytes: float = 0.0
    cpu_pct: Mapping[str, float | None] = field(default_factory=dict)  # label -> % of one CPU
    server_labels: Sequence[str] = ()  # the labels of the daemons (or of redis-server)
    foreign_cpu_pct: float | None = None
    foreign_top: Sequence[tuple[str, float]] = ()
    server_rss_mb: Sequence[float] = ()
    problems: list[str] = field(default_factory=list)
    ts: str = ""


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def expected_lines(publishers: Sequence[Mapping[str, Any]]) -> int:
    return sum(int(p.get("sent", 0)) for p in publishers)


def consumer_loss(consumer: Mapping[str, Any], expected: int) -> float:
    """Share of ``expected`` lines this consumer never delivered (0 when nothing was sent)."""
    if expected <= 0:
        return 0.0
    return max(0, expected - int(consumer.get("unique", 0))) / expected


def pooled_histogram(consumers: Sequence[Mapping[str, Any]]) -> LatencyHistogram:
    total = LatencyHistogram()
    for c in consumers:
        if c.get("hist"):
            total.merge(LatencyHistogram.from_json(c["hist"]))
    return total


def latency_fields(hist: LatencyHistogram) -> dict[str, float | int | None]:
    def ms(q: float) -> float | None:
        us = hist.quantile_us(q)
        return None if us is None else round(us / 1000, 3)

    return {
        "lat_n": hist.n,
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": ms(1.0),
    }


def catchup_fields(consumer: Mapping[str, Any], expected: int) -> dict[str, Any]:
    """What the away consumer did: how long it was away, how many lines it read from its
    resume until it was caught up (the first line it got at most ``caught_up_ms`` after it was
    sent), how long that took, and whether it got every line (gaps, duplicates, loss)."""
    c = consumer.get("catchup") or {}
    left, resumed, caught = c.get("left_ns", 0), c.get("resumed_ns", 0), c.get("caught_up_ns", 0)
    catchup_s = (caught - resumed) / 1e9 if caught and resumed else None
    backlog = c.get("backlog", 0) if caught else None
    return {
        "consumer": consumer.get("id"),
        "node": consumer.get("node"),
        "position": c.get("position"),
        "away_s": _r((resumed - left) / 1e9, 2) if left and resumed else None,
        "caught_up_ms": _r(c.get("lag_ns", 0) / 1e6),
        "caught_up": bool(caught),
        "catchup_s": _r(catchup_s, 3),
        "backlog_lines": backlog,
        "catchup_lines_per_s": (
            round(backlog / catchup_s) if backlog and catchup_s and catchup_s > 0 else None
        ),
        "gaps": consumer.get("gaps", 0),
        "duplicates": consumer.get("duplicates", 0),
        "loss": _r(consumer_loss(consumer, expected), 6),
        "err": consumer.get("err"),
    }


def _sum(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def summarize(data: RunData) -> dict[str, Any]:
    cfg = data.cfg
    win = cfg.window_s
    problems = list(data.problems)
    away = [c for c in data.consumers if c.get("catchup") is not None]
    live = [c for c in data.consumers if c.get("catchup") is None]
    expected = expected_lines(data.publishers)
    for doc in [*data.publishers, *data.consumers]:
        if doc.get("err"):
            problems.append(f"{doc['role']} {doc['id']}: {doc['err']}")
    missing = cfg.consumers - len(data.consumers)
    if missing > 0:
        problems.append(f"{missing} consumer(s) wrote no result")
    if cfg.publishers - len(data.publishers) > 0:
        problems.append(f"{cfg.publishers - len(data.publishers)} publisher(s) wrote no result")
    rates = [c.get("in_window", 0) / win for c in live]
    slowest = min(range(len(live)), key=lambda i: rates[i]) if live else None
    losses = [consumer_loss(c, expected) for c in live]
    loss = max(losses, default=None)
    if loss:
        problems.append(f"loss: the worst consumer missed {loss:.2%} of the lines")
    views = sum(int(c.get("views_during_run", 0)) for c in data.consumers)
    if views:
        problems.append(f"{views} membership change(s) (NETWORK views) during the run")
    delivered_win = sum(c.get("in_window", 0) for c in live)
    consumer_cpu = _sum([data.cpu_pct.get(f"c{c['id']}") for c in live])
    server_cpu = _sum([data.cpu_pct.get(label) for label in data.server_labels])
    publisher_cpu = _sum([data.cpu_pct.get(f"p{p['id']}") for p in data.publishers])
    fanned_out = delivered_win / len(live) if live else 0  # lines, each to every consumer
    record: dict[str, Any] = {
        "part": "catchup" if away else "fanout",
        "system": data.system,
        "service": data.service or None,
        "mode": "flood" if cfg.flood else "paced",
        "offered_rate": None if cfg.flood else cfg.rate,
        "publishers": cfg.publishers,
        "consumers": cfg.consumers,
        "daemons": cfg.daemons if data.system == "groupcomm" else None,
        "placement": data.placement,
        "dur": cfg.dur,
        "warm": cfg.warm,
        "seed": cfg.seed,
        "frame_bytes": _r(data.frame_bytes),
        "send_rate": round(sum(p.get("in_window", 0) for p in data.publishers) / win),
        "sent_total": expected,
        "deliver_rate_min": round(rates[slowest]) if slowest is not None else None,
        "deliver_rate_mean": round(sum(rates) / len(rates)) if rates else None,
        "deliver_rate_max": round(max(rates)) if rates else None,
        "slowest_consumer": (
            {"id": live[slowest]["id"], "node": live[slowest]["node"]}
            if slowest is not None
            else None
        ),
        "loss": _r(loss, 6),
        "gaps": sum(int(c.get("gaps", 0)) for c in live),
        "duplicates": sum(int(c.get("duplicates", 0)) for c in live),
        **latency_fields(pooled_histogram(live)),
        "p99_ms_by_node": {
            f"h{node + 1}": latency_fields(
                pooled_histogram([c for c in live if c.get("node") == node])
            )["p99_ms"]
            for node in sorted({int(c.get("node", 0)) for c in live})
        },
        "server_cpu_pct": [_r(data.cpu_pct.get(label)) for label in data.server_labels],
        "server_us_per_line": (
            _r(server_cpu / 100 * win / fanned_out * 1e6, 1)
            if server_cpu is not None and fanned_out
            else None
        ),
        "publishers_cpu_pct": _r(publisher_cpu),
        "consumers_cpu_pct": _r(consumer_cpu),
        "job_cpu_pct": _r(_sum([server_cpu, publisher_cpu, consumer_cpu])),
        "consumer_us_per_line": (
            _r(consumer_cpu / 100 * win / delivered_win * 1e6, 2)
            if consumer_cpu is not None and delivered_win
            else None
        ),
        "foreign_cpu_pct": _r(data.foreign_cpu_pct),
        "foreign_top": [list(t) for t in data.foreign_top],
        "server_rss_mb": list(data.server_rss_mb),
        "ts": data.ts,
    }
    if away:
        record["catchup"] = catchup_fields(away[0], expected)
        if not record["catchup"]["caught_up"]:
            problems.append("the away consumer never caught up")
    record["ok"] = not problems
    record["problems"] = problems
    return record


def skipped(system: str, part: str, reason: str, ts: str = "") -> dict[str, Any]:
    """The record of a part that could not run here (e.g. no replay API yet)."""
    return {"part": part, "system": system, "skipped": reason, "ok": None, "ts": ts}
