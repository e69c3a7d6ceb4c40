"""Client liveness (docs/client.md "Liveness"): a daemon that answers pings keeps the
connection open however idle; one that goes silent without closing the stream is declared lost
(``DaemonLost``) in the receive loop and in ``multicast``, and the library never re-opens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile

import pytest

from groupcomm.client import ConnectionClosed, DaemonLost, connect
from groupcomm.client.connection import Connection
from groupcomm.wire.client import Ping, Welcome, decode_request, encode
from groupcomm.wire.stream import RecordReader, record
from tests.client.harness import mini_daemon

TIMEOUT_S = 0.6


async def test_an_idle_connection_to_a_live_daemon_stays_open() -> None:
    async with (
        mini_daemon() as daemon,
        connect(daemon.endpoint, "idle", daemon_timeout=TIMEOUT_S) as conn,
    ):
        await asyncio.sleep(6 * TIMEOUT_S)  # only pongs arrive meanwhile
        assert not conn.closed
        await conn.join("g")
        assert (await conn.receive(5)).group == "g"  # type: ignore[union-attr]


class SilentDaemon:
    """Says ``welcome``, then reads everything and answers nothing (a hung daemon whose kernel
    still holds the socket open). Counts the pings it swallowed."""

    def __init__(self) -> None:
        self.pings = 0
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "silent.sock")
        self.endpoint = f"ipc://{self.path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        records = RecordReader(1 << 20)
        welcomed = False
        while data := await reader.read(65536):
            for rec in records.feed(data):
                if not welcomed:
                    writer.write(record(encode(Welcome("#x#d1", "d1", 1 << 16, 1 << 20))))
                    welcomed = True
                elif isinstance(decode_request(rec), Ping):
                    self.pings += 1
        writer.close()


async def test_a_silent_daemon_is_lost_in_receive_and_multicast() -> None:
    silent = SilentDaemon()
    server = await asyncio.start_unix_server(silent.handle, silent.path)
    try:
        conn = await Connection(silent.endpoint, "x", daemon_timeout=TIMEOUT_S).open()
        sender = await Connection(silent.endpoint, "y", daemon_timeout=TIMEOUT_S).open()
        with pytest.raises(DaemonLost, match="silent"):
            await asyncio.wait_for(conn.receive(), 30)
        assert silent.pings >= 1
        with pytest.raises(DaemonLost):  # also on a connection that only sends
            async with asyncio.timeout(30):
                while True:
                    await sender.multicast("g", bytes(1000))
        with pytest.raises(ConnectionClosed):
            await conn.multicast("g", b"after")
        await conn.close()
        await sender.close()
    finally:
        server.close()
        with contextlib.suppress(OSError):
            os.unlink(silent.path)
        os.rmdir(silent.dir)


def test_daemon_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Connection("ipc:///nowhere", daemon_timeout=0)


class SlowReader(SilentDaemon):
    """``SilentDaemon`` that takes its client's bytes slowly (a busy daemon reading a large
    request over many turns): 128 KiB every 50 ms."""

    def __init__(self) -> None:
        super().__init__()
        self.taken = 0  # bytes read after the hello

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await reader.read(65536)
        assert hello
        writer.write(record(encode(Welcome("#x#d1", "d1", 1 << 16, 1 << 20))))
        while data := await reader.read(128 << 10):
            self.taken += len(data)
            await asyncio.sleep(0.05)
        writer.close()


async def test_a_daemon_still_reading_our_large_request_is_not_silent() -> None:
    """The ping waits behind our own 4 MiB request: the daemon taking those bytes is heard; once
    it has taken them and stays silent, the connection is lost as usual."""
    slow = SlowReader()
    server = await asyncio.start_unix_server(slow.handle, slow.path)
    timeout = 0.3
    try:
        conn = await Connection(slow.endpoint, "x", daemon_timeout=timeout).open()
        await conn.multicast("g", bytes(4 << 20))  # about 1.6 s to read at this pace
        await asyncio.sleep(4 * timeout)
        assert not conn.closed and slow.taken < 4 << 20
        with pytest.raises(DaemonLost, match="silent"):
            await asyncio.wait_for(conn.receive(), 30)
        assert slow.taken >= 4 << 20
        await conn.close()
    finally:
        server.close()
        with contextlib.suppress(OSError):
            os.unlink(slow.path)
        os.rmdir(slow.dir)
