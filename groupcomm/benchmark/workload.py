"""The benchmark workload: parameters, member placement, message header and member arguments.

One definition shared by the orchestrator and by both kinds of member process, so that the
groupcomm members and the raw pyzmq baseline run exactly the same workload (that of the peer
kit in ``shared/peers``, README "Workload"):

- **all**: ``daemons`` members, member ``i`` on daemon ``i``; each sends and receives (it also
  delivers its own messages).
- **one**: one sender (member 0) on daemon 0 plus one receiver per daemon (members 1..N); the
  sender is not a receiver (it does not join the group: groups are open).
- every message starts with ``HEADER`` = ``u32 sender, u32 seq, u64 send time`` (little endian,
  CLOCK_MONOTONIC ns) followed by zero padding up to ``size`` bytes. ``seq == END_SEQ`` is a
  sender's end-of-stream marker; its time field then holds how many data messages it sent.
"""

from __future__ import annotations

import argparse
import dataclasses
import struct
from dataclasses import dataclass

HEADER = struct.Struct("<IIQ")
END_SEQ = 0xFFFFFFFF
MODES = ("all", "one")
KINDS = ("tput", "lat")
SERVICES = ("unreliable", "reliable", "fifo", "causal", "agreed", "safe")
GROUP = "bench"
TPUT_LAT_STRIDE = 64  # in throughput runs, every 64th message of a sender is a latency sample
# Messages per ``Connection.multicast_many`` call of a flooding groupcomm sender (``--batch``);
# 1 = one ``Connection.multicast`` per message, the one-message API (as CPG's one message per
# call). Paced senders (``--kind lat``) and the zmq baseline always send one message per call.
FLOOD_BATCH = 100
MEMBER_GC = ("tuned", "default")  # --member-gc: what the member processes do with the GC


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """One member process: its id (the header's sender field), its roles and its daemon."""

    id: int
    send: bool
    recv: bool
    node: int  # index of the daemon (0-based) it talks to


@dataclass(frozen=True, slots=True)
class Workload:
    """What one run does (the ``groupcomm bench`` options)."""

    mode: str = "all"
    size: int = 100
    service: str = "agreed"
    kind: str = "tput"
    daemons: int = 3
    dur: float = 7.0
    warm: float = 1.0
    drain: float = 5.0
    lat_rate: float = 1000.0
    batch: int = FLOOD_BATCH  # messages per send call of a flooding groupcomm sender
    member_gc: str = "tuned"  # the members call groupcomm.client.tune_gc ("default": they don't)

    def __post_init__(self) -> None:
        if self.mode not in MODES or self.kind not in KINDS or self.service not in SERVICES:
            raise ValueError(f"bad mode/kind/service: {self.mode}/{self.kind}/{self.service}")
        if self.size < HEADER.size:
            raise ValueError(f"size must be at least {HEADER.size} bytes (the header)")
        if self.daemons < 1 or not 0 <= self.warm < self.dur or self.drain < 0:
            raise ValueError("need daemons >= 1, 0 <= warm < dur, drain >= 0")
        if self.lat_rate <= 0:
            raise ValueError("lat_rate must be positive")
        if self.batch < 1:
            raise ValueError("batch must be at least 1")
        if self.member_gc not in MEMBER_GC:
            raise ValueError(f"member_gc must be one of {', '.join(MEMBER_GC)}")

    @property
    def window_s(self) -> float:
        return self.dur - self.warm

    def members(self) -> list[MemberSpec]:
        if self.mode == "all":
            return [MemberSpec(i, True, True, i) for i in range(self.daemons)]
        return [MemberSpec(0, True, False, 0)] + [
            MemberSpec(i + 1, False, True, i) for i in range(self.daemons)
        ]

    @property
    def senders(self) -> int:
        return sum(1 for m in self.members() if m.send)

    @property
    def receivers(self) -> int:
        return sum(1 for m in self.members() if m.recv)

    def rate_per_sender(self) -> float:
        """Messages/s each sender offers: 0 = flood (tput), else ``lat_rate`` split evenly."""
        return 0.0 if self.kind == "tput" else self.lat_rate / self.senders

    def lat_stride(self) -> int:
        return 1 if self.kind == "lat" else TPUT_LAT_STRIDE

    def send_batch(self, system: str) -> int:
        """Messages per send call a sender of ``system`` actually makes: ``batch`` for a
        flooding groupcomm sender, else 1 (paced sends, and the baseline's one message per
        frame)."""
        return self.batch if system == "groupcomm" and self.kind == "tput" else 1


