"""``TcpTransport``: the default data plane, plain TCP links between daemons.

Why not ZeroMQ here: a ZeroMQ hop hands every message from the application thread to an I/O
thread and back on the other side; on 2 vCPUs that cost 150-190 us per hop against 32-47 us for
a plain TCP socket read from one epoll loop (``docs/performance.md`` "Transports"). The
protocol repairs loss itself, so the links only need to be fast and ordered.

Topology: every daemon listens on its ``data_port`` and connects one **outbound** link to every
other configured peer. A daemon sends only on its outbound links and receives only on the
links others opened to it, so a pair never races to decide who connects. Each link starts with
a hello record naming the sender and its protocol settings (``protocol/frames.md`` "Links"); a
peer whose settings differ is refused by name like on the ZeroMQ planes.

Sending: ``send`` appends the encoded frame to the peer's output buffer, and ``flush`` (once per
driver turn) writes each buffer with one ``send`` call: one message per turn at light load,
large writes under load, and no timer. What the kernel does not take waits for ``EPOLLOUT``.
A buffer beyond ``OUT_LIMIT`` or a link that is down drops the frame (counted): sends never
block, and the protocol's NAKs repair what was dropped.

Strangers: an inbound connection must send a valid hello (at most ``MAX_HELLO_BYTES``) within
``HELLO_TIMEOUT_S`` or it is closed, and at most ``MAX_INBOUND`` inbound connections are held.
Nothing a peer sends can crash the transport: undecodable records are counted and logged at most
once per peer per minute.
"""

from __future__ import annotations

import contextlib
import errno
import json
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import structlog

from groupcomm.config import DaemonConfig, PeerConfig
from groupcomm.core.frames import Data, Frame, origin
from groupcomm.daemon.fanout import link_timeout_ms
from groupcomm.daemon.readiness import READ, WRITE, Readiness
from groupcomm.daemon.tlschannel import HANDSHAKE_TIMEOUT_S, LinkSecurity, TlsChannel
from groupcomm.daemon.transport import (
    MAX_HELLO_BYTES,
    Blocklist,
    PeerLog,
    PeerStats,
    fingerprint_hash,
)
from groupcomm.wire.errors import WireError
from groupcomm.wire.peer import (
    DEFAULT_MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    decode_frame,
    encode_frame,
)
from groupcomm.wire.stream import RecordReader, record_header

DESCRIPTION = "tcp-links"
KIND_FRAME = b"F"
KIND_HELLO = b"H"
OUT_LIMIT = 64 << 20  # bytes queued for one peer before frames are dropped
READ_CHUNK = 256 << 10  # bytes read from one link per turn
MAX_INBOUND_PER_PEER = 4
HELLO_TIMEOUT_S = 5.0
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 0.25
# A connect still pending after this is given up and retried: through a cut (packets dropped,
# not refused) SYNs back off to seconds, and the merge after the heal would wait for them.
CONNECT_TIMEOUT_S = 0.25
ACCEPT_PAUSE_S = 1.0  # after accept() fails (no descriptors left): not watched for this long


def _tune(sock: socket.socket, timeout_ms: int) -> None:
    """NODELAY: a frame is one write and must leave now. TCP_USER_TIMEOUT: a link holding
    unacknowledged data for a suspect timeout is dead for the protocol anyway; dropping it
    lets the reconnect start at once instead of after TCP's retransmission backoff."""
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, timeout_ms)


