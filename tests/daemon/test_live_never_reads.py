"""A session that joins a busy group and never reads its socket stops holding the cluster
after ``slow_consumer_ms`` and is then closed as a slow consumer; the other members keep
delivering (docs/operations.md ``slow_consumer_ms``; the throughput figures come from
``python -m groupcomm.benchmark.stallprobe``, not from a test)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from groupcomm.benchmark.stallprobe import never_reading_session
from groupcomm.client import connect
from groupcomm.client.connection import ConnectionClosed, query_status
from groupcomm.client.events import Message, RegularView
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import wait_daemons

T = 60.0
NAMES = ("d1", "d2")
SIZE = 10_000


async def test_a_never_reading_session_is_closed_and_others_go_on(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, NAMES, daemon={"slow_consumer_bytes": 4_000_000}, trace=False)
    cluster.start()
    try:
        await asyncio.wait_for(body(cluster), T)
    finally:
        cluster.stop()


async def body(cluster: LocalCluster) -> None:
    await wait_daemons(cluster, NAMES, 20.0)
    reader = await connect(cluster.endpoints["d1"], name="reader").open()
    sender = await connect(cluster.endpoints["d1"], name="sender").open()
    await reader.join("g")
    while not isinstance(await reader.receive(10), RegularView):
        pass

    async def flood() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await sender.multicast("g", bytes(SIZE))

    flooding = asyncio.create_task(flood())
    stall = never_reading_session(cluster.endpoints["d2"], 1)
    try:
        stalled = "#stall1#d2"
        seen_join = False
        while True:  # the stalled member joins, then is disconnected
            event = await reader.receive(20)
            if isinstance(event, RegularView):
                if stalled in event.members:
                    seen_join = True
                elif seen_join and event.cause == "DISCONNECT":
                    break
        after = 0
        while after < 100:  # deliveries go on
            if isinstance(await reader.receive(20), Message):
                after += 1
        counters = (await query_status(cluster.endpoints["d2"]))["frontend"]
        assert isinstance(counters, dict)
        assert counters["slow_consumers"] >= 1
        assert counters["stalled"] >= 1  # it stopped holding the senders before it was closed
        assert not flooding.done()
    finally:
        flooding.cancel()
        stall.close()
        await sender.close()
        await reader.close()
