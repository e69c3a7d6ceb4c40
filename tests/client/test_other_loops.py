"""The client on another asyncio event loop: uvloop's transports have asyncio's ``Transport``
interface without deriving from its class, and a client that asserted the class could not open
a session there at all."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from groupcomm.client import Message, RegularView, Service, connect
from groupcomm.localcluster import free_ports
from tests.client.harness import mini_daemon


async def _session(endpoint: str) -> None:
    async with mini_daemon(endpoint) as daemon, connect(daemon.endpoint, name="uv") as conn:
        await conn.join("g")
        while not isinstance(await conn.receive(5), RegularView):
            pass
        await conn.multicast_many("g", [b"one", b"two"], Service.FIFO)
        got: list[bytes] = []
        while len(got) < 2:
            event = await conn.receive(5)
            if isinstance(event, Message):
                got.append(event.payload)
        assert got == [b"one", b"two"]


@pytest.mark.parametrize("kind", ["ipc", "tcp"])
def test_a_session_on_uvloop(kind: str) -> None:
    endpoint = "" if kind == "ipc" else f"tcp://127.0.0.1:{free_ports(1)[0]}"  # "": ipc://
    uvloop.run(asyncio.wait_for(_session(endpoint), 20))
