"""Fan-out: how one frame reaches every other daemon with a single send.

The transport (``groupcomm.daemon.transport``) sends a frame meant for every other peer through a
``Fanout`` and everything else (NAK answers, repairs, Propose/Flush/Install, data while a link is
blocked) point to point over its TCP control mesh. Two fan-outs exist:

- ``TcpFanout``: a PUB bound on ``tcp://host:data_port`` and a SUB connected to every other
  peer's data port. The frame is copied N-1 times onto the loopback/LAN by ZeroMQ.
- ``EpgmFanout``: a PUB and a SUB on one PGM multicast group (``epgm://iface;group:port``, PGM
  encapsulated in UDP). The frame leaves the host once whatever the cluster size. PGM repairs
  what it can from its transmit window (``recovery_ms``); everything else (a receiver that fell
  behind the window, a late joiner, a restarted daemon) is repaired by the protocol's own NAKs,
  which travel over TCP, so nothing is lost (SVC-REL).

Both hand the transport the same four parts ``[kind, sender, fingerprint hash, frame]``.
"""

from __future__ import annotations

from typing import Any, Protocol

import zmq

from groupcomm.config import DaemonConfig, EpgmConfig
from groupcomm.daemon.zmqrecv import recv_parts
from groupcomm.wire.peer import DEFAULT_MAX_FRAME_SIZE

PUB_HWM = 20_000
SUB_HWM = 20_000
FP_LEN = 8
# Socket buffers for the PGM UDP sockets. The kernel caps them at net.core.{r,w}mem_max; a burst
# larger than the receive buffer is dropped by the kernel and must be recovered by PGM NAKs.
PGM_SOCKET_BUFFER = 8 << 20

PGM_MISSING = (
    'transport = "epgm" needs pyzmq built against a libzmq with OpenPGM, and this pyzmq has no '
    "PGM (zmq.has('pgm') is False). Install Debian's libzmq3-dev and rebuild pyzmq from source: "
    "apt-get install libzmq3-dev pkg-config && PYZMQ_NO_BUNDLE=1 pip install --no-binary pyzmq "
    '--force-reinstall pyzmq (scripts/setup.sh does both), or use transport = "tcp".'
)


class TransportUnavailable(RuntimeError):
    """The configured data plane cannot be built on this machine; the message says what to do."""


class Fanout(Protocol):
    """One send to every other daemon; receiving what the others fanned out."""

    socket: zmq.Socket[bytes]  # readable when ``recv`` has something
    description: str  # exchanged in the handshake: peers must use the same fan-out
    carries_control: bool  # False: only Data/Ordered frames go through it (see EpgmFanout)

    def send(self, parts: list[bytes]) -> int:
        """Send ``[kind, sender, fp, frame]`` to every other daemon; the bytes handed over."""
        ...

    def recv(self) -> list[bytes]:
        """One received message as ``[kind, sender, fp, frame]`` (maybe malformed: the transport
        validates); raises ``zmq.Again`` when there is none."""
        ...

    def close(self, linger_ms: int) -> None: ...


def make_fanout(config: DaemonConfig, ctx: zmq.Context[Any]) -> Fanout:
    if config.transport == "epgm":
        return EpgmFanout(config.epgm, ctx)
    return TcpFanout(config, ctx)  # transport = "zmq"


def link_timeout_ms(config: DaemonConfig) -> int:
    """How long a TCP link between daemons may hold unacknowledged data before it is dropped
    and reconnected: a link silent for a suspect timeout is dead for the protocol anyway."""
    return max(config.protocol.suspect_timeout_ms, 200)


