"""Slow-consumer policies on a live daemon (protocol/retention.md section 5, RET-DROP): a
session that does not read, with ``drop``, never holds the sender, and later gets every message
or a gap standing exactly for the ones it lost; with ``disconnect`` it is closed instead."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from groupcomm.client import Gap, Message, RegularView, connect
from groupcomm.client.connection import Connection, ConnectionClosed
from groupcomm.localcluster import free_ports
from tests.daemon.onedaemon import DaemonProcess

COUNT = 4000
SIZE = 500  # 2 MB in all, against a 200 KB slow-consumer limit


def config(tmp: Path) -> tuple[str, str]:
    endpoint = f"ipc://{tmp}/d1.sock"
    data, control = free_ports(2)
    return (
        f'[daemon]\nname = "d1"\nclient_endpoints = ["{endpoint}"]\n'
        "slow_consumer_bytes = 200000\n\n"
        f'[[peers]]\nname = "d1"\nhost = "127.0.0.1"\ndata_port = {data}\n'
        f"control_port = {control}\n",
        endpoint,
    )


async def joined(conn: Connection, group: str) -> None:
    await conn.join(group)
    while not isinstance(await conn.receive(10), RegularView):
        pass


async def flood(endpoint: str) -> None:
    async with connect(endpoint, "sender") as sender:
        for i in range(0, COUNT, 100):
            batch = [b"%06d" % n + b"x" * (SIZE - 6) for n in range(i, i + 100)]
            await sender.multicast_many("g", batch)
        await sender.drain()


async def test_drop_gives_exact_gaps_and_never_holds_the_sender(tmp_path: Path) -> None:
    text, endpoint = config(tmp_path)
    daemon = DaemonProcess(tmp_path, text, endpoint)
    try:
        await daemon.ready()
        async with connect(endpoint, "lazy", slow_consumer="drop") as lazy:
            await joined(lazy, "g")
            await asyncio.wait_for(flood(endpoint), 30)  # lazy reads nothing meanwhile
            expected = 0
            gaps = 0
            while expected < COUNT:
                event = await lazy.receive(10)
                if isinstance(event, Gap):
                    assert event.reason == "dropped" and event.count > 0 and event.first
                    expected += event.count  # the next message is exactly past the gap
                    gaps += 1
                elif isinstance(event, Message):
                    assert int(event.payload[:6]) == expected, (event.payload[:6], expected)
                    expected += 1
            assert expected == COUNT and gaps >= 1
        status = daemon.log()
        assert "slow_consumer" not in status  # dropped, not closed
    finally:
        daemon.stop()


async def test_disconnect_closes_without_holding_the_sender(tmp_path: Path) -> None:
    text, endpoint = config(tmp_path)
    daemon = DaemonProcess(tmp_path, text, endpoint)
    try:
        await daemon.ready()
        async with connect(endpoint, "lazy", slow_consumer="disconnect") as lazy:
            await joined(lazy, "g")
            await asyncio.wait_for(flood(endpoint), 30)
            with pytest.raises(ConnectionClosed, match="slow consumer"):
                while True:
                    await lazy.receive(10)
    finally:
        daemon.stop()