# The zmq baseline's flow control (``zmq_member``): a sender stays at most this many messages
# ahead of its slowest receiver (the peer kit's 20,000), and at most this many bytes: at 100 kB
# per message 20,000 messages would be 2 GB queued per sender.
ZMQ_WINDOW_MSGS = 20_000
ZMQ_WINDOW_BYTES = 32 << 20
ZMQ_ACK_EVERY = 256


def zmq_window(size: int) -> tuple[int, int]:
    """The baseline's ``(window, ack_every)`` for ``size``-byte messages: the kit's 20,000 and
    256 up to 1,677 bytes, then ``ZMQ_WINDOW_BYTES`` worth of messages (at least 16), with a
    progress ack every quarter window at most, so the sender never waits for a whole window."""
    window = max(16, min(ZMQ_WINDOW_MSGS, ZMQ_WINDOW_BYTES // max(1, size)))
    return window, max(1, min(ZMQ_ACK_EVERY, window // 4))


def padding(size: int) -> bytes:
    return b"\0" * max(0, size - HEADER.size)


# ------------------------------------------------------------------- member command line


@dataclass(frozen=True, slots=True)
class MemberPlan:
    """Everything a member process needs, as parsed from its command line. The start time is
    not part of it: the orchestrator writes it to the member's stdin once every member is
    ready."""

    id: int
    send: bool
    recv: bool
    senders: int  # how many end markers a receiver waits for
    receivers: int  # the group size a receiver waits for before it reports ready
    size: int
    service: str
    rate: float  # msgs/s of this sender; 0 = flood
    dur: float
    warm: float
    drain: float
    lat_stride: int
    batch: int  # messages per multicast call when flooding (1: Connection.multicast)
    gc: str  # "tuned": call groupcomm.client.tune_gc at start-up; "default": leave the GC alone
    out: str  # result JSON path; the delivery order goes to ``out`` + ".keys"

    def to_argv(self) -> list[str]:
        argv: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            text = str(int(value)) if isinstance(value, bool) else str(value)
            argv += [f"--{f.name.replace('_', '-')}", text]
        return argv


def member_plan(spec: MemberSpec, work: Workload, out: str) -> MemberPlan:
    return MemberPlan(
        id=spec.id,
        send=spec.send,
        recv=spec.recv,
        senders=work.senders,
        receivers=work.receivers,
        size=work.size,
        service=work.service,
        rate=work.rate_per_sender() if spec.send else 0.0,
        dur=work.dur,
        warm=work.warm,
        drain=work.drain,
        lat_stride=work.lat_stride(),
        batch=work.batch,
        gc=work.member_gc,
        out=out,
    )


def add_member_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--send", type=int, choices=(0, 1), required=True)
    parser.add_argument("--recv", type=int, choices=(0, 1), required=True)
    parser.add_argument("--senders", type=int, required=True)
    parser.add_argument("--receivers", type=int, required=True)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--service", choices=SERVICES, default="agreed")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--dur", type=float, default=7.0)
    parser.add_argument("--warm", type=float, default=1.0)
    parser.add_argument("--drain", type=float, default=5.0)
    parser.add_argument("--lat-stride", type=int, default=1)
    parser.add_argument("--batch", type=int, default=FLOOD_BATCH)
    parser.add_argument("--gc", choices=MEMBER_GC, default="tuned")
    parser.add_argument("--out", required=True)


def plan_from_args(ns: argparse.Namespace) -> MemberPlan:
    return MemberPlan(
        id=ns.id,
        send=bool(ns.send),
        recv=bool(ns.recv),
        senders=ns.senders,
        receivers=ns.receivers,
        size=ns.size,
        service=ns.service,
        rate=ns.rate,
        dur=ns.dur,
        warm=ns.warm,
        drain=ns.drain,
        lat_stride=max(1, ns.lat_stride),
        batch=max(1, ns.batch),
        gc=ns.gc,
        out=ns.out,
    )