def tcp_link_options(s: zmq.Socket[bytes], timeout_ms: int) -> zmq.Socket[bytes]:
    """Options of every TCP socket between daemons. Without TCP_MAXRT a link that was cut
    stays in TCP's retransmission backoff after it heals: after a two-second cable pull it
    stayed silent 1.2 s more, every merge attempt meanwhile timed out and the daemons installed
    six views where two do (L3, tests/netlan/test_lan_epgm.py). CONNECT_TIMEOUT keeps a SYN
    into a dead link from backing off the same way. The ZMTP heartbeat lets the side that only
    receives (a SUB) find out that the sender dropped the connection: without it the SUB kept
    its half-open connection after the heal and never heard that PUB again, so the views
    flapped (tests/netlan/test_lan_tcp.py)."""
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.TCP_KEEPALIVE, 1)
    s.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 30)
    s.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 10)
    s.setsockopt(zmq.TCP_MAXRT, timeout_ms)
    s.setsockopt(zmq.HEARTBEAT_IVL, max(timeout_ms // 4, 50))
    s.setsockopt(zmq.HEARTBEAT_TIMEOUT, timeout_ms)
    s.setsockopt(zmq.CONNECT_TIMEOUT, 250)
    # A restarted peer is reconnected within 50 ms, no backoff: with 100-250 ms the survivors'
    # Propose for the merge could miss it until it proposed without them, to the peers it did
    # hear (a split of the survivors, tests/netlan/test_lan_epgm.py, a daemon killed mid-stream
    # and restarted). A refused connect to a dead peer costs nothing to repeat.
    s.setsockopt(zmq.RECONNECT_IVL, 50)
    s.setsockopt(zmq.RECONNECT_IVL_MAX, 0)
    return s


class TcpFanout:
    """PUB/SUB mesh over TCP (see the module docstring)."""

    description = "tcp"
    carries_control = True

    def __init__(self, config: DaemonConfig, ctx: zmq.Context[Any]) -> None:
        timeout_ms = link_timeout_ms(config)
        self.pub: zmq.Socket[bytes] = tcp_link_options(ctx.socket(zmq.PUB), timeout_ms)
        self.pub.setsockopt(zmq.SNDHWM, PUB_HWM)
        self.socket = tcp_link_options(ctx.socket(zmq.SUB), timeout_ms)
        try:
            self.pub.bind(config.me.data_endpoint)
            self.socket.setsockopt(zmq.RCVHWM, SUB_HWM)
            self.socket.setsockopt(zmq.MAXMSGSIZE, DEFAULT_MAX_FRAME_SIZE + 4096)
            self.socket.setsockopt(zmq.SUBSCRIBE, b"")
            for p in config.peers:
                if p.name != config.name:
                    self.socket.connect(p.data_endpoint)
        except zmq.ZMQError:
            self.close(0)
            raise

    def send(self, parts: list[bytes]) -> int:
        # PUB drops silently at its high-water mark (never Again); the protocol repairs loss.
        data = parts[-1]
        self.pub.send_multipart(parts, zmq.NOBLOCK, copy=len(data) < 65536)
        return sum(len(p) for p in parts)

    def recv(self) -> list[bytes]:
        return recv_parts(self.socket)

    def close(self, linger_ms: int) -> None:
        self.pub.close(linger=linger_ms)
        self.socket.close(linger=linger_ms)


class EpgmFanout:
    """PGM multicast over UDP (see the module docstring).

    Messages are single-part ``kind + u16 len(sender) + sender + fp + frame``: a PGM receiver that
    joins mid-stream (late joiner, restart, unrecoverable loss) starts at the next message
    boundary it sees, which could be the middle of a multipart message; one part per message
    means it never sees a torn one.

    Only data and ordering frames use it (``carries_control`` is False): PGM's in-order delivery
    makes a lost packet hold back the packets after it until repaired, and heartbeats or a
    view-change round stuck behind that would make daemons suspect each other. A frame held
    back here is usually repaired sooner by the protocol's NAK over TCP."""

    carries_control = False

    def __init__(self, epgm: EpgmConfig, ctx: zmq.Context[Any]) -> None:
        if not zmq.has("pgm"):
            raise TransportUnavailable(PGM_MISSING)
        self.description = f"epgm {epgm.group}:{epgm.port} rate_kbps={epgm.rate_kbps}"
        self.pub = self._pgm(ctx.socket(zmq.PUB), epgm)
        self.pub.setsockopt(zmq.SNDHWM, PUB_HWM)
        self.pub.setsockopt(zmq.SNDBUF, PGM_SOCKET_BUFFER)
        self.socket = self._pgm(ctx.socket(zmq.SUB), epgm)
        try:
            # No receive high-water mark: libzmq 4.3.4's PGM receiver aborts the whole process
            # (errno assertion in pgm_receiver.cpp) when its pipe is full. What a receiver can
            # hold is bounded by the protocol's flow-control window instead (window_bytes).
            self.socket.setsockopt(zmq.RCVHWM, 0)
            self.socket.setsockopt(zmq.RCVBUF, PGM_SOCKET_BUFFER)
            self.socket.setsockopt(zmq.MAXMSGSIZE, DEFAULT_MAX_FRAME_SIZE + 4096)
            self.socket.setsockopt(zmq.SUBSCRIBE, b"")
            self.pub.connect(epgm.endpoint)
            self.socket.connect(epgm.endpoint)
        except zmq.ZMQError:
            self.close(0)
            raise

    @staticmethod
    def _pgm(s: zmq.Socket[bytes], epgm: EpgmConfig) -> zmq.Socket[bytes]:
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RATE, epgm.rate_kbps)  # libzmq default: 100 kbit/s
        s.setsockopt(zmq.RECOVERY_IVL, epgm.recovery_ms)  # libzmq default: 10 s
        s.setsockopt(zmq.MULTICAST_HOPS, 1)  # the LAN only
        return s

    def send(self, parts: list[bytes]) -> int:
        kind, sender, fp, data = parts
        blob = b"".join((kind, len(sender).to_bytes(2, "big"), sender, fp, data))
        self.pub.send(blob, zmq.NOBLOCK, copy=len(blob) < 65536)
        return len(blob)

    def recv(self) -> list[bytes]:
        return split_single_part(self.socket.recv(zmq.NOBLOCK))

    def close(self, linger_ms: int) -> None:
        self.pub.close(linger=linger_ms)
        self.socket.close(linger=linger_ms)


def split_single_part(blob: bytes) -> list[bytes]:
    """``kind + u16 len(sender) + sender + fp + frame`` -> ``[kind, sender, fp, frame]``; a
    message too short to hold its header comes back as one part (the transport counts it bad)."""
    if len(blob) < 3:
        return [blob]
    n = int.from_bytes(blob[1:3], "big")
    end = 3 + n + FP_LEN
    if len(blob) < end:
        return [blob]
    return [blob[:1], blob[3 : 3 + n], blob[3 + n : end], blob[end:]]
