"""The stall probe: how much a session that never reads costs the cluster's throughput.

    python -m groupcomm.benchmark.stallprobe [--dur 15] [--every 3] [--runs 2] [--size 100]
        [--set slow_consumer_ms=250 ...]

Starts a 3-daemon ``LocalCluster`` (no trace), one flooding sender and one reading member of
group ``g`` per daemon (asyncio clients in this process), and alternates two kinds of run of
``--dur`` seconds each: *clean*, and *stall*, in which a raw socket opens a session at one of the
daemons every ``--every`` seconds (round robin), joins ``g`` and never reads a byte. It prints
the messages per second the readers received in each run, the ratio stall/clean and the longest
gap between two deliveries at any reader (how long the cluster stood still), one JSON object
per run and a summary line. ``--set KEY=VALUE`` adds ``[daemon]`` keys (e.g. ``slow_consumer_ms``
and ``slow_consumer_bytes``, ``docs/operations.md``).

The issue's bar (issue 13): with one such session every 3 s the throughput stays within 80 %
of the clean run. Figures are in ``docs/performance.md`` "A session that never reads".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from groupcomm.client.connection import Connection, ConnectionClosed, connect, query_status
from groupcomm.client.events import Message, RegularView
from groupcomm.localcluster import LocalCluster
from groupcomm.wire.client import Hello, JoinReq, encode
from groupcomm.wire.stream import parse_endpoint, record

NAMES = ("d1", "d2", "d3")
GROUP = "g"
BATCH = 64  # payloads per multicast_many call


class Reader:
    """A member of ``GROUP`` counting what it receives and the longest gap between two
    deliveries once ``armed``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.count = 0
        self.armed_at: float | None = None
        self.last = 0.0
        self.gap_max = 0.0

    def arm(self) -> None:
        self.count, self.gap_max = 0, 0.0
        self.armed_at = self.last = time.monotonic()

    async def run(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                events = await self.conn.receive_many()
                now = time.monotonic()
                n = sum(1 for e in events if type(e) is Message)
                if n and self.armed_at is not None:
                    self.gap_max = max(self.gap_max, now - self.last)
                    self.last = now
                    self.count += n


async def flood(conn: Connection, size: int) -> None:
    payloads = [bytes(size)] * BATCH
    with contextlib.suppress(ConnectionClosed):
        while True:
            await conn.multicast_many(GROUP, payloads)


def never_reading_session(endpoint: str, n: int) -> socket.socket:
    """Open a session, join ``GROUP``, and read nothing, ever."""
    kind, address = parse_endpoint(endpoint)
    sock = socket.socket(socket.AF_UNIX if kind == "unix" else socket.AF_INET, socket.SOCK_STREAM)
    sock.connect(address)
    sock.sendall(record(encode(Hello(f"stall{n}", True))) + record(encode(JoinReq(1, GROUP))))
    return sock


async def one_run(
    cluster: LocalCluster, readers: list[Reader], dur: float, every: float | None, serial: int
) -> dict[str, object]:
    for r in readers:
        r.arm()
    start = time.monotonic()
    stalls: list[socket.socket] = []
    opened = 0
    try:
        while (left := start + dur - time.monotonic()) > 0:
            if every is None:
                await asyncio.sleep(left)
                continue
            name = NAMES[opened % len(NAMES)]
            stalls.append(never_reading_session(cluster.endpoints[name], serial * 1000 + opened))
            opened += 1
            await asyncio.sleep(min(every, left))
    finally:
        for sock in stalls:
            sock.close()
    took = time.monotonic() - start
    for r in readers:
        r.gap_max = max(r.gap_max, time.monotonic() - r.last)
    return {
        "kind": "clean" if every is None else "stall",
        "msgs_per_s": round(sum(r.count for r in readers) / took / len(readers)),
        "gap_max_s": round(max(r.gap_max for r in readers), 3),
        "never_reading_sessions": opened,
        "readers_closed": sum(1 for r in readers if r.conn.closed),  # should stay 0
    }


async def probe(args: argparse.Namespace, cluster: LocalCluster) -> list[dict[str, object]]:
    for _ in range(200):
        try:
            infos = [await query_status(cluster.endpoints[n], 0.5) for n in NAMES]
            if all(len(i.get("members", [])) == len(NAMES) for i in infos):  # type: ignore[arg-type]
                break
        except Exception:
            pass
        await asyncio.sleep(0.1)
    readers = [Reader(await connect(cluster.endpoints[n], f"r{n}").open()) for n in NAMES]
    for r in readers:
        await r.conn.join(GROUP)
    for r in readers:
        while not (isinstance(e := await r.conn.receive(10), RegularView) and len(e.members) == 3):
            pass
    senders = [await connect(cluster.endpoints[n], f"s{n}").open() for n in NAMES]
    tasks = [asyncio.create_task(r.run()) for r in readers]
    tasks += [asyncio.create_task(flood(s, args.size)) for s in senders]
    await asyncio.sleep(args.warm)
    results: list[dict[str, object]] = []
    try:
        for i in range(args.runs):
            for every in (None, args.every):
                result = await one_run(cluster, readers, args.dur, every, i)
                print(json.dumps(result), flush=True)
                results.append(result)
                await asyncio.sleep(args.settle)
    finally:
        for t in tasks:
            t.cancel()
        for c in [*senders, *(r.conn for r in readers)]:
            with contextlib.suppress(Exception):
                await c.close()
    return results


def parse_set(items: Sequence[str]) -> dict[str, int | bool | str]:
    out: dict[str, int | bool | str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = int(value) if value.isdigit() else value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m groupcomm.benchmark.stallprobe", description=None)
    ap.add_argument("--dur", type=float, default=15.0, help="seconds per run (15)")
    ap.add_argument("--every", type=float, default=3.0, help="a never-reading session every S s")
    ap.add_argument("--runs", type=int, default=2, help="clean/stall pairs (2)")
    ap.add_argument("--size", type=int, default=100, help="payload bytes (100)")
    ap.add_argument("--warm", type=float, default=2.0, help="flood before the first run (2)")
    ap.add_argument("--settle", type=float, default=2.0, help="pause between runs (2)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stallprobe-") as workdir:
        cluster = LocalCluster(Path(workdir), NAMES, daemon=parse_set(args.set), trace=False)
        cluster.start()
        try:
            results = asyncio.run(probe(args, cluster))
        finally:
            cluster.stop()
    clean = [float(r["msgs_per_s"]) for r in results if r["kind"] == "clean"]  # type: ignore[arg-type]
    stall = [float(r["msgs_per_s"]) for r in results if r["kind"] == "stall"]  # type: ignore[arg-type]
    gaps = [float(r["gap_max_s"]) for r in results if r["kind"] == "stall"]  # type: ignore[arg-type]
    if clean and stall:
        ratio = statistics.median(stall) / statistics.median(clean)
        print(
            f"clean {statistics.median(clean):.0f} msg/s, with a never-reading session every "
            f"{args.every:g} s {statistics.median(stall):.0f} msg/s: {ratio:.0%} "
            f"(longest stall {max(gaps):.2f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
