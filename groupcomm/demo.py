"""``groupcomm demo``: a live local cluster doing real work, narrated.

Starts 3 daemons as processes on loopback (ports picked free), connects one client per daemon,
joins group ``demo``, multicasts AGREED messages from all clients at once and shows that every
client delivered the same order; then cuts ``d3`` off with the admin fault-injection command,
shows the partitioned views and measures how long they took, heals, shows the merge, checks the
daemons' traces with the simulator's checkers and exits 0 with a summary. The harness marks the
trace ``stable`` right after the heal and ``end`` (the live daemons) once the merged view has
settled, so the liveness properties (L1-L3, SVC-REL) are judged too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from groupcomm.client import connect
from groupcomm.client.connection import Connection
from groupcomm.client.events import Message, RegularView, TransitionalView
from groupcomm.core.service import Service
from groupcomm.localcluster import LocalCluster

NAMES = ("d1", "d2", "d3")
GROUP = "demo"
Say = Callable[[str], None]


class Client:
    def __init__(self, daemon: str, conn: Connection, say: Say, started: float) -> None:
        self.daemon = daemon
        self.conn = conn
        self.say = say
        self.started = started
        self.delivered: list[str] = []
        self.views: list[tuple[float, str, tuple[str, ...]]] = []
        self.changed = asyncio.Event()

    async def pump(self) -> None:
        with contextlib.suppress(Exception):
            async for event in self.conn:
                now = time.monotonic() - self.started
                if isinstance(event, Message):
                    self.delivered.append(event.payload.decode())
                elif isinstance(event, RegularView):
                    self.views.append((now, event.cause, tuple(event.members)))
                    self.say(
                        f"  {now:6.2f} s  {self.conn.private_name:10s} == {event.cause} view "
                        f"{list(event.members)} vs_sets {[list(s) for s in event.vs_sets]}"
                    )
                elif isinstance(event, TransitionalView):
                    self.views.append((now, "TRANSITIONAL", ()))
                    self.say(f"  {now:6.2f} s  {self.conn.private_name:10s} == transitional view")
                self.changed.set()

    async def wait_for(self, test: Callable[[Client], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not test(self):
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.conn.private_name}: timed out")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)


def _members_are(names: set[str]) -> Callable[[Client], bool]:
    return lambda c: bool(c.views) and {m.rsplit("#", 1)[1] for m in c.views[-1][2]} == names


async def _connect_all(cluster: LocalCluster, say: Say, started: float) -> list[Client]:
    clients = []
    for name in NAMES:
        for _ in range(100):  # the daemon may still be starting
            try:
                conn = await connect(cluster.endpoints[name], name="app", timeout=0.5).open()
                break
            except Exception:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"could not connect to daemon {name}")
        clients.append(Client(name, conn, say, started))
    return clients


async def run(say: Say, workdir: Path, *, keys: bool = False) -> int:
    cluster = LocalCluster(workdir, NAMES, keys=keys)
    links = "TLS 1.3 between daemons, keys by groupcomm keygen" if keys else "open links"
    say(f"groupcomm demo: 3 daemons on loopback ({links}), one client each, group 'demo'")
    cluster.start()
    started = time.monotonic()
    clients = await _connect_all(cluster, say, started)
    pumps = [asyncio.create_task(c.pump()) for c in clients]
    try:
        return await _scenario(cluster, clients, say)
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.conn.close()
        for p in pumps:
            p.cancel()
        cluster.stop()


async def _scenario(cluster: LocalCluster, clients: list[Client], say: Say) -> int:
    for c in clients:
        await c.conn.join(GROUP)
    everyone = set(NAMES)
    await asyncio.gather(*(c.wait_for(_members_are(everyone), 15) for c in clients))
    say("\n--- every client multicasts 20 AGREED messages at the same time")
    await asyncio.gather(
        *(
            c.conn.multicast(GROUP, f"{c.daemon}-{i}".encode(), service=Service.AGREED)
            for c in clients
            for i in range(20)
        )
    )
    await asyncio.gather(*(c.wait_for(lambda c: len(c.delivered) >= 60, 10) for c in clients))
    same = all(c.delivered[:60] == clients[0].delivered[:60] for c in clients)
    say(f"  first deliveries: {clients[0].delivered[:6]} ...")
    say(f"  all 3 clients delivered the same 60 messages in the same order: {same}")

    say("\n--- fault injection: d3 is cut off from d1 and d2")
    cut = time.monotonic()
    await clients[2].conn.admin("partition", "d1", "d2")
    await asyncio.gather(
        clients[0].wait_for(_members_are({"d1", "d2"}), 10),
        clients[1].wait_for(_members_are({"d1", "d2"}), 10),
        clients[2].wait_for(_members_are({"d3"}), 10),
    )
    partition_s = time.monotonic() - cut
    await clients[0].conn.multicast(GROUP, b"d1 during the partition")
    await clients[2].conn.multicast(GROUP, b"d3 alone")
    await asyncio.sleep(0.5)

    say("\n--- heal")
    healed = time.monotonic()
    await clients[2].conn.admin("heal")
    cluster.mark_stable()  # the last fault is over: the liveness phase starts
    await asyncio.gather(*(c.wait_for(_members_are(everyone), 15) for c in clients))
    merge_s = time.monotonic() - healed
    live = await cluster.end_trace(15)
    say(f"  trace markers: stable after the heal, end with live daemons {live}")
    return _summary(cluster, clients, same, partition_s, merge_s, say)


def _summary(
    cluster: LocalCluster,
    clients: list[Client],
    same: bool,
    partition_s: float,
    merge_s: float,
    say: Say,
) -> int:
    sides_ok = (
        "d3 alone" not in clients[0].delivered
        and "d1 during the partition" not in clients[2].delivered
    )
    time.sleep(0.5)  # let the daemons write their last trace lines
    check = subprocess.run(
        [sys.executable, "-m", "sim.check_trace", *map(str, cluster.traces)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    say("\nsummary")
    say(f"  same AGREED order at every client: {same}")
    say(f"  partition -> new views at every client: {partition_s * 1000:.0f} ms")
    say(f"  heal -> merged view at every client:   {merge_s * 1000:.0f} ms")
    say(f"  each side kept its own traffic during the partition: {sides_ok}")
    say(f"  daemon traces checked (python -m sim.check_trace): {check.stdout.strip()}")
    ok = same and sides_ok and check.returncode == 0
    say("  demo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groupcomm demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--keys", action="store_true", help="secure the daemons' links (keys made for the run)"
    )
    ns = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="groupcomm-demo-"))
    try:
        return asyncio.run(asyncio.wait_for(run(print, workdir, keys=ns.keys), 120))
    finally:
        if ns.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
