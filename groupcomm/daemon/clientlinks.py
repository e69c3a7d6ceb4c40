"""``StreamLinks``/``ClientLinks``: the client connections of a daemon, as plain stream sockets.

Listens on each client endpoint (``ipc://PATH``: a Unix stream socket; ``tcp://HOST:PORT``) and
turns every accepted connection into a link with a small integer id. Items in (each link's
``StreamReader`` parses its bytes: records, ``wire.stream``, for the native protocol in
``ClientLinks``; Spread messages for ``spreadfrontend.py``), bytes out; what they mean is the
front-end's business. ``finish`` closes a link once a last answer is written (a Spread reject).

Output is buffered per link and written by ``flush`` once per driver turn (one write per client
per turn), and waits for ``EPOLLOUT`` when the client's socket buffer is full. A link whose
unsent output exceeds ``out_limit`` is closed: the session layer's slow-consumer rules keep a
reading client far below it, so only a client that stopped reading entirely reaches it. A link
that ends (EOF, reset, oversized record) is reported by ``take_closed`` so its session ends at
once: the groups see the DISCONNECT without waiting for an idle timeout. A connection that
would leave fewer than ``fd_reserve`` descriptors free is accepted, sent ``refusal`` (if it
fits the socket) and closed (``fdlimit``; counter ``refused_fds``), so clients can never take
the descriptors peer links and files need.

At accept, a Unix-socket link's peer credentials (``SO_PEERCRED``) are read once and kept with
the link (``credentials``); a TCP link keeps its remote address (``address``). Who that makes
the client is the front-end's business (``groupcomm.daemon.access``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import time
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import structlog

from groupcomm.daemon.access import peer_credentials
from groupcomm.daemon.fdlimit import near_limit
from groupcomm.daemon.ratelimit import Warnings
from groupcomm.daemon.readiness import READ, WRITE, Readiness
from groupcomm.wire.errors import WireError
from groupcomm.wire.stream import RecordReader, parse_endpoint, record_header

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
READ_CHUNK = 256 << 10
ACCEPTS_PER_TURN = 64
FINISH_MAX = 64 << 10  # ``finish`` waits for at most this much output to drain
ACCEPT_PAUSE_S = 1.0  # after accept() fails (no descriptors left): stop watching, then retry


def remove_stale_socket(path: str) -> None:
    """Remove a leftover unix socket file; refuse if a live process still listens on it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise RuntimeError(f"{path} is in use by another daemon")


def listen(endpoint: str) -> socket.socket:
    kind, address = parse_endpoint(endpoint)
    if kind == "unix":
        remove_stale_socket(address)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class StreamReader(Protocol[T_co]):
    """Turns a link's bytes into items (records, or a protocol's parsed messages); raises
    ``WireError`` when the stream is unusable."""

    def feed(self, data: memoryview) -> Sequence[T_co]: ...


class _Link(Generic[T]):
    __slots__ = (
        "address",
        "closing",
        "credentials",
        "out",
        "paused",
        "reader",
        "sock",
        "writing",
        "written",
    )

    def __init__(self, sock: socket.socket, reader: StreamReader[T], address: str) -> None:
        self.sock = sock
        self.reader = reader
        self.out = bytearray()
        self.writing = False
        self.address = address
        # Read at accept: the kernel's answer about the process that connected, which the
        # client cannot forge (a later read would see the same, but only once is needed).
        self.credentials = peer_credentials(sock)
        self.closing = False  # ``finish``: close once ``out`` is written
        self.paused = False  # ``pause``: not read (its protocol holds its input back)
        self.written = 0  # bytes written to the socket so far


