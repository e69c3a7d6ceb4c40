"""Core throughput: 3 ``Node``s on a lossless in-memory network, AGREED messages, no I/O.

Every node has one client in group "g"; each round feeds ``--per-call`` multicasts to every node,
then delivers every frame waiting, in FIFO order with no latency. Reports AGREED messages
delivered per second per receiving node, two ways: against wall time (all nodes share this one
process, so this is a lower bound) and against the CPU time spent inside that node's
``handle_batch`` (what one daemon on its own core would do). ``--codec`` also runs every frame
through the msgpack codec (``groupcomm.wire.peer``). Unlike ``groupcomm bench`` it starts no
processes and opens no sockets: it measures the protocol core alone.

    python -m groupcomm.benchmark.corebench [--messages 150000] [--size 100] [--per-call 100]
                                            [--codec] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from dataclasses import asdict, dataclass

from groupcomm.core.commands import Command, DeliverMessage, SendFrame, SetTimer
from groupcomm.core.config import CoreConfig
from groupcomm.core.events import (
    Event,
    FrameReceived,
    JoinRequested,
    MulticastRequested,
    SessionOpened,
    Started,
    TimerFired,
)
from groupcomm.core.frames import Frame
from groupcomm.core.node import DRAIN, Node
from groupcomm.core.service import Service

NAMES = ("d1", "d2", "d3")


class Bench:
    def __init__(self, size: int, codec: bool, per_call: int) -> None:
        self.nodes = {
            n: Node(
                CoreConfig(
                    name=n, incarnation=0, peers=NAMES, window_msgs=20_000, window_bytes=64 << 20
                )
            )
            for n in NAMES
        }
        self.inbox: deque[tuple[str, Frame | bytes]] = deque()
        self.timers: dict[str, int] = {}
        self.drains: set[str] = set()  # nodes that asked to pump again (node.DRAIN)
        self.delivered = dict.fromkeys(NAMES, 0)
        self.cpu = dict.fromkeys(NAMES, 0.0)
        self.now = 0
        self.codec = codec
        self.per_call = per_call
        self.payload = b"x" * size
        if codec:
            from groupcomm.wire.peer import decode_frame, encode_frame

            self.encode, self.decode = encode_frame, decode_frame

    def feed(self, name: str, event: Event) -> None:
        self.feed_many(name, [event])

    def feed_many(self, name: str, events: list[Event]) -> None:
        started = time.process_time()
        commands = self.nodes[name].handle_batch(self.now, events)
        self.cpu[name] += time.process_time() - started
        self.execute(name, commands)

    def execute(self, name: str, commands: list[Command]) -> None:
        for cmd in commands:
            if isinstance(cmd, DeliverMessage):
                self.delivered[name] += 1
            elif isinstance(cmd, SendFrame):
                frame: Frame | bytes = self.encode(cmd.frame) if self.codec else cmd.frame
                for target in cmd.targets:
                    self.inbox.append((target, frame))
            elif isinstance(cmd, SetTimer):
                if cmd.name == DRAIN:
                    self.drains.add(name)  # more to deliver: drain() feeds it at once
                else:
                    self.timers[name] = cmd.at_ms

    def setup(self) -> None:
        for name in NAMES:
            self.feed(name, Started())
            self.feed(name, SessionOpened(conn=f"#c#{name}"))
            self.feed(name, JoinRequested(conn=f"#c#{name}", group="g"))
        for _ in range(200):  # let the three singletons merge into one view
            self.step_time(5)
        if not all(len(n.members) == len(NAMES) for n in self.nodes.values()):
            raise RuntimeError("the three nodes did not form one view")

    def step_time(self, ms: int) -> None:
        self.now += ms
        for name in NAMES:
            if self.timers.get(name, 1 << 60) <= self.now:
                self.feed(name, TimerFired(name="tick"))
        self.drain()

    def drain(self) -> None:
        # Like a daemon's event loop: each node takes every frame that is waiting, in one turn.
        inbox = self.inbox
        while inbox or self.drains:
            for name in sorted(self.drains):
                self.drains.discard(name)
                self.feed(name, TimerFired(name=DRAIN))
            ready: dict[str, list[Event]] = {}
            while inbox:
                target, frame = inbox.popleft()
                decoded = self.decode(frame) if isinstance(frame, bytes) else frame
                ready.setdefault(target, []).append(FrameReceived(frame=decoded))
            for target, events in ready.items():
                self.feed_many(target, events)

    def run(self, messages: int) -> tuple[float, int]:
        """Send ``messages`` (per node: messages // 3, rounded up to a multiple of per_call) and
        wait until every node has delivered all of them; return (wall seconds, messages sent)."""
        agreed = int(Service.AGREED)
        per_node = messages // len(NAMES)
        sent = 0
        base = dict(self.delivered)
        started = time.perf_counter()
        while sent < per_node:
            for name in NAMES:
                request = MulticastRequested(
                    conn=f"#c#{name}",
                    groups=("g",),
                    service=agreed,
                    msg_type=0,
                    payload=self.payload,
                )
                self.feed_many(name, [request] * self.per_call)
            sent += self.per_call
            self.drain()
            if sent % 2000 < self.per_call:
                self.step_time(1)
        while min(self.delivered[n] - base[n] for n in NAMES) < sent * len(NAMES):
            self.step_time(1)
        return time.perf_counter() - started, sent * len(NAMES)


@dataclass(frozen=True)
class NodeResult:
    """One receiving node's share of a measurement."""

    node: str
    delivered: int  # AGREED messages delivered to the node's client during the measurement
    cpu_s: float  # CPU time spent inside the node's handle_batch during the measurement
    per_s_wall: float  # delivered / wall time of the whole measurement
    per_s_cpu: float  # delivered / cpu_s


@dataclass(frozen=True)
class CoreResult:
    messages: int  # multicasts sent in total (a multiple of 3 x per_call, see Bench.run)
    size: int
    per_call: int
    codec: bool
    wall_s: float
    nodes: tuple[NodeResult, ...]


def measure(messages: int, size: int = 100, codec: bool = False, per_call: int = 100) -> CoreResult:
    """Form the 3-node view, then send about ``messages`` AGREED multicasts (``Bench.run``) and
    wait until every node has delivered all of them."""
    if messages < len(NAMES) or size < 0 or per_call < 1:
        raise ValueError("--messages must be at least 3, --per-call at least 1, --size at least 0")
    bench = Bench(size, codec, per_call)
    bench.setup()
    base_cpu = dict(bench.cpu)
    base_delivered = dict(bench.delivered)
    wall, sent = bench.run(messages)
    rows = []
    for name in NAMES:
        done = bench.delivered[name] - base_delivered[name]
        cpu = bench.cpu[name] - base_cpu[name]
        rows.append(NodeResult(name, done, cpu, done / wall, done / cpu if cpu > 0 else 0.0))
    return CoreResult(sent, size, per_call, codec, wall, tuple(rows))


def table(result: CoreResult) -> str:
    lines = [
        f"core AGREED, 3 nodes, {result.size} B, {result.messages} messages, codec={result.codec}",
        f"{'node':6s} {'delivered':>10s} {'per s (wall)':>14s} {'per s (node CPU)':>18s}",
    ]
    lines += [
        f"{r.node:6s} {r.delivered:10d} {r.per_s_wall:14,.0f} {r.per_s_cpu:18,.0f}"
        for r in result.nodes
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m groupcomm.benchmark.corebench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=150_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument(
        "--per-call",
        type=int,
        default=100,
        help="multicasts fed between network drains (client-side batching)",
    )
    parser.add_argument(
        "--codec", action="store_true", help="encode and decode every frame with msgpack"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    ns = parser.parse_args(argv)
    try:
        result = measure(ns.messages, ns.size, ns.codec, ns.per_call)
    except ValueError as e:
        parser.error(str(e))
    print(json.dumps(asdict(result)) if ns.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
