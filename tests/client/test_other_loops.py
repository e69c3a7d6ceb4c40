"""The client on another asyncio event loop: uvloop's transports have asyncio's ``Transport``
interface without deriving from its class, and a client that asserted the class could not open
a session there at all."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator

import pytest
import uvloop

from groupcomm.client import Message, RegularView, Service, connect
from groupcomm.localcluster import free_ports
from tests.client.harness import MiniDaemon


@contextlib.asynccontextmanager
async def daemon_on(endpoint: str) -> AsyncIterator[MiniDaemon]:
    daemon = MiniDaemon(endpoint)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        daemon.stopping = True
        await asyncio.wait_for(task, 5)
        daemon.fe.close()


async def _session(endpoint: str) -> None:
    async with daemon_on(endpoint), connect(endpoint, name="uv") as conn:
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
    tmp = tempfile.mkdtemp(prefix="gc-uv-")
    try:
        endpoint = f"ipc://{tmp}/d.sock" if kind == "ipc" else f"tcp://127.0.0.1:{free_ports(1)[0]}"
        uvloop.run(asyncio.wait_for(_session(endpoint), 20))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
