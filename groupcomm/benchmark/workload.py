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
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from groupcomm.core.config import MAX_MESSAGE_BYTES_LIMIT

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
# ... and at most this much payload per call: a batch is built whole before the call, and the
# library's send window (1 MiB) would cut a larger one into requests of this size anyway. From
# 1 MiB on a flooding sender sends one message per call, and has one message in flight.
FLOOD_BATCH_BYTES = 1 << 20
MEMBER_GC = ("tuned", "default")  # --member-gc: what the member processes do with the GC
# A member stays up until this long after the window's end even when it has everything: the
# harness samples every process's CPU at the window's end, and a light run's members finish
# within milliseconds of it, so on a busy machine a harness that woke a little late found them
# gone and failed the run ("the members finished before the window ended", seen in CI).
WINDOW_END_SLACK_S = 0.3
# Large messages (>= 1 MiB): every message is a latency sample (there are few), and the default
# drain grows with what may still be in flight when the senders stop (see ``default_drain``).
LARGE_MESSAGE = 1 << 20
DRAIN_S = 5.0  # the default --drain for smaller messages
DRAIN_BYTES_PER_S = 10e6  # a pessimistic delivery rate for large messages on a loaded host
# The daemons' default [protocol] max_message_bytes (groupcomm.config.ProtocolConfig, checked
# by a test): a larger --size raises it for the run.
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20


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
    # --kind lat: False (the peer kit's schedule): every sender's message i is due at the same
    # instant, so the group's messages come in bursts of one per sender; True: sender k's
    # schedule is shifted by k / senders of its interval, so they come evenly spaced.
    stagger: bool = False

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
        if self.stagger and self.kind != "lat":
            raise ValueError("stagger applies to kind lat only (flooding senders have no schedule)")

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

    def phase(self, spec: MemberSpec) -> float:
        """The fraction of its interval by which ``spec`` 's schedule is shifted: 0 unless
        ``stagger``, then its place among the senders over their number."""
        if not (self.stagger and spec.send):
            return 0.0
        senders = [m.id for m in self.members() if m.send]
        return senders.index(spec.id) / len(senders)

    def lat_stride(self) -> int:
        return 1 if self.kind == "lat" or self.size >= LARGE_MESSAGE else TPUT_LAT_STRIDE

    def flood_batch(self) -> int:
        """Messages per ``multicast_many`` call of a flooding groupcomm sender: ``batch``, but
        at most ``FLOOD_BATCH_BYTES`` of payload (at least one message)."""
        return min(self.batch, max(1, FLOOD_BATCH_BYTES // self.size))

    def send_batch(self, system: str) -> int:
        """Messages per send call a sender of ``system`` actually makes: ``flood_batch`` for a
        flooding groupcomm sender, else 1 (paced sends, and the baseline's one message per
        frame)."""
        return self.flood_batch() if system == "groupcomm" and self.kind == "tput" else 1


# The zmq baseline's flow control (``zmq_member``): a sender stays at most this many messages
# ahead of its slowest receiver (the peer kit's 20,000), and at most this many bytes: at 100 kB
# per message 20,000 messages would be 2 GB queued per sender. Large messages: at least
# ``ZMQ_WINDOW_MIN`` messages (two, so the next is on its way while one is read: at 64 MiB
# 128 MiB per sender), far below the HWM (100,000 messages), so PUB never drops.
ZMQ_WINDOW_MSGS = 20_000
ZMQ_WINDOW_BYTES = 32 << 20
ZMQ_WINDOW_MIN = 2
ZMQ_ACK_EVERY = 256


def zmq_window(size: int) -> tuple[int, int]:
    """The baseline's ``(window, ack_every)`` for ``size``-byte messages: the kit's 20,000 and
    256 up to 1,677 bytes, then ``ZMQ_WINDOW_BYTES`` worth of messages (at least
    ``ZMQ_WINDOW_MIN``), with a progress ack every quarter window at most, so the sender never
    waits for a whole window."""
    window = max(ZMQ_WINDOW_MIN, min(ZMQ_WINDOW_MSGS, ZMQ_WINDOW_BYTES // max(1, size)))
    return window, max(1, min(ZMQ_ACK_EVERY, window // 4))


def default_drain(size: int, senders: int) -> float:
    """The default ``--drain``: ``DRAIN_S``, or for large messages long enough to deliver two
    messages per sender (what may be in flight when the senders stop: one in its daemon, one on
    its way) at ``DRAIN_BYTES_PER_S``. Receivers stop as soon as they have everything, so a
    long drain costs time only when messages are lost."""
    if size < LARGE_MESSAGE:
        return DRAIN_S
    return max(DRAIN_S, float(math.ceil(2 * senders * size / DRAIN_BYTES_PER_S)))


# ----------------------------------------------------------------------- sizes and limits

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"100"``, ``"16384"``, ``"1MiB"``, ``"64 MiB"``, ``"1.5MiB"``, ``"100kB"`` -> bytes.
    Binary units (KiB, MiB, GiB) and decimal ones (kB, MB, GB), any case; bare K/M/G are
    refused as ambiguous. ``ValueError`` names what is wrong."""
    m = _SIZE.fullmatch(text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        hint = " (say KiB/MiB/GiB for 1024-based or kB/MB/GB for 1000-based)" if m else ""
        raise ValueError(
            f"{text!r} is not a size: bytes, or a number with a unit, e.g. 1000, 1MiB, "
            f"16MiB, 100kB{hint}"
        )
    value = float(m.group(1)) * _UNITS[unit]
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


def format_size(size: int) -> str:
    """Bytes as the shortest exact form: ``67108864`` -> ``"64MiB"``, ``1000`` -> ``"1000"``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def daemon_protocol(size: int, protocol: Mapping[str, int]) -> dict[str, int]:
    """The daemons' ``[protocol]`` overrides for ``size``-byte messages: ``protocol`` (the
    ``--protocol`` settings), plus ``max_message_bytes = size`` when ``size`` exceeds the
    daemons' default (1 MiB) and ``protocol`` does not set it. ``ValueError`` when a given
    ``max_message_bytes`` is smaller than ``size``, or ``size`` is above what a daemon
    accepts."""
    out = dict(protocol)
    given = out.get("max_message_bytes")
    if given is not None:
        if given < size:
            raise ValueError(
                f"--size {size} is larger than --protocol max_message_bytes={given}: the daemons "
                f"would refuse every message (leave max_message_bytes out and the bench sets it)"
            )
        return out
    if size > MAX_MESSAGE_BYTES_LIMIT:
        raise ValueError(
            f"--size {size} is above the largest max_message_bytes a daemon accepts "
            f"({MAX_MESSAGE_BYTES_LIMIT})"
        )
    if size > DEFAULT_MAX_MESSAGE_BYTES:
        out["max_message_bytes"] = size
    return out


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
    phase: float  # paced: message i is due at start + (i + phase) / rate (Workload.stagger)
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


def paced_schedule(plan: MemberPlan, start_ns: int) -> tuple[int, float]:
    """A paced sender's schedule: when its message 0 is due, and the interval (ns) after
    which each next one is (message ``i`` at ``first + i * interval``)."""
    interval = 1e9 / plan.rate
    return start_ns + int(plan.phase * interval), interval


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
        phase=work.phase(spec),
        dur=work.dur,
        warm=work.warm,
        drain=work.drain,
        lat_stride=work.lat_stride(),
        batch=work.flood_batch(),
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
    parser.add_argument("--phase", type=float, default=0.0)
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
        phase=min(max(ns.phase, 0.0), 1.0),
        dur=ns.dur,
        warm=ns.warm,
        drain=ns.drain,
        lat_stride=max(1, ns.lat_stride),
        batch=max(1, ns.batch),
        gc=ns.gc,
        out=ns.out,
    )
