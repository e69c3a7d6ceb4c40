"""The client's end of the link to its daemon: a Unix, TCP or TLS stream of records.

``open_link`` connects to ``ipc://PATH``, ``tcp://HOST:PORT`` or ``tls://HOST:PORT`` (asyncio's
TLS, the daemon's certificate pinned: ``groupcomm.client.tls``) and calls ``on_record`` for
every complete record (``wire.stream``) straight from asyncio's read callback, and ``on_lost``
once when the stream ends (the daemon closed it, died, or sent something unreadable). No task
and no queue between the socket and the connection: each delivered batch costs one wake-up
(``docs/performance.md`` "Transports").
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import cast

from groupcomm.client.tls import ClientTls
from groupcomm.wire.errors import WireError
from groupcomm.wire.stream import RecordReader, parse_endpoint, record_header

MAX_REPLY = 256 << 20  # the daemon is trusted; this only stops a broken stream from growing
READ_BUFFER = 256 << 10


class _Protocol(asyncio.BufferedProtocol):
    """Reads into one buffer of its own: asyncio's plain ``Protocol`` receives with
    ``recv(256 KiB)``, which allocates and frees 256 KiB per read (a third of a member's busy
    time at 1,000 msg/s)."""

    def __init__(self, on_record: Callable[[bytes], None], on_lost: Callable[[str], None]) -> None:
        self.reader = RecordReader(MAX_REPLY)
        self.on_record = on_record
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray(READ_BUFFER)
        # Handed out as a view: asyncio's TLS transport (3.11) fills the rest of the buffer
        # with ``buf[offset:]`` after its first record, which on a bytearray is a copy (the
        # bytes of every later record in that read would be lost); a memoryview slice is not.
        self._view = memoryview(self._buf)
        # When the daemon was last heard from (any bytes): the connection's liveness watch
        # reads it. Once per read, not per record.
        self.heard_at = time.monotonic()
        self.lost_error: BaseException | None = None  # why the stream ended, if it failed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: other event loops' transports (uvloop's
        # UVTransport) have the Transport interface without deriving from asyncio's class.
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.heard_at = time.monotonic()
        try:
            records = self.reader.feed(self._view[:nbytes])
        except WireError as exc:
            self.on_lost(f"unreadable reply stream: {exc}")
            if self.transport is not None:
                self.transport.abort()
            return
        on_record = self.on_record
        for rec in records:
            on_record(rec)

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_error = exc
        self.on_lost("daemon connection lost" + (f": {exc}" if exc else ""))


class Link:
    """An open stream to the daemon: ``send`` one record, ``close``."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self.transport = transport
        self._protocol = protocol

    @property
    def heard_at(self) -> float:
        """``time.monotonic()`` when bytes last arrived from the daemon (or the link opened)."""
        return self._protocol.heard_at

    @property
    def lost_error(self) -> BaseException | None:
        """The error the stream ended with (``ssl.SSLError``: the daemon refused the TLS
        session, e.g. an unlisted client certificate); ``None`` while open or after a clean
        end."""
        return self._protocol.lost_error

    def send(self, data: bytes) -> None:
        """Queue one record; asyncio writes at once when the socket takes it."""
        if self.transport.is_closing():
            raise ConnectionResetError("the link to the daemon is closed")
        self.transport.write(record_header(len(data)) + data)

    def unsent(self) -> int:
        """Bytes queued here that the socket has not taken yet (a large request being read)."""
        return self.transport.get_write_buffer_size()

    def close(self) -> None:
        self.transport.close()  # flushes what is queued, then closes

    def abort(self) -> None:
        self.transport.abort()


async def open_link(
    endpoint: str,
    on_record: Callable[[bytes], None],
    on_lost: Callable[[str], None],
    tls: ClientTls | None = None,
) -> Link:
    """Connect; raises ``OSError`` if nobody listens there, ``ValueError`` for a bad endpoint
    (or ``tls://`` without ``tls``), ``ssl.SSLCertVerificationError`` if a ``tls://`` daemon
    does not present the pinned certificate, another ``ssl.SSLError`` if the handshake
    fails."""
    kind, address = parse_endpoint(endpoint)
    if kind == "tls" and tls is None:
        raise ValueError(f"{endpoint}: a tls:// endpoint needs the daemon's certificate")
    loop = asyncio.get_running_loop()
    transport: asyncio.BaseTransport
    protocol: _Protocol
    if kind == "unix":
        transport, protocol = await loop.create_unix_connection(
            lambda: _Protocol(on_record, on_lost), address
        )
    else:
        host, port = address
        transport, protocol = await loop.create_connection(  # asyncio sets TCP_NODELAY
            lambda: _Protocol(on_record, on_lost),
            host,
            port,
            ssl=tls.context if kind == "tls" and tls is not None else None,
        )
    if kind == "tls" and tls is not None and not tls.pinned(transport.get_extra_info("ssl_object")):
        # The context trusts the pinned certificate alone, so this cannot pass verification;
        # the exact bytes are compared all the same, before a single record goes out.
        transport.abort()
        raise ssl.SSLCertVerificationError("the daemon's certificate is not the pinned one")
    return Link(transport, protocol)
