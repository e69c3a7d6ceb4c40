"""Records on a byte stream: how the plain-socket links delimit messages.

A record is a 4-byte big-endian length followed by that many bytes. The client link
(``protocol/client.md``) and the daemons' TCP links (``protocol/frames.md`` "Links") both use
it. A stream carries no other framing, so a length above the reader's limit cannot be skipped
safely: the reader raises and the connection must be closed (a peer or client that sends one is
broken or hostile, never slow).
"""

from __future__ import annotations

import struct
from typing import Any

from groupcomm.core.ids import decimal
from groupcomm.wire.errors import WireError

_LEN = struct.Struct(">I")
HEADER = _LEN.size
MAX_RECORD = (1 << 32) - 1


def parse_endpoint(endpoint: str) -> tuple[str, Any]:
    """A client endpoint as ``("unix", path)`` (``ipc://PATH``), ``("tcp", (host, port))``
    (``tcp://HOST:PORT``, IPv6 hosts in brackets) or ``("tls", (host, port))`` (``tls://HOST:PORT``:
    TCP carrying TLS 1.3); ``ValueError`` for anything else."""
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://") :]
        if not path:
            raise ValueError(f"{endpoint!r}: empty socket path")
        return "unix", path
    for scheme in ("tcp", "tls"):
        prefix = f"{scheme}://"
        if endpoint.startswith(prefix):
            host, sep, port = endpoint[len(prefix) :].rpartition(":")
            if not sep or not host or not decimal(port) or not 0 < int(port) < 65536:
                raise ValueError(f"{endpoint!r}: expected {prefix}HOST:PORT")
            return scheme, (host.strip("[]"), int(port))
    raise ValueError(
        f"{endpoint!r}: client endpoints are ipc://PATH, tcp://HOST:PORT or tls://HOST:PORT"
    )


class RecordTooLarge(WireError):
    """A record's announced length exceeds the reader's limit."""


def record(data: bytes) -> bytes:
    """``data`` as one record (length prefix + data)."""
    return _LEN.pack(len(data)) + data


def record_header(size: int) -> bytes:
    """The length prefix alone, for writers that gather the body separately."""
    return _LEN.pack(size)


class RecordReader:
    """Incremental reader: ``feed`` bytes as they arrive, get every complete record back.

    Keeps at most one incomplete record (bounded by ``max_record`` + ``HEADER``) between calls.
    """

    __slots__ = ("_buf", "_need", "first_max", "max_record")

    def __init__(self, max_record: int, first_max: int = 0) -> None:
        if not 0 < max_record <= MAX_RECORD or not 0 <= first_max <= max_record:
            raise ValueError(f"max_record must be 1..{MAX_RECORD}, first_max 0..max_record")
        self.max_record = max_record
        # The first record's own limit (0: max_record): a peer link's hello is small, and the
        # frames its sender queued follow it in the same write, so the same read.
        self.first_max = first_max
        self._buf = bytearray()
        self._need = 0  # bytes the buffer must hold before the next record is complete

    def pending(self) -> int:
        """Bytes held for an incomplete record."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Every record completed by ``data``, in order. Raises ``RecordTooLarge`` (the stream
        is then unusable)."""
        buf = self._buf
        if not buf:
            # The common case at light load: whole records in one read, no buffer copy.
            out, pos = self._split(data)
            if pos < len(data):
                buf += memoryview(data)[pos:]
                self._need = self._wanted(buf)
            return out
        buf += data
        if len(buf) < self._need:  # a large record still arriving: no re-scan, no copy
            return []
        out, pos = self._split(buf)
        del buf[:pos]
        self._need = self._wanted(buf) if buf else 0
        return out

    def _wanted(self, buf: bytearray) -> int:
        if len(buf) < HEADER:
            return HEADER
        size: int = _LEN.unpack_from(buf, 0)[0]
        limit = self.first_max or self.max_record
        if size > limit:  # refuse before buffering any of it
            raise RecordTooLarge(f"record of {size} bytes exceeds the limit of {limit}")
        return HEADER + size

    def _split(self, data: bytes | bytearray | memoryview) -> tuple[list[bytes], int]:
        """The complete records at the start of ``data`` and where the rest begins."""
        out: list[bytes] = []
        pos = 0
        end = len(data)
        limit = self.first_max or self.max_record
        unpack = _LEN.unpack_from
        while end - pos >= HEADER:
            (size,) = unpack(data, pos)
            if size > limit:
                raise RecordTooLarge(f"record of {size} bytes exceeds the limit of {limit}")
            stop = pos + HEADER + size
            if stop > end:
                break
            out.append(bytes(data[pos + HEADER : stop]))
            pos = stop
            if self.first_max:  # the first record is taken: the rest may be larger
                self.first_max = 0
                limit = self.max_record
        return out, pos