class _Outbound:
    """Our link to one peer: we only write on it (reads only detect its end, and carry the
    peer's half of a TLS handshake)."""

    __slots__ = (
        "buf",
        "connect_started",
        "peer",
        "plain",
        "retry_at",
        "sock",
        "tls",
        "up",
        "writing",
    )

    def __init__(self, peer: PeerConfig) -> None:
        self.peer = peer
        self.sock: socket.socket | None = None
        self.up = False  # connected (and with keys: authenticated), the hello queued
        self.buf = bytearray()  # bytes for the socket (with keys: ciphertext)
        self.plain = bytearray()  # with keys: this turn's records, sealed at the write
        self.tls: TlsChannel | None = None
        self.retry_at = 0.0
        self.connect_started = 0.0
        self.writing = False  # watched for EPOLLOUT

    def seal_turn(self) -> None:
        """With keys, encrypt what this turn queued into ``buf`` in one call (TLS records of
        16 KiB, not one per frame); nothing before the peer is authenticated."""
        if self.plain and self.up and self.tls is not None:
            self.buf += self.tls.seal(self.plain)
            self.plain.clear()


class _Inbound:
    """A link a peer (or a stranger, until its hello) opened to us: we only read from it."""

    __slots__ = ("authenticated", "name", "opened", "reader", "refused", "sock", "tls", "wire")

    def __init__(self, sock: socket.socket, opened: float, tls: TlsChannel | None) -> None:
        self.sock = sock
        # The hello is at most MAX_HELLO_BYTES; the frames behind it in the same read (the
        # sender's queue goes out right after its hello) are read at full size once it is
        # valid (a stranger's link is closed at its hello, before a second read).
        self.reader = RecordReader(DEFAULT_MAX_FRAME_SIZE + 1, first_max=MAX_HELLO_BYTES + 1)
        self.name: str | None = None  # set by a valid hello
        self.refused = False  # its settings differ from ours
        self.opened = opened
        self.tls = tls
        self.authenticated: str | None = None  # with keys: the peer its certificate proves
        self.wire = bytearray()  # with keys: our half of the handshake, not yet sent


