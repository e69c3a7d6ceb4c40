"""The peer transport: how encoded frames travel between daemons.

The driver sees only ``DataPlane`` (send a frame to some daemons, receive ready frames, block and
heal links), so the core and the driver do not know which data plane runs
(``dataplanes.make_transport`` picks one). The default, plain TCP links, is
``tcplinks.TcpTransport``; this module has the protocol and ``ZmqTransport`` (``transport =
"zmq"`` and ``"epgm"``), which has two parts:

- **fan-out** (``groupcomm.daemon.fanout``): one send reaching every other configured peer —
  heartbeats, data and ordering in a full view, ``Leave``. Either a ZeroMQ PUB/SUB mesh over
  TCP (``transport = "zmq"``) or PGM multicast (``transport = "epgm"``), where a frame leaves
  the host once whatever the cluster size.
- **control mesh**: a ROUTER bound on ``control_port`` and one DEALER per peer connected to that
  peer's ROUTER (identity = own name), always TCP, for frames to some peers only (NAK answers and
  repairs, Propose, Flush, Install, data in a partial view or while a link is blocked).

Every message is ``[b"F", sender name, fingerprint hash, frame]`` or the handshake
``[b"H", sender name, JSON settings]`` (sent to every peer over the mesh every second). The
settings are the ``[protocol]`` table plus the fan-out's description, so a daemon on another data
plane or multicast group is refused by name like one with other timeouts. A frame whose
fingerprint hash is not ours is refused, and the hello tells which settings differ, logged once
per peer and fingerprint: ``refusing d2: suspect_timeout_ms 250 here, 500 there``.

Sends never block: on a full queue (``zmq.Again``) the frame is dropped and counted; the protocol
repairs loss. Undecodable frames, frames from unknown or refused peers are counted and logged at
most once per peer per minute; none of them is fatal.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import structlog
import zmq

from groupcomm.config import DaemonConfig, PeerConfig
from groupcomm.core.frames import Data, Frame, Ordered, origin
from groupcomm.daemon.fanout import Fanout, link_timeout_ms, make_fanout, tcp_link_options
from groupcomm.daemon.ratelimit import Warnings
from groupcomm.daemon.readiness import Readiness
from groupcomm.daemon.zmqrecv import recv_parts
from groupcomm.wire.errors import WireError
from groupcomm.wire.peer import (
    DEFAULT_MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    decode_frame,
    encode_frame,
)

KIND_FRAME = b"F"
KIND_HELLO = b"H"
HELLO_INTERVAL_S = 1.0
HELLO_RETRY_S = 0.05
LOG_INTERVAL_S = 60.0
MAX_REFUSED_REMEMBERED = 1024  # (peer, settings) pairs whose refusal was logged
DEALER_HWM = 2_000
ROUTER_HWM = 20_000
MAX_HELLO_BYTES = 4096


class DataPlane(Protocol):
    """What the driver needs from a peer transport. Frames in, frames out; never blocks."""

    def attach(self, readiness: Readiness) -> None:
        """Watch the transport's sockets in the driver's ``Readiness`` set (and start
        connecting)."""
        ...

    def send(self, targets: tuple[str, ...], frame: Frame) -> None:
        """Send ``frame`` to the named daemons; drop and count when a queue is full."""
        ...

    def receive(self, limit: int) -> list[Frame]:
        """Up to about ``limit`` valid frames from accepted peers, without blocking."""
        ...

    def flush(self) -> None:
        """Write what ``send`` queued during this driver turn (called once per turn)."""
        ...

    def tick(self) -> None:
        """Periodic housekeeping (the handshake); call on every protocol tick."""
        ...

    def block(self, peers: Iterable[str]) -> list[str]:
        """Fault injection: drop everything to and from these peers. Returns the blocked set."""
        ...

    def heal(self) -> None:
        """Undo every ``block``."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters: totals and per peer."""
        ...

    def close(self, linger_ms: int = 0) -> None:
        """Close the sockets, letting queued frames go out for up to ``linger_ms``."""
        ...


def fingerprint_hash(settings: tuple[tuple[str, int | str], ...]) -> bytes:
    blob = json.dumps(sorted(settings), separators=(",", ":")).encode()
    return hashlib.blake2b(blob, digest_size=8).digest()


