"""``StreamLinks``/``ClientLinks``: the client connections of a daemon, as plain stream sockets.

Listens on each client endpoint (``ipc://PATH``: a Unix stream socket; ``tcp://HOST:PORT``;
``tls://HOST:PORT``: TCP carrying TLS 1.3, ``clienttls``) and turns every accepted connection
into a link with a small integer id. Items in (each link's ``StreamReader`` parses its bytes:
records, ``wire.stream``, for the native protocol in ``ClientLinks``; Spread messages for
``spreadfrontend.py``), bytes out; what they mean is the front-end's business. ``finish`` closes
a link once a last answer is written (a Spread reject).

A TLS link decrypts what it reads through its ``TlsChannel`` (memory BIOs) before its reader sees
it, and queues its output as plaintext that ``flush`` encrypts once per turn (one ``seal``, one
write). Until its handshake completes it carries nothing; one that has not completed within
``handshake_timeout_s`` is closed by ``expire`` (counter ``tls_timeouts``), so a stranger cannot
hold a descriptor by connecting and saying nothing; a failed handshake (an unlisted client
certificate, not TLS at all) is closed at once (counter ``tls_failed``).

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
the link (``credentials``); a TCP link keeps its remote address (``address``); a TLS link the
``[clients]`` name its certificate proved (``cert_identity``). Who that makes the client is the
front-end's business (``groupcomm.daemon.access``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import stat
import time
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import structlog

from groupcomm.daemon.access import peer_credentials
from groupcomm.daemon.clienttls import HANDSHAKE_TIMEOUT_S, ClientTls
from groupcomm.daemon.fdlimit import near_limit
from groupcomm.daemon.ratelimit import Warnings
from groupcomm.daemon.readiness import READ, WRITE, Readiness
from groupcomm.daemon.tlschannel import TlsChannel
from groupcomm.wire.errors import WireError
from groupcomm.wire.stream import RecordReader, parse_endpoint, record_header

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
READ_CHUNK = 256 << 10
# A front-end closes a connection that opened no session this long after it was accepted: each
# holds a descriptor, up to one request's bytes of input and its unread replies, and a stranger
# can open them by the thousand (a status or admin tool needs well under a second).
HELLO_WAIT_S = 30.0
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
        "cert_identity",
        "closing",
        "credentials",
        "opened",
        "out",
        "paused",
        "plain",
        "reader",
        "received",
        "sock",
        "tls",
        "writing",
        "written",
    )

    def __init__(
        self,
        sock: socket.socket,
        reader: StreamReader[T],
        address: str,
        tls: TlsChannel | None,
        opened: float,
    ) -> None:
        self.sock = sock
        self.reader = reader
        self.out = bytearray()  # bytes for the socket (ciphertext on a TLS link)
        self.plain = bytearray()  # a TLS link's output of this turn, sealed by ``flush``
        self.tls = tls
        self.opened = opened
        self.cert_identity = ""  # the [clients] name a TLS client's certificate proved
        self.writing = False
        self.address = address
        # Read at accept: the kernel's answer about the process that connected, which the
        # client cannot forge (a later read would see the same, but only once is needed).
        self.credentials = peer_credentials(sock)
        self.closing = False  # ``finish``: close once ``out`` is written
        self.paused = False  # ``pause``: not read (its protocol holds its input back)
        self.written = 0  # bytes written to the socket so far
        self.received = 0  # bytes read from the socket so far

    def seal_turn(self) -> None:
        """On a TLS link, encrypt the turn's output into ``out`` in one call (TLS records of
        16 KiB, not one per reply); nothing before the handshake completed."""
        if self.plain and self.tls is not None and self.tls.established:
            self.out += self.tls.seal(self.plain)
            self.plain.clear()


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
        tls: ClientTls | None = None,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        unix_mode: int | None = None,
    ) -> None:
        self.reader = reader
        self.tls = tls
        self.handshake_timeout_s = handshake_timeout_s
        self.clock = clock
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
            "tls_failed": 0,
            "tls_timeouts": 0,
            "hello_timeouts": 0,  # links that opened no session within HELLO_WAIT_S
        }
        self._tls_listeners: set[int] = set()
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
                kind, address = parse_endpoint(endpoint)
                if kind == "tls" and tls is None:
                    raise ValueError(f"{endpoint}: a tls:// endpoint needs the daemon's key")
                sock = listen(endpoint)
                self._listeners[sock.fileno()] = sock
                if kind == "unix":
                    self._paths.append(address)
                    if unix_mode is not None:
                        os.chmod(address, unix_mode)
                elif kind == "tls":
                    self._tls_listeners.add(sock.fileno())
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

    def cert_identity(self, link_id: int) -> str:
        """The ``[clients]`` name a TLS link's client certificate proved; ``""`` for none."""
        link = self._links.get(link_id)
        return link.cert_identity if link is not None else ""

    def address(self, link_id: int) -> str:
        """Where a link comes from, for logs: ``unix``, the TCP peer ``host:port``, or
        ``tls:host:port``."""
        link = self._links.get(link_id)
        return link.address if link is not None else "gone"

    def pending_output(self, link_id: int) -> int:
        """Bytes queued for a link and not yet written to its socket (0 when gone)."""
        link = self._links.get(link_id)
        return len(link.out) + len(link.plain) if link is not None else 0

    def written(self, link_id: int) -> tuple[int, int]:
        """(bytes written to the link's socket so far, that plus what is queued); a protocol
        without receipts (Spread) counts a delivery consumed once its bytes are written."""
        link = self._links.get(link_id)
        if link is None:
            return (0, 0)
        return (link.written, link.written + len(link.out) + len(link.plain))

    def moved(self, link_id: int) -> int:
        """Bytes written to and read from the link's socket so far (0 when gone): whether its
        client is doing anything at all, e.g. reading a large delivery or sending a large
        request (its replies and reports wait behind it)."""
        link = self._links.get(link_id)
        return link.written + link.received if link is not None else 0

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
                # A hang-up reads as READ (Readiness.wait): a paused link that hung up is read to
                # its end in the next turns (what its client sent before still counts), not
                # dropped here with its unread bytes.
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
        queued = len(link.out) + len(link.plain)
        if queued + len(data) > self.out_limit:
            self.warnings.warning(link_id, "client_not_reading", link=link_id, queued=queued)
            self.drop(link_id)
            return False
        queue = link.out if link.tls is None else link.plain
        if self.framed:
            queue += record_header(len(data))
        queue += data
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
            if link is None:
                continue
            link.seal_turn()
            if not link.writing:
                self._write(link_id)

    def expire(self, has_session: Callable[[int], bool] | None = None) -> None:
        """Close the TLS links whose handshake did not complete in time and, given the front-
        end's ``has_session``, the links that opened none within ``HELLO_WAIT_S`` (called
        about once a second: a link lives at most that much longer than the timeout)."""
        if has_session is not None:
            idle = self.clock() - HELLO_WAIT_S
            links = self._links.items()
            for link_id in [i for i, link in links if link.opened < idle and not link.closing]:
                if not has_session(link_id):
                    self.counters["hello_timeouts"] += 1
                    self.warnings.warning(
                        "hello_timeout",
                        "client_hello_timeout",
                        via=self.address(link_id),
                        after_s=HELLO_WAIT_S,
                        closed=self.counters["hello_timeouts"],
                    )
                    self.drop(link_id)
        deadline = self.clock() - self.handshake_timeout_s
        late = [
            link_id
            for link_id, link in self._links.items()
            if link.tls is not None and not link.tls.established and link.opened < deadline
        ]
        for link_id in late:
            self.counters["tls_timeouts"] += 1
            self.warnings.warning(
                "tls_timeout",
                "client_tls_timeout",
                via=self.address(link_id),
                timeout_s=self.handshake_timeout_s,
                closed=self.counters["tls_timeouts"],
            )
            self.drop(link_id)

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
            with contextlib.suppress(OSError, ssl.SSLError):  # a last "closed" notice, if it fits
                link.seal_turn()
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
            secure = self.tls is not None and listener.fileno() in self._tls_listeners
            if self.fd_reserve and near_limit(sock.fileno(), self.fd_reserve):
                self._refuse(sock, plain=not secure)
                continue
            address = "unix"
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                address = f"{addr[0]}:{addr[1]}"
            tls: TlsChannel | None = None
            if secure:
                assert self.tls is not None
                tls = self.tls.channel()
                address = f"tls:{address}"
            link_id = self._next_id
            self._next_id += 1
            self._links[link_id] = _Link(sock, self.reader(), address, tls, self.clock())
            self._by_fd[sock.fileno()] = link_id
            self._readiness.watch(sock.fileno())
            self.counters["accepted"] += 1

    def _refuse(self, sock: socket.socket, *, plain: bool) -> None:
        """Too few descriptors left: say so if the socket takes it at once (not on a TLS
        endpoint: its client expects a handshake, and sees the close), and close."""
        self.counters["refused_fds"] += 1
        self.warnings.warning(
            "refused_fds",
            "client_refused_fds",
            fd=sock.fileno(),
            reserve=self.fd_reserve,
            refused=self.counters["refused_fds"],
        )
        if plain:
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
        link.received += n
        view = memoryview(self._rbuf)[:n]
        if link.tls is not None:
            plain = self._decrypt(link_id, link, view)
            if not plain:
                return
            view = memoryview(plain)
        try:
            records = link.reader.feed(view)
        except WireError as exc:
            # A record beyond max_record: the link is out of step or hostile; it is closed before
            # buffering any of it, with one best-effort line saying why (``oversized``).
            self.counters["link_errors"] += 1
            self.warnings.warning(link_id, "client_bad_stream", link=link_id, error=str(exc)[:200])
            if self._oversized and link.tls is None:
                with contextlib.suppress(OSError):
                    link.sock.send(self._oversized)
                _discard_input(link.sock)
            self.drop(link_id)
            return
        out.extend((link_id, rec) for rec in records)

    def _decrypt(self, link_id: int, link: _Link[T], data: memoryview) -> bytes:
        """What a TLS link's bytes decrypt to; b"" while the handshake runs or when the link
        was closed (a failed handshake, an unlisted certificate, a broken record)."""
        tls = link.tls
        assert tls is not None and self.tls is not None
        was_established = tls.established
        try:
            plain = tls.feed(data)
        except ssl.SSLError as exc:
            if not was_established:
                self.counters["tls_failed"] += 1
            self.warnings.warning(
                "tls_failed" if not was_established else link_id,
                "client_tls_refused" if not was_established else "client_tls_error",
                via=link.address,
                error=str(exc.reason or exc)[:200],
            )
            # The alert (unknown certificate...) tells the client why, if the socket takes it.
            with contextlib.suppress(OSError):
                link.sock.send(link.out + tls.take_out())
            self.drop(link_id)
            return b""
        out = tls.take_out()
        if out:
            link.out += out
            if not link.writing:
                self._write(link_id)
                if link_id not in self._links:
                    return b""
        if tls.established and not was_established:
            who = self.tls.identity_of(tls)
            if who is None:  # verified, yet not one of ours: refuse all the same
                self.counters["tls_failed"] += 1
                self.warnings.warning(
                    "tls_failed", "client_tls_refused", via=link.address, error="unlisted cert"
                )
                self.drop(link_id)
                return b""
            link.cert_identity = who
            if link.plain:  # replies queued during the handshake (none today): seal them now
                self._dirty.add(link_id)
        return plain

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
        tls: ClientTls | None = None,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_record = max_record
        super().__init__(
            endpoints,
            reader=lambda: RecordReader(max_record),
            out_limit=out_limit,
            fd_reserve=fd_reserve,
            refusal=refusal,
            oversized=oversized,
            tls=tls,
            handshake_timeout_s=handshake_timeout_s,
            clock=clock,
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