class TcpTransport:
    """Plain TCP links in one epoll set (see the module docstring); a ``DataPlane``."""

    def __init__(
        self, config: DaemonConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = config.name
        self.others: tuple[str, ...] = tuple(sorted(p for p in config.peer_names if p != self.name))
        self.clock = clock
        self.log = structlog.get_logger("groupcomm.transport").bind(d=self.name)
        self.peer: dict[str, PeerStats] = {n: PeerStats() for n in self.others}
        self.counters: dict[str, int] = {
            "frames_sent": 0,
            "frames_dropped": 0,
            "frames_received": 0,
            "frames_bad": 0,
            "frames_refused": 0,
            "frames_unknown": 0,
            "frames_forged": 0,  # frames whose origin is not the link's peer (AUTH-1)
            "encode_errors": 0,
            "bytes_out": 0,
            "writes": 0,  # send() calls: at light load one per frame, under load far fewer
            "connects": 0,
            "inbound_refused": 0,  # connections closed: too many, no hello, unknown name
            "tls_failed": 0,  # handshakes refused: no or unknown certificate, not TLS
        }
        self._timeout_ms = link_timeout_ms(config)
        self._security = LinkSecurity(config) if config.security.enabled else None
        settings: dict[str, int | str] = dict(config.protocol.fingerprint())
        settings["data_plane"] = DESCRIPTION
        # Daemons of another frame layout are refused by name, not met with undecodable frames.
        settings["frame_version"] = PROTOCOL_VERSION
        self.settings: dict[str, Any] = settings
        self.fp = fingerprint_hash(tuple(sorted(settings.items())))
        hello = KIND_HELLO + json.dumps({"name": self.name, "settings": settings}).encode()
        self._hello = record_header(len(hello)) + hello
        self._blocked = Blocklist(self.others, self.log)
        self._peer_log = PeerLog(self.log, clock)
        self._warn = self._peer_log.warn
        self._out: dict[str, _Outbound] = {
            p.name: _Outbound(p) for p in config.peers if p.name in self.peer
        }
        self._out_by_fd: dict[int, _Outbound] = {}
        self._in: dict[int, _Inbound] = {}
        self._dirty: set[_Outbound] = set()
        self._readiness: Readiness | None = None
        # One read buffer for every link: recv(256 KiB) allocates and frees 256 KiB per call
        # (21 us against 3 us for recv_into here, measured with a socketpair).
        self._rbuf = bytearray(READ_CHUNK)
        self._closed = False
        me = config.me
        family = socket.AF_INET6 if ":" in me.host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind((me.host, me.data_port))
            self.listener.listen(64)
            self.listener.setblocking(False)
        except OSError:
            self.listener.close()
            raise

    # ------------------------------------------------------------------------------ DataPlane
    def attach(self, readiness: Readiness) -> None:
        self._readiness = readiness
        readiness.watch(self.listener.fileno())
        now = self.clock()
        for link in self._out.values():
            self._connect(link, now)

    def send(self, targets: tuple[str, ...], frame: Frame) -> None:
        try:
            data = encode_frame(frame)
        except WireError as exc:
            self.counters["encode_errors"] += 1
            self._warn("*", "encode", "cannot encode frame", error=str(exc))
            return
        size = len(data) + 1
        rec = record_header(size) + KIND_FRAME + data
        for name in targets:
            link = self._out.get(name)
            if link is None:
                continue
            stats = self.peer[name]
            if name in self._blocked or not link.up or len(link.buf) + len(link.plain) > OUT_LIMIT:
                stats.dropped_out += 1
                self.counters["frames_dropped"] += 1
                continue
            queue = link.buf if link.tls is None else link.plain
            queue += rec
            self._dirty.add(link)
            stats.frames_out += 1
            stats.bytes_out += len(rec)
            self.counters["frames_sent"] += 1

    def flush(self) -> None:
        """One write per peer with what this turn queued."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        for link in dirty:
            if not link.writing:
                self._write(link)

    def receive(self, limit: int) -> list[Frame]:
        """Frames from the links that were readable at the last wait; at most about ``limit *
        4`` messages inside data frames (a turn must stay short: L2)."""
        readiness = self._readiness
        if readiness is None:
            return []
        out: list[Frame] = []
        budget = limit * 4
        for fd, mask in list(readiness.ready.items()):
            conn = self._in.get(fd)
            if conn is not None:
                if mask & WRITE:
                    self._send_handshake(conn, b"")
                if mask & READ and budget > 0 and fd in self._in:
                    budget -= self._read(conn, out)
                continue
            link = self._out_by_fd.get(fd)
            if link is not None:
                self._on_outbound(link, mask)
            elif fd == self.listener.fileno():
                self._accept()
        return out

    def tick(self) -> None:
        now = self.clock()
        for link in self._out.values():
            if link.sock is None:
                if now >= link.retry_at:
                    self._connect(link, now)
            elif not link.up and now - link.connect_started > (
                CONNECT_TIMEOUT_S if link.tls is None else HANDSHAKE_TIMEOUT_S
            ):
                self._drop(link, "connect timed out" if link.tls is None else "TLS timed out")
        for conn in list(self._in.values()):
            if conn.name is None and now - conn.opened > HELLO_TIMEOUT_S:
                self.counters["inbound_refused"] += 1
                self._close_inbound(conn)

    def block(self, peers: Iterable[str]) -> list[str]:
        return self._blocked.block(peers)

    def heal(self) -> None:
        self._blocked.heal()

    def blocked(self) -> list[str]:
        return self._blocked.names()

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "data_plane": DESCRIPTION,
            "tls": self._security is not None,
            "blocked": self._blocked.names(),
            "links_up": sorted(n for n, link in self._out.items() if link.up),
            "peers": {name: asdict(s) for name, s in sorted(self.peer.items())},
        }

    def close(self, linger_ms: int = 0) -> None:
        if self._closed:
            return
        self._closed = True
        if linger_ms > 0:  # let a final Leave go out
            deadline = self.clock() + linger_ms / 1000
            for link in self._out.values():
                link.seal_turn()
                if link.sock is not None and link.buf:
                    link.sock.setblocking(True)
                    link.sock.settimeout(max(0.0, deadline - self.clock()))
                    with contextlib.suppress(OSError):
                        link.sock.sendall(link.buf)
        for link in self._out.values():
            if link.sock is not None:
                link.sock.close()
        for conn in self._in.values():
            conn.sock.close()
        self.listener.close()

    # ------------------------------------------------------------------------------ outbound
    def _connect(self, link: _Outbound, now: float) -> None:
        peer = link.peer
        family = socket.AF_INET6 if ":" in peer.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            _tune(sock, self._timeout_ms)
            err = sock.connect_ex((peer.host, peer.data_port))
        except OSError as exc:
            sock.close()
            self._retry(link, now, str(exc))
            return
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._retry(link, now, errno.errorcode.get(err, str(err)))
            return
        self.counters["connects"] += 1
        link.sock = sock
        link.connect_started = now
        link.up = False
        link.buf.clear()
        link.plain.clear()
        link.tls = None
        link.writing = True
        self._out_by_fd[sock.fileno()] = link
        assert self._readiness is not None
        self._readiness.watch(sock.fileno(), READ | WRITE)

    def _retry(self, link: _Outbound, now: float, why: str) -> None:
        link.retry_at = now + random.uniform(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self._warn(link.peer.name, "connect", "cannot reach peer", peer=link.peer.name, error=why)

    def _on_outbound(self, link: _Outbound, mask: int) -> None:
        sock = link.sock
        if sock is None:
            return
        if not link.up and link.tls is None:
            if not mask & WRITE and not mask & READ:
                return
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._drop(link, errno.errorcode.get(err, str(err)))
                return
            if self._security is None:
                self._link_up(link)
                return
            link.tls = self._security.channel(server_side=False)
            link.tls.start()  # up once the peer proved it holds the certificate we pinned
            link.buf += link.tls.take_out()
            self._write(link)
            return
        if mask & READ:  # peers never write app data on our link: TLS handshake, or its end
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                data = b""
                mask &= ~READ
            except OSError as exc:
                self._drop(link, str(exc))
                return
            if mask & READ and not data:
                self._drop(link, "closed by peer")
                return
            if data and link.tls is not None:
                self._outbound_tls(link, data)  # writes (or drops the link) itself
                return
        if mask & WRITE:
            self._write(link)

    def _outbound_tls(self, link: _Outbound, data: bytes) -> None:
        """The peer's handshake bytes: answer them, and once the peer is proven, the link is up."""
        tls = link.tls
        assert tls is not None and self._security is not None
        was_established = tls.established
        try:
            tls.feed(data)
        except ssl.SSLError as exc:
            self.counters["tls_failed"] += 1
            self._drop(link, f"TLS: {exc.reason or exc}")
            return
        link.buf += tls.take_out()
        if tls.established and not was_established:
            who = self._security.name_of(tls)
            if who != link.peer.name:  # a configured daemon, but not the one we dialled
                self.counters["tls_failed"] += 1
                self._drop(link, f"TLS: the certificate is {who}'s, not {link.peer.name}'s")
                return
            self._link_up(link)
        else:
            self._write(link)

    def _link_up(self, link: _Outbound) -> None:
        link.up = True
        queue = link.buf if link.tls is None else link.plain
        queue[:0] = self._hello  # the hello goes first, before any frame
        self._write(link)

    def _write(self, link: _Outbound) -> None:
        sock = link.sock
        if sock is None:
            return
        link.seal_turn()
        if link.buf:
            try:
                sent = sock.send(link.buf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._drop(link, str(exc))
                return
            self.counters["writes"] += 1
            self.counters["bytes_out"] += sent
            del link.buf[:sent]
        want_write = bool(link.buf)
        if want_write != link.writing:
            link.writing = want_write
            assert self._readiness is not None
            self._readiness.watch(sock.fileno(), READ | WRITE if want_write else READ)

    def _drop(self, link: _Outbound, why: str) -> None:
        sock = link.sock
        if sock is not None:
            self._out_by_fd.pop(sock.fileno(), None)
            if self._readiness is not None:
                self._readiness.unwatch(sock.fileno())
            sock.close()
        was_up = link.up
        link.sock = None
        link.up = False
        link.writing = False
        link.buf.clear()
        link.plain.clear()
        link.tls = None
        self._dirty.discard(link)
        now = self.clock()
        link.retry_at = now + random.uniform(RECONNECT_MIN_S, RECONNECT_MAX_S)
        if was_up:
            self.log.info("link_down", peer=link.peer.name, reason=why)
        else:
            self._warn(
                link.peer.name, "connect", "cannot reach peer", peer=link.peer.name, error=why
            )

    # ------------------------------------------------------------------------------- inbound
    def _accept(self) -> None:
        assert self._readiness is not None
        for _ in range(16):
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: keep running; the listener rests
                self._warn("*", "accept", "cannot accept", error=str(exc))
                self._readiness.rest(self.listener.fileno(), ACCEPT_PAUSE_S)
                return
            if len(self._in) >= MAX_INBOUND_PER_PEER * max(1, len(self.others)):
                # Room for a peer's reconnect: the oldest link that has not said who it is goes
                # first (strangers holding every slot would otherwise lock the peers out).
                self.counters["inbound_refused"] += 1
                self._warn("*", "inbound", "too many inbound links, closing one")
                strangers = [c for c in self._in.values() if c.name is None]
                if not strangers:
                    sock.close()
                    continue
                self._close_inbound(min(strangers, key=lambda c: c.opened))
            try:
                _tune(sock, self._timeout_ms)
            except OSError:
                sock.close()
                continue
            tls = None if self._security is None else self._security.channel(server_side=True)
            self._in[sock.fileno()] = _Inbound(sock, self.clock(), tls)
            self._readiness.watch(sock.fileno())

    def _read(self, conn: _Inbound, out: list[Frame]) -> int:
        """Read once from ``conn``; append its frames to ``out``; the messages read."""
        try:
            n = conn.sock.recv_into(self._rbuf)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            n = 0
        if not n:
            self._close_inbound(conn)
            return 0
        view = memoryview(self._rbuf)[:n]
        data: bytes | memoryview = view
        if conn.tls is not None:
            data = self._inbound_tls(conn, view)
            if not data:
                return 0
        try:
            records = conn.reader.feed(data)
        except WireError as exc:
            self._bad(conn.name or "?", "oversized record", str(exc))
            self._close_inbound(conn)
            return 0
        used = 0
        for rec in records:
            name = conn.name
            if name is None:
                if not self._on_hello(conn, rec):
                    return used
                continue
            stats = self.peer[name]
            if rec[:1] != KIND_FRAME:
                stats.bad += 1
                self._bad(name, "malformed", "unknown record kind")
                continue
            if conn.refused:
                stats.refused += 1
                self.counters["frames_refused"] += 1
                continue
            if name in self._blocked:
                stats.dropped_in += 1
                continue
            try:
                frame = decode_frame(rec[1:])
            except WireError as exc:
                stats.bad += 1
                self._bad(name, "undecodable frame", str(exc))
                continue
            if origin(frame) != name:  # AUTH-1: a peer speaks only for itself
                stats.forged += 1
                self.counters["frames_forged"] += 1
                self._warn(
                    name,
                    "forged",
                    "frame of another origin refused",
                    peer=name,
                    origin=origin(frame)[:80],
                    frame=type(frame).__name__,
                )
                continue
            stats.frames_in += 1
            self.counters["frames_received"] += 1
            out.append(frame)
            used += len(frame.msgs) if type(frame) is Data else 1
        return used

    def _inbound_tls(self, conn: _Inbound, data: memoryview) -> bytes:
        """Decrypt what ``conn`` sent; b"" while the handshake runs or if the link closed."""
        tls = conn.tls
        assert tls is not None and self._security is not None
        try:
            plain = tls.feed(data)
        except ssl.SSLError as exc:
            if conn.authenticated is None:
                self.counters["tls_failed"] += 1
                self.counters["inbound_refused"] += 1
                self._warn("?", "tls", "TLS handshake refused", error=str(exc.reason or exc)[:200])
            else:
                self._bad(conn.authenticated, "TLS error", str(exc.reason or exc))
            self._close_inbound(conn)
            return b""
        out = tls.take_out()
        if out and not self._send_handshake(conn, out):
            return b""
        if tls.established and conn.authenticated is None:
            who = self._security.name_of(tls)
            if who is None:  # cannot happen: the context trusts only the pinned certificates
                self.counters["tls_failed"] += 1
                self._close_inbound(conn)
                return b""
            conn.authenticated = who
        return plain

    def _send_handshake(self, conn: _Inbound, data: bytes) -> bool:
        """Our half of an inbound handshake (a few KiB; what the kernel does not take waits for
        EPOLLOUT). False if the link was closed."""
        conn.wire += data
        try:
            sent = conn.sock.send(conn.wire) if conn.wire else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close_inbound(conn)
            return False
        del conn.wire[:sent]
        assert self._readiness is not None
        self._readiness.watch(conn.sock.fileno(), READ | WRITE if conn.wire else READ)
        return True

    def _on_hello(self, conn: _Inbound, rec: bytes) -> bool:
        """Check the first record of an inbound link; False if the link was closed."""
        try:
            if rec[:1] != KIND_HELLO:
                raise ValueError("the first record is not a hello")
            hello = json.loads(rec[1:])
            name = hello["name"]
            theirs = hello["settings"]
            if not isinstance(name, str) or not isinstance(theirs, dict):
                raise ValueError("bad hello")
            their_fp = fingerprint_hash(tuple(sorted((str(k), v) for k, v in theirs.items())))
        except (ValueError, TypeError, KeyError, RecursionError):  # RecursionError: [[[[... JSON
            self.counters["inbound_refused"] += 1
            self._bad("?", "malformed hello", "")
            self._close_inbound(conn)
            return False
        stats = self.peer.get(name)
        if stats is None:
            self.counters["frames_unknown"] += 1
            self.counters["inbound_refused"] += 1
            self._warn("?", "unknown", "link from an unknown peer", peer=name[:80])
            self._close_inbound(conn)
            return False
        if conn.tls is not None and name != conn.authenticated:
            self.counters["frames_forged"] += 1
            self.counters["inbound_refused"] += 1
            self._warn(
                str(conn.authenticated),
                "forged_hello",
                "hello names another peer than the certificate",
                peer=conn.authenticated,
                claims=name,
            )
            self._close_inbound(conn)
            return False
        stats.hellos += 1
        for other in list(self._in.values()):  # a peer's new link replaces its old one
            if other is not conn and other.name == name:
                self._close_inbound(other)
        conn.name = name
        conn.refused = their_fp != self.fp
        if conn.refused:
            self._peer_log.refused(name, their_fp, self.settings, theirs)
        out = self._out.get(name)
        if out is not None and out.sock is None:
            # The peer is back (a restart): link to it at the next tick, not at the next retry
            # up to RECONNECT_MAX_S away. Until our link is up our frames to it are dropped,
            # and a merge we start on its first Status would miss it (our Propose) while it
            # waits, then proposes without us to the peers it does hear: a split of the
            # survivors (tests/netlan/test_lan_epgm.py, a daemon killed and restarted).
            out.retry_at = self.clock()
        return True

    def _close_inbound(self, conn: _Inbound) -> None:
        fd = conn.sock.fileno()
        self._in.pop(fd, None)
        if self._readiness is not None:
            self._readiness.unwatch(fd)
        conn.sock.close()

    def _bad(self, peer: str, what: str, error: str) -> None:
        self.counters["frames_bad"] += 1
        self._warn(peer, "bad", what, peer=peer, error=error[:200])