def settings_diff(mine: dict[str, Any], theirs: dict[str, Any]) -> str:
    """``"suspect_timeout_ms 250 here, 500 there; tick_ms 10 here, missing there"``."""
    parts = []
    for key in sorted(set(mine) | set(theirs)):
        a = mine.get(key, "missing")
        b = theirs.get(key, "missing")
        if a != b:
            parts.append(f"{key} {a} here, {b} there")
    return "; ".join(parts)


class PeerLog:
    """What a transport logs about peers: a warning at most once per peer and kind per
    ``LOG_INTERVAL_S`` (a broken or hostile peer cannot flood the log), and a refusal for
    differing settings once per peer and settings."""

    def __init__(self, log: Any, clock: Callable[[], float]) -> None:
        self.log = log
        self.clock = clock
        self._warnings = Warnings(log, clock, interval_s=LOG_INTERVAL_S)
        self._refused: set[tuple[str, bytes]] = set()

    def warn(self, peer: str, what: str, message: str, /, **fields: Any) -> None:
        self._warnings.warning((peer, what), f"peer_{what}", msg=message, **fields)

    def refused(
        self, name: str, their_fp: bytes, mine: dict[str, Any], theirs: dict[str, Any]
    ) -> None:
        if (name, their_fp) in self._refused:
            return
        diff = settings_diff(mine, theirs)
        if len(self._refused) < MAX_REFUSED_REMEMBERED:
            self._refused.add((name, their_fp))
            self.log.error("peer_refused", peer=name, msg=f"refusing {name}: {diff}", differ=diff)
        else:  # hellos with ever new settings (a stranger): bounded memory, rate-limited lines
            self._warnings.warning(
                (name, "refused"), "peer_refused", peer=name, msg=f"refusing {name}: {diff}"
            )


class Blocklist:
    """Fault injection (admin ``partition``/``heal``): the peers whose traffic a transport drops,
    both ways."""

    def __init__(self, known: Iterable[str], log: Any) -> None:
        self.known = frozenset(known)
        self.log = log
        self._names: set[str] = set()

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __bool__(self) -> bool:
        return bool(self._names)

    def names(self) -> list[str]:
        return sorted(self._names)

    def block(self, peers: Iterable[str]) -> list[str]:
        for name in peers:
            if name in self.known:
                self._names.add(name)
            else:
                self.log.warning("block_unknown_peer", peer=name)
        self.log.info("link_blocked", blocked=self.names())
        return self.names()

    def heal(self) -> None:
        self._names.clear()
        self.log.info("link_healed")


@dataclass(slots=True)
class PeerStats:
    frames_in: int = 0
    frames_out: int = 0
    dropped_out: int = 0  # send queue full, or link blocked
    dropped_in: int = 0  # link blocked
    bytes_out: int = 0  # bytes handed to the mesh (fan-out bytes are counted once, in totals)
    bad: int = 0  # undecodable
    refused: int = 0  # protocol settings differ
    forged: int = 0  # frames whose origin is not this peer (AUTH-1)
    hellos: int = 0


