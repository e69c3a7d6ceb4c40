"""A reader slower than the group slows the senders on other daemons instead of being closed
as a slow consumer (protocol/ordering.md section 7, "Holding for a lagging client"). Real
daemons (LocalCluster), real clients; the reader stops reading for a while, then reads all.
A pause that long is held only because ``slow_consumer_ms`` allows it: by default a session
that consumes nothing for 250 ms stops holding the cluster (test_live_never_reads.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from groupcomm.client import connect
from groupcomm.client.connection import query_status
from groupcomm.client.events import Message, RegularView
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import wait_daemons

T = 60.0
NAMES = ("d1", "d2")
# The hold starts 2 MB behind; a pump delivers at most 1 MiB more before the driver holds.
SLOW_CONSUMER_BYTES = 4_000_000
SIZE = 10_000
# 15 MB: well above what the reader's backlog, the held daemon's window (1 MiB per sender) and
# the sender's session window (1 MiB) can take while the reader reads nothing.
COUNT = 1500
PAUSE_ALLOWED_MS = 5_000  # slow_consumer_ms: the 2 s pause below stays held


async def test_slow_reader_holds_remote_sender_and_loses_nothing(tmp_path: Path) -> None:
    cluster = LocalCluster(
        tmp_path,
        NAMES,
        daemon={"slow_consumer_bytes": SLOW_CONSUMER_BYTES, "slow_consumer_ms": PAUSE_ALLOWED_MS},
    )
    cluster.start()
    try:
        await asyncio.wait_for(body(cluster), T)
    finally:
        cluster.stop()


async def body(cluster: LocalCluster) -> None:
    await wait_daemons(cluster, NAMES, 20.0)
    reader = await connect(cluster.endpoints["d2"], name="slow").open()
    sender = await connect(cluster.endpoints["d1"], name="fast").open()
    try:
        await reader.join("g")
        while not isinstance(await reader.receive(10), RegularView):
            pass

        async def flood() -> None:
            for i in range(COUNT):
                await sender.multicast("g", i.to_bytes(4, "big") + bytes(SIZE - 4))

        flooding = asyncio.create_task(flood())
        await asyncio.sleep(2.0)  # the reader reads nothing (under the 5 s lagging limit)
        # Everything that could be in flight is far less than COUNT messages: the sender is
        # waiting for the reader (without the hold, the reader is closed at 4 MB).
        assert not flooding.done(), flooding.exception() if flooding.done() else None
        got: list[int] = []
        while len(got) < COUNT:
            event = await reader.receive(20)
            if isinstance(event, Message):
                got.append(int.from_bytes(event.payload[:4], "big"))
        await flooding
        assert got == list(range(COUNT))
        driver = (await query_status(cluster.endpoints["d2"]))["driver"]
        assert isinstance(driver, dict) and driver["holds"] >= 1
    finally:
        await reader.close()
        await sender.close()
