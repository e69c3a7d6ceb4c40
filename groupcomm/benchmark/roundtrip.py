"""Where light-load latency goes: one client's round trip through its daemon, by idle gap.

    python -m groupcomm.benchmark.roundtrip [--daemons 1] [--gaps 0,0.5,2,10] [--count 400]
                                            [--service agreed] [--client asyncio|raw]
                                            [--awake] [--json]

Starts ``--daemons`` daemons on loopback (``LocalCluster``, no trace), opens one client on d1,
joins a group only that client is in, and times ``--count`` round trips per gap: multicast one
100-byte message, wait for its delivery, sleep the gap (ms), again. The client is the asyncio
library (``--client asyncio``, the default) or a blocking plain-socket client speaking the same
protocol with the project's codec (``--client raw``): the difference is what the library and
asyncio add to a round trip. With gap 0 the processes never sleep long; with a gap of a few ms both
the client and the daemon sleep in ``epoll_wait`` between messages, as at 1,000 msg/s, and each hop
then also pays for waking a sleeping process (and, in a virtual machine, its halted vCPU).
``--awake`` runs one ``SCHED_IDLE`` spinner per CPU for the duration, which keeps the CPUs from
idling without taking time from anything else: the difference it makes is the cost of waking idle
CPUs. A diagnostic for ``docs/performance.md`` ("Where light-load latency goes"), not a throughput
figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from groupcomm.benchmark.stats import percentile
from groupcomm.client.connection import Connection
from groupcomm.client.events import Message
from groupcomm.core.service import Service
from groupcomm.localcluster import LocalCluster, die_with_parent
from groupcomm.wire.client import (
    Consumed,
    Hello,
    JoinReq,
    McastReq,
    Msgs,
    Reply,
    ViewMsg,
    Views,
    decode_reply,
    encode,
)
from groupcomm.wire.stream import RecordReader, parse_endpoint, record

GROUP = "roundtrip"
SIZE = 100  # bytes per message, as the bench's latency runs
ROUND_TRIP_TIMEOUT_S = 10.0  # a message not back by then: TimeoutError, not a hang
_numbers = itertools.count()


async def _round_trips(conn: Connection, gap_ms: float, count: int, service: Service) -> list[int]:
    """Microseconds from ``multicast`` to the delivery of the same message, ``count`` times."""
    took: list[int] = []
    for _ in range(count):
        mine = next(_numbers).to_bytes(8, "big")
        start = time.perf_counter_ns()
        await conn.multicast(GROUP, mine.ljust(SIZE, b"r"), service)
        while True:
            event = await conn.receive(timeout=ROUND_TRIP_TIMEOUT_S)
            if isinstance(event, Message) and event.payload[:8] == mine:
                break
        took.append((time.perf_counter_ns() - start) // 1000)
        if gap_ms > 0:
            await asyncio.sleep(gap_ms / 1000)
        else:
            await asyncio.sleep(0)
    return took


class RawClient:
    """A blocking plain-socket client of the native protocol (``protocol/client.md``): no
    asyncio, no client library, the project's codec. Reports what it consumed after every
    delivery, so the daemon never holds it as a slow consumer."""

    def __init__(self, endpoint: str) -> None:
        kind, path = parse_endpoint(endpoint)
        if kind != "unix":
            raise ValueError(f"{endpoint}: --client raw speaks to an ipc:// endpoint only")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(ROUND_TRIP_TIMEOUT_S)
        self.sock.connect(path)
        self.reader = RecordReader(1 << 26)
        self.replies: list[Reply] = []
        self.req = 0

    def send(self, request: McastReq | Hello | JoinReq | Consumed) -> None:
        self.sock.sendall(record(encode(request)))

    def next_reply(self) -> Reply:
        while not self.replies:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the daemon closed the connection")
            self.replies.extend(decode_reply(r) for r in self.reader.feed(data))
        return self.replies.pop(0)

    def open(self) -> None:
        self.send(Hello("rt", True))
        self.send(JoinReq(1, GROUP))
        while not isinstance(self.next_reply(), ViewMsg | Views):  # the join's view
            pass

    def round_trips(self, gap_ms: float, count: int, service: Service) -> list[int]:
        took: list[int] = []
        for _ in range(count):
            mine = next(_numbers).to_bytes(8, "big")
            payload = mine.ljust(SIZE, b"r")
            self.req += 1
            start = time.perf_counter_ns()
            self.send(McastReq(self.req, (GROUP,), int(service), 0, payload))
            back = False
            while not back:
                reply = self.next_reply()
                if isinstance(reply, Msgs):
                    back = any(m[4][:8] == mine for m in reply.msgs)
                    self.send(Consumed(sum(len(m[4]) for m in reply.msgs)))
            took.append((time.perf_counter_ns() - start) // 1000)
            if gap_ms > 0:
                time.sleep(gap_ms / 1000)
        return took

    def close(self) -> None:
        self.sock.close()


async def measure(
    daemons: int,
    gaps: Sequence[float],
    count: int,
    service: Service,
    workdir: Path,
    client: str = "asyncio",
) -> dict[float, list[int]]:
    cluster = LocalCluster(workdir, names=tuple(f"d{i + 1}" for i in range(daemons)), trace=False)
    cluster.start()
    try:
        await cluster.wait_settled(30)
        if client == "raw":
            raw = RawClient(cluster.endpoints["d1"])
            try:
                raw.open()
                results = {}
                for gap in gaps:
                    raw.round_trips(gap, count // 10, service)  # warm-up, not counted
                    results[gap] = raw.round_trips(gap, count, service)
                return results
            finally:
                raw.close()
        conn = Connection(cluster.endpoints["d1"], name="rt", timeout=30)
        await conn.open()
        try:
            await conn.join(GROUP)
            results = {}
            for gap in gaps:
                await _round_trips(conn, gap, count // 10, service)  # warm-up, not counted
                results[gap] = await _round_trips(conn, gap, count, service)
            return results
        finally:
            await conn.close()
    finally:
        cluster.stop()


@contextlib.contextmanager
def idle_spinners(enabled: bool) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One busy loop per CPU at ``SCHED_IDLE`` (none unless ``enabled``): runs only when a CPU
    would otherwise idle. Yields the processes; they are gone after the block."""
    spinners: list[subprocess.Popen[bytes]] = []
    if enabled:
        code = (
            "import os; os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile 1: pass"
        )
        # They die with us even if we are killed (SIGKILL skips the finally below).
        spinners = [
            subprocess.Popen([sys.executable, "-c", code], preexec_fn=die_with_parent)
            for _ in range(os.cpu_count() or 1)
        ]
    try:
        yield spinners
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _gaps(text: str) -> list[float]:
    try:
        gaps = [float(g) for g in text.split(",") if g.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected gaps in ms like 0,0.5,2,10, got {text!r}"
        ) from None
    if not gaps or any(not math.isfinite(g) or g < 0 for g in gaps):
        raise argparse.ArgumentTypeError("gaps must be one or more non-negative numbers of ms")
    if len(set(gaps)) != len(gaps):
        raise argparse.ArgumentTypeError(f"each gap once, got {text!r}")
    return gaps


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m groupcomm.benchmark.roundtrip",
        description="One client's round trip through its daemon at light load, by idle gap.",
    )
    ap.add_argument("--daemons", type=int, default=1, help="daemons in the cluster (1)")
    ap.add_argument(
        "--gaps", type=_gaps, default=[0.0, 0.5, 2.0, 10.0], help="idle gaps in ms (0,0.5,2,10)"
    )
    ap.add_argument("--count", type=int, default=400, help="round trips per gap (400)")
    ap.add_argument(
        "--service",
        choices=[s.name.lower() for s in Service],
        default="agreed",
        help="service level (agreed)",
    )
    ap.add_argument(
        "--client",
        choices=("asyncio", "raw"),
        default="asyncio",
        help="asyncio: the client library (default); raw: a blocking plain-socket client of "
        "the same protocol, to see what the library adds",
    )
    ap.add_argument(
        "--awake",
        action="store_true",
        help="keep every CPU from idling with SCHED_IDLE spinners (diagnostic)",
    )
    ap.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    args = ap.parse_args(argv)
    if args.daemons < 1 or args.count < 10:
        ap.error("need --daemons >= 1 and --count >= 10")
    service = Service[args.service.upper()]
    with tempfile.TemporaryDirectory(prefix="gc-roundtrip-") as tmp, idle_spinners(args.awake):
        results = asyncio.run(
            measure(args.daemons, args.gaps, args.count, service, Path(tmp), args.client)
        )
    rows = {
        gap: {q: percentile(sorted(took), q / 100) for q in (10, 50, 90, 99)}
        for gap, took in results.items()
    }
    if args.json:
        doc = {"daemons": args.daemons, "client": args.client, "awake": args.awake, "us": rows}
        print(json.dumps(doc))
        return 0
    print(
        f"round trip through d1, {args.daemons} daemon(s), {args.service}, "
        f"{args.client} client, awake={args.awake}"
    )
    for gap, q in rows.items():
        print(
            f"  gap {gap:5.1f} ms: p10 {q[10]:6,.0f}  p50 {q[50]:6,.0f}  "
            f"p90 {q[90]:6,.0f}  p99 {q[99]:6,.0f} us"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
