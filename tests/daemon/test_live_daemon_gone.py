"""A client whose daemon dies (kill -9) is told at once: its event stream ends with
``ConnectionClosed`` and its next multicast raises, instead of returning while messages vanish
(protocol/client.md "Transport"). Its group's members on other daemons see it leave with the
daemon; after a restart a new connection works."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from groupcomm.client import connect
from groupcomm.client.connection import Connection, ConnectionClosed
from groupcomm.client.events import Message, RegularView
from tests.daemon.live import assert_traces_ok, start_cluster, wait_daemons

T = 15.0


async def joined(conn: Connection, members: int) -> None:
    while True:
        ev = await conn.receive(T)
        if isinstance(ev, RegularView) and len(ev.members) == members:
            return


async def test_client_learns_its_daemon_is_gone(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(start_cluster, tmp_path, faults=True)
    try:
        async with connect(cluster.endpoints["d1"], "far") as far:
            await far.join("g")
            near = await connect(cluster.endpoints["d3"], "near").open()
            await near.join("g")
            await joined(near, 2)
            await joined(far, 2)
            await near.multicast("g", b"before")
            while not (isinstance(ev := await far.receive(T), Message) and ev.payload == b"before"):
                pass
            cluster.kill9("d3")
            # the stream ends (after anything already delivered), without waiting for timeouts
            with pytest.raises(ConnectionClosed, match="daemon connection lost"):
                while True:
                    await asyncio.wait_for(near.receive(), 5)
            with pytest.raises(ConnectionClosed):
                await near.multicast("g", b"into the void")
            await near.close()
            # the others see the daemon, and so the member, go
            while True:
                ev = await far.receive(T)
                if isinstance(ev, RegularView) and ev.members == (far.private_name,):
                    break
            cluster.restart("d3")
            await wait_daemons(cluster, ("d1", "d2", "d3"), 20)
            cluster.mark_stable()
            async with connect(cluster.endpoints["d3"], "again") as again:
                await again.join("g")
                await joined(again, 2)
        await assert_traces_ok(cluster)
    finally:
        cluster.stop()