class StreamLinks(Generic[T]):
    """Listeners and client links in one ``Readiness`` set (see the module docstring), for
    any stream protocol: ``reader()`` makes each link's parser, and ``framed`` says whether
    ``send`` puts a record header before the data (the native protocol) or writes it as it is
    (the Spread protocol, whose messages carry their own lengths)."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        reader: Callable[[], StreamReader[T]],
        out_limit: int,
        framed: bool = True,
        fd_reserve: int = 0,
        refusal: bytes = b"",
        oversized: bytes = b"",
        logger: str = "groupcomm.frontend",
    ) -> None:
        self.reader = reader
        self.framed = framed
        self.out_limit = out_limit
        self.fd_reserve = fd_reserve
        self._refusal = record_header(len(refusal)) + refusal if refusal and framed else refusal
        self._oversized = (
            record_header(len(oversized)) + oversized if oversized and framed else oversized
        )
        self.log = structlog.get_logger(logger)
        self.warnings = Warnings(self.log, time.monotonic)  # links come and go by the thousand
        self.counters: dict[str, int] = {
            "accepted": 0,
            "link_errors": 0,
            "accept_errors": 0,
            "refused_fds": 0,
        }
        self._listeners: dict[int, socket.socket] = {}
        self._paths: list[str] = []
        self._links: dict[int, _Link[T]] = {}
        self._by_fd: dict[int, int] = {}
        self._next_id = 1
        self._closed: list[int] = []
        self._dirty: set[int] = set()
        self._rbuf = bytearray(READ_CHUNK)  # shared: recv(256 KiB) would allocate per call
        self._readiness: Readiness | None = None
        try:
            for endpoint in endpoints:
                sock = listen(endpoint)
                self._listeners[sock.fileno()] = sock
                kind, address = parse_endpoint(endpoint)
                if kind == "unix":
                    self._paths.append(address)
        except Exception:
            self.close()
            raise

    def attach(self, readiness: Readiness) -> None:
        self._readiness = readiness
        for fd in self._listeners:
            readiness.watch(fd)

    def links(self) -> int:
        return len(self._links)

    def credentials(self, link_id: int) -> tuple[int, int, int] | None:
        """``(pid, uid, gid)`` of a Unix-socket link's client; ``None`` for TCP (or gone)."""
        link = self._links.get(link_id)
        return link.credentials if link is not None else None

    def address(self, link_id: int) -> str:
        """Where a link comes from, for logs: ``unix`` or the TCP peer ``host:port``."""
        link = self._links.get(link_id)
        return link.address if link is not None else "gone"

    def pending_output(self, link_id: int) -> int:
        """Bytes queued for a link and not yet written to its socket (0 when gone)."""
        link = self._links.get(link_id)
        return len(link.out) if link is not None else 0

    def written(self, link_id: int) -> tuple[int, int]:
        """(bytes written to the link's socket so far, that plus what is queued); a protocol
        without receipts (Spread) counts a delivery consumed once its bytes are written."""
        link = self._links.get(link_id)
        return (link.written, link.written + len(link.out)) if link is not None else (0, 0)

    def receive(self, limit: int) -> list[tuple[int, T]]:
        """``(link, item)`` pairs from the links readable at the last wait; accepts new
        links. About ``limit`` records at most (whole reads are kept together)."""
        readiness = self._readiness
        if readiness is None:
            return []
        out: list[tuple[int, T]] = []
        for fd, mask in list(readiness.ready.items()):
            link_id = self._by_fd.get(fd)
            if link_id is not None:
                if mask & WRITE:
                    self._write(link_id)
                if mask & READ and len(out) < limit:
                    self._read(link_id, out)
                elif mask & ~(READ | WRITE) and self._links[link_id].paused:
                    self.drop(link_id)  # hung up while paused: level-triggered, it would spin
            elif fd in self._listeners:
                self._accept(self._listeners[fd])
        return out

    def take_closed(self) -> list[int]:
        """Links that ended since the last call."""
        closed, self._closed = self._closed, []
        return closed

    def send(self, link_id: int, data: bytes) -> bool:
        """Queue one record; False (and the link is closed) if the link is gone or its client
        stopped reading."""
        link = self._links.get(link_id)
        if link is None:
            return False
        if len(link.out) + len(data) > self.out_limit:
            self.warnings.warning(link_id, "client_not_reading", link=link_id, queued=len(link.out))
            self.drop(link_id)
            return False
        if self.framed:
            link.out += record_header(len(data))
        link.out += data
        self._dirty.add(link_id)
        return True

    def pause(self, link_id: int, paused: bool) -> None:
        """Stop (or resume) reading a link: its client's sends wait in the socket buffers,
        so TCP slows it down (a protocol without a send window: Spread)."""
        link = self._links.get(link_id)
        if link is None or link.closing or link.paused == paused:
            return
        link.paused = paused
        assert self._readiness is not None
        self._readiness.watch(link.sock.fileno(), self._mask(link))

    def _mask(self, link: _Link[T]) -> int:
        return (WRITE if link.writing else 0) | (0 if link.paused else READ)

    def finish(self, link_id: int) -> None:
        """Close a link once what is queued for it is written (a last answer, then the end);
        it reads nothing more meanwhile."""
        link = self._links.get(link_id)
        if link is None or link.closing:
            return
        if len(link.out) > FINISH_MAX:  # a client that stopped reading gets no last word
            self.drop(link_id)
            return
        link.closing = True
        assert self._readiness is not None
        self._readiness.watch(link.sock.fileno(), WRITE)
        link.writing = True
        self._dirty.add(link_id)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for link_id in dirty:
            link = self._links.get(link_id)
            if link is not None and not link.writing:
                self._write(link_id)

    def drop(self, link_id: int) -> None:
        """Close a link (its unsent output is discarded)."""
        link = self._links.pop(link_id, None)
        if link is None:
            return
        fd = link.sock.fileno()
        self._by_fd.pop(fd, None)
        if self._readiness is not None:
            self._readiness.unwatch(fd)
        link.sock.close()
        self._dirty.discard(link_id)
        self._closed.append(link_id)

    def close(self) -> None:
        for link_id in list(self._links):
            link = self._links[link_id]
            with contextlib.suppress(OSError):  # a last "closed" notice, if it fits
                link.sock.send(link.out)
            self.drop(link_id)
        for fd, sock in self._listeners.items():
            if self._readiness is not None:
                self._readiness.unwatch(fd)
            sock.close()
        self._listeners.clear()
        for path in self._paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._paths.clear()

    # ------------------------------------------------------------------------------ internals
    def _accept(self, listener: socket.socket) -> None:
        assert self._readiness is not None
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: the daemon keeps running
                # The listener stays readable: watching it on would spin the loop until a
                # descriptor frees up, so it rests for a while (the client's connect waits in
                # the backlog or fails; nothing else is disturbed).
                self.counters["accept_errors"] += 1
                self.warnings.warning(
                    "accept", "client_accept_failed", error=str(exc), pause_s=ACCEPT_PAUSE_S
                )
                self._readiness.rest(listener.fileno(), ACCEPT_PAUSE_S)
                return
            sock.setblocking(False)
            if self.fd_reserve and near_limit(sock.fileno(), self.fd_reserve):
                self._refuse(sock)
                continue
            address = "unix"
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                address = f"{addr[0]}:{addr[1]}"
            link_id = self._next_id
            self._next_id += 1
            self._links[link_id] = _Link(sock, self.reader(), address)
            self._by_fd[sock.fileno()] = link_id
            self._readiness.watch(sock.fileno())
            self.counters["accepted"] += 1

    def _refuse(self, sock: socket.socket) -> None:
        """Too few descriptors left: say so if the socket takes it at once, and close."""
        self.counters["refused_fds"] += 1
        self.warnings.warning(
            "refused_fds",
            "client_refused_fds",
            fd=sock.fileno(),
            reserve=self.fd_reserve,
            refused=self.counters["refused_fds"],
        )
        with contextlib.suppress(OSError):
            sock.send(self._refusal)
        _discard_input(sock)
        sock.close()

    def _read(self, link_id: int, out: list[tuple[int, T]]) -> None:
        link = self._links.get(link_id)
        if link is None or link.closing:
            return
        try:
            n = link.sock.recv_into(self._rbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        if not n:
            self.drop(link_id)
            return
        try:
            records = link.reader.feed(memoryview(self._rbuf)[:n])
        except WireError as exc:
            # A record beyond max_record: the link is out of step or hostile; it is closed before
            # buffering any of it, with one best-effort line saying why (``oversized``).
            self.counters["link_errors"] += 1
            self.warnings.warning(link_id, "client_bad_stream", link=link_id, error=str(exc)[:200])
            if self._oversized:
                with contextlib.suppress(OSError):
                    link.sock.send(self._oversized)
                _discard_input(link.sock)
            self.drop(link_id)
            return
        out.extend((link_id, rec) for rec in records)

    def _write(self, link_id: int) -> None:
        link = self._links.get(link_id)
        if link is not None and link.closing and not link.out:
            self.drop(link_id)
            return
        if link is None or not link.out:
            if link is not None and link.writing:
                self._set_writing(link, False)
            return
        try:
            sent = link.sock.send(link.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.drop(link_id)
            return
        del link.out[:sent]
        link.written += sent
        if link.closing:
            if not link.out:
                self.drop(link_id)
            return
        want = bool(link.out)
        if want != link.writing:
            self._set_writing(link, want)

    def _set_writing(self, link: _Link[T], want: bool) -> None:
        link.writing = want
        assert self._readiness is not None
        self._readiness.watch(link.sock.fileno(), self._mask(link))


class ClientLinks(StreamLinks[bytes]):
    """The native protocol's links: records (``wire.stream``) of at most ``max_record``."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        max_record: int,
        out_limit: int,
        fd_reserve: int = 0,
        refusal: bytes = b"",
        oversized: bytes = b"",
    ) -> None:
        self.max_record = max_record
        super().__init__(
            endpoints,
            reader=lambda: RecordReader(max_record),
            out_limit=out_limit,
            fd_reserve=fd_reserve,
            refusal=refusal,
            oversized=oversized,
        )


def _discard_input(sock: socket.socket, limit: int = 1 << 20) -> None:
    """Read and drop what the client already sent (at most ``limit``) before closing: closing a
    socket with unread input resets the connection, and the client would lose the line saying
    why (a refused ``hello`` typically arrives with the connection itself)."""
    with contextlib.suppress(OSError):
        while limit > 0:
            got = len(sock.recv(65536))
            if not got:
                return
            limit -= got