class ZmqTransport:
    """TCP PUB/SUB data plane plus a ROUTER/DEALER control mesh (see the module docstring)."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = config.name
        self.me = config.me
        self._name_b = config.name.encode()
        self.others: tuple[str, ...] = tuple(sorted(p for p in config.peer_names if p != self.name))
        self._others_set = frozenset(self.others)
        self.clock = clock
        self.log = structlog.get_logger("groupcomm.transport").bind(d=self.name)
        self._own_ctx = context is None
        self.ctx: zmq.Context[zmq.Socket[bytes]] = context if context is not None else zmq.Context()
        self.peer: dict[str, PeerStats] = {n: PeerStats() for n in self.others}
        self.counters: dict[str, int] = {
            "frames_sent": 0,
            "frames_dropped": 0,
            "frames_received": 0,
            "frames_bad": 0,
            "frames_refused": 0,
            "frames_unknown": 0,
            "frames_forged": 0,  # frames whose origin is not the sending peer (AUTH-1)
            "encode_errors": 0,
            "bytes_fanout": 0,  # bytes handed to the fan-out (one copy per send)
            "bytes_mesh": 0,  # bytes handed to the TCP control mesh
            "own_echo": 0,  # our own multicast looped back (ignored)
        }
        self._blocked = Blocklist(self.others, self.log)
        self._peer_log = PeerLog(self.log, clock)
        self._warn = self._peer_log.warn
        self._their_settings: dict[str, dict[str, Any]] = {}
        self._hello_due: dict[str, float] = {}
        self._closed = False
        self._link_timeout_ms = link_timeout_ms(config)

        self.fanout: Fanout = make_fanout(config, self.ctx)
        self.sub = self.fanout.socket
        # A reliable multicast (PGM) delivers a source's packets in order, so one lost packet
        # holds back everything after it until PGM repairs it (hundreds of ms at 5-20 % loss).
        # Heartbeats and the view-change round must not wait behind that or daemons suspect each
        # other (L2): over epgm only Data and Ordered use the fan-out; the rest goes over TCP.
        self._fanout_all = self.fanout.carries_control
        settings: dict[str, int | str] = dict(config.protocol.fingerprint())
        settings["data_plane"] = self.fanout.description
        # Daemons of another frame layout are refused by name, not met with undecodable frames.
        settings["frame_version"] = PROTOCOL_VERSION
        self.settings: dict[str, Any] = settings
        self.fp = fingerprint_hash(tuple(sorted(settings.items())))
        self._hello = [KIND_HELLO, self._name_b, json.dumps(self.settings).encode()]
        self.dealers: dict[str, zmq.Socket[bytes]] = {}
        try:
            self.router = self._socket(zmq.ROUTER)
            self.router.setsockopt(zmq.RCVHWM, ROUTER_HWM)
            self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
            self.router.setsockopt(zmq.MAXMSGSIZE, DEFAULT_MAX_FRAME_SIZE + 4096)
            self.router.bind(self.me.control_endpoint)
            for p in config.peers:
                if p.name != self.name:
                    self.dealers[p.name] = self._dealer(p)
        except zmq.ZMQError:
            self.fanout.close(0)
            raise

    def _socket(self, kind: int) -> zmq.Socket[bytes]:
        return tcp_link_options(self.ctx.socket(kind), self._link_timeout_ms)

    def _dealer(self, peer: PeerConfig) -> zmq.Socket[bytes]:
        s = self._socket(zmq.DEALER)
        s.setsockopt(zmq.IDENTITY, self._name_b)
        s.setsockopt(zmq.SNDHWM, DEALER_HWM)
        s.setsockopt(zmq.IMMEDIATE, 1)  # queue only on live connections: no stale bursts
        s.connect(peer.control_endpoint)
        return s

    # ------------------------------------------------------------------------------ DataPlane
    def attach(self, readiness: Readiness) -> None:
        readiness.watch_zmq(self.sub)
        readiness.watch_zmq(self.router)

    def flush(self) -> None:
        """ZeroMQ sends at once (its I/O thread batches)."""

    def send(self, targets: tuple[str, ...], frame: Frame) -> None:
        try:
            data = encode_frame(frame)
        except WireError as exc:
            self.counters["encode_errors"] += 1
            self._warn("*", "encode", "cannot encode frame", error=str(exc))
            return
        parts = [KIND_FRAME, self._name_b, self.fp, data]
        if (
            not self._blocked
            and (self._fanout_all or isinstance(frame, Data | Ordered))
            and (
                targets == self.others
                or (len(targets) == len(self.others) and set(targets) == self._others_set)
            )
        ):
            # Every other peer: one fan-out send (drops silently at its HWM, never Again).
            self.counters["bytes_fanout"] += self.fanout.send(parts)
            self.counters["frames_sent"] += len(self.others)
            for name in self.others:
                self.peer[name].frames_out += 1
            return
        for name in targets:
            stats = self.peer.get(name)
            if stats is None:
                continue
            if name in self._blocked:
                stats.dropped_out += 1
                self.counters["frames_dropped"] += 1
                continue
            try:
                self.dealers[name].send_multipart(parts, zmq.NOBLOCK, copy=len(data) < 65536)
            except zmq.Again:
                stats.dropped_out += 1
                self.counters["frames_dropped"] += 1
            else:
                size = len(data) + len(self._name_b) + 9
                stats.frames_out += 1
                stats.bytes_out += size
                self.counters["frames_sent"] += 1
                self.counters["bytes_mesh"] += size

    def receive(self, limit: int) -> list[Frame]:
        """Up to ``limit`` frames, and at most ``limit * 4`` messages inside data frames: one
        data frame carries up to hundreds of messages, and a turn must stay short enough for
        our heartbeats to go out on time (L2; the driver counts ``slow_turns``)."""
        out: list[Frame] = []
        per_socket = max(1, limit // 2)
        budget = limit * 4
        for _ in range(per_socket):
            try:
                parts = self.fanout.recv()
            except zmq.Again:
                break
            frame = self._accept(parts)
            if frame is not None:
                out.append(frame)
                budget -= len(frame.msgs) if type(frame) is Data else 1
                if budget <= 0:
                    return out
        for _ in range(per_socket):
            try:
                parts = recv_parts(self.router)
            except zmq.Again:
                break
            frame = self._accept(parts[1:])
            if frame is not None:
                out.append(frame)
                budget -= len(frame.msgs) if type(frame) is Data else 1
                if budget <= 0:
                    return out
        return out

    def tick(self) -> None:
        now = self.clock()
        for name, dealer in self.dealers.items():
            if name in self._blocked or now < self._hello_due.get(name, 0.0):
                continue
            try:
                dealer.send_multipart(self._hello, zmq.NOBLOCK)
            except zmq.Again:  # not connected yet: retry soon
                self._hello_due[name] = now + HELLO_RETRY_S
            else:
                self._hello_due[name] = now + HELLO_INTERVAL_S

    def block(self, peers: Iterable[str]) -> list[str]:
        return self._blocked.block(peers)

    def heal(self) -> None:
        self._blocked.heal()
        self._hello_due.clear()

    def blocked(self) -> list[str]:
        return self._blocked.names()

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "data_plane": self.fanout.description,
            "blocked": self._blocked.names(),
            "peers": {name: asdict(s) for name, s in sorted(self.peer.items())},
        }

    def close(self, linger_ms: int = 0) -> None:
        if self._closed:
            return
        self._closed = True
        self.fanout.close(linger_ms)
        for s in (self.router, *self.dealers.values()):
            s.close(linger=linger_ms)
        if self._own_ctx:
            self.ctx.term()

    # ------------------------------------------------------------------------------ receiving
    def _accept(self, parts: list[bytes]) -> Frame | None:
        """Validate one received multipart message; the frame if it is to be handled."""
        if len(parts) < 3 or parts[0] not in (KIND_FRAME, KIND_HELLO):
            self.counters["frames_bad"] += 1
            self._warn("?", "malformed", "malformed peer message", parts=len(parts))
            return None
        try:
            name = parts[1].decode()
        except UnicodeDecodeError:
            name = "?"
        stats = self.peer.get(name)
        if stats is None:
            if name == self.name:  # multicast looped back to its sender
                self.counters["own_echo"] += 1
                return None
            self.counters["frames_unknown"] += 1
            self._warn("?", "unknown", "message from an unknown peer", peer=name[:80])
            return None
        if name in self._blocked:
            stats.dropped_in += 1
            return None
        if parts[0] == KIND_HELLO:
            self._on_hello(name, stats, parts)
            return None
        if len(parts) != 4:
            stats.bad += 1
            self.counters["frames_bad"] += 1
            self._warn(name, "malformed", "malformed peer message", peer=name, parts=len(parts))
            return None
        if parts[2] != self.fp:
            stats.refused += 1
            self.counters["frames_refused"] += 1
            if name not in self._their_settings:
                self._warn(
                    name,
                    "mismatch",
                    f"refusing {name}: protocol settings differ (details after its hello)",
                    peer=name,
                )
            return None
        try:
            frame = decode_frame(parts[3])
        except WireError as exc:
            stats.bad += 1
            self.counters["frames_bad"] += 1
            self._warn(name, "bad", "undecodable frame", peer=name, error=str(exc)[:200])
            return None
        if origin(frame) != name:  # AUTH-1 (the name is claimed here, not authenticated)
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
            return None
        stats.frames_in += 1
        self.counters["frames_received"] += 1
        return frame

    def _on_hello(self, name: str, stats: PeerStats, parts: list[bytes]) -> None:
        stats.hellos += 1
        try:
            if len(parts) != 3 or len(parts[2]) > MAX_HELLO_BYTES:
                raise ValueError("bad hello")
            theirs = json.loads(parts[2])
            if not isinstance(theirs, dict):
                raise ValueError("bad hello")
            their_fp = fingerprint_hash(tuple(sorted((str(k), v) for k, v in theirs.items())))
        except (ValueError, TypeError, RecursionError):  # RecursionError: deeply nested JSON
            stats.bad += 1
            self.counters["frames_bad"] += 1
            self._warn(name, "bad", "malformed hello", peer=name)
            return
        previous = self._their_settings.get(name)
        self._their_settings[name] = theirs
        if their_fp == self.fp:
            if previous is not None and previous != self.settings:
                self.log.info("peer_accepted", peer=name, reason="protocol settings now agree")
            return
        self._peer_log.refused(name, their_fp, self.settings, theirs)
