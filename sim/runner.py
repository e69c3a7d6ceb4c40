"""The deterministic simulation: real ``Node``s and codecs, simulated clock and network.

Owns the event queue, the network model (latency, loss, duplication, reordering, partitions,
pauses), daemon crash/restart, the observable trace, and the counters only the runner can see
(frames and bytes sent, repairs, when each daemon's view change began) that ``sim.metrics``
adds to what it reads from the trace. The workload and the fault schedule live in ``workload``
and ``faults``; the checkers in ``sim.checkers``.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from groupcomm.core.commands import (
    Command,
    DeliverMembership,
    DeliverMessage,
    Note,
    SendFrame,
    SetTimer,
)
from groupcomm.core.config import CoreConfig
from groupcomm.core.events import (
    Event,
    FrameReceived,
    SessionClosed,
    SessionOpened,
    Started,
    TimerFired,
)
from groupcomm.core.frames import Frame
from groupcomm.core.ids import make_token
from groupcomm.core.node import Node
from groupcomm.core.tracing import trace_event
from groupcomm.wire.errors import WireError
from groupcomm.wire.peer import decode_frame, encode_frame
from sim.metrics import RunnerCounters
from sim.options import SIM_SUSPECT_TIMEOUT_MS, SimOptions

__all__ = ["SIM_SUSPECT_TIMEOUT_MS", "SimDaemon", "Simulation"]

# Notes that a correct protocol never produces from correct peers: each one fails the run.
SUSPICIOUS_NOTES = frozenset(("frame_error", "install_rejected"))
# Notes that show a daemon has left normal operation for a view change (a round starts).
ROUND_NOTES = frozenset(("gather", "suspect", "propose", "flush"))


@dataclass(slots=True)
class SimDaemon:
    name: str
    incarnation: int
    node: Node
    alive: bool = True
    paused_until: int = 0
    held: list[Event] = field(default_factory=list)  # events that arrived while paused
    timer_versions: dict[str, int] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return make_token(self.name, self.incarnation)


class Simulation:
    def __init__(self, options: SimOptions) -> None:
        self.opt = options
        self.rng = random.Random(f"net-{options.seed}")
        self.now = 0
        self.queue: list[tuple[int, int, Callable[[], None]]] = []
        self.counter = 0
        self.names = [f"d{i + 1}" for i in range(options.daemons)]
        self.daemons: dict[str, SimDaemon] = {}
        self.blocked: set[tuple[str, str]] = set()  # (src, dst) pairs that drop everything
        self.loss = options.loss
        self.trace: list[dict[str, Any]] = []
        self.anomalies: list[str] = []
        self.frames_sent = 0
        self.frame_bytes = 0
        self.nodes: list[Node] = []  # every incarnation of every daemon (repair counters)
        self.round_started: dict[str, int] = {}  # daemon token -> its view change began at
        self.rounds: list[tuple[str, str, int]] = []  # (token, regular conf installed, began)
        self.on_deliver: Callable[[str, DeliverMessage], None] | None = None
        self.on_membership: Callable[[str, DeliverMembership], None] | None = None

    # --------------------------------------------------------------- schedule
    def at(self, t_ms: int, action: Callable[[], None]) -> None:
        self.counter += 1
        heapq.heappush(self.queue, (t_ms, self.counter, action))

    def run_until(self, t_ms: int) -> None:
        queue = self.queue
        while queue and queue[0][0] <= t_ms:
            t, _, action = heapq.heappop(queue)
            self.now = t
            action()
        self.now = t_ms

    def record(self, ev: str, **fields: Any) -> None:
        fields["t"] = self.now
        fields["ev"] = ev
        self.trace.append(fields)

    # ---------------------------------------------------------------- daemons
    def start_daemon(self, name: str, incarnation: int) -> SimDaemon:
        cfg = CoreConfig(
            name=name,
            incarnation=incarnation,
            peers=tuple(self.names),
            trace_messages=True,
            **self.opt.protocol(),
        )
        node = Node(cfg, random.Random(f"node-{self.opt.seed}-{name}-{incarnation}"))
        self.nodes.append(node)
        daemon = SimDaemon(name=name, incarnation=incarnation, node=node)
        self.daemons[name] = daemon
        self.feed(daemon, Started())
        return daemon

    def crash(self, name: str) -> None:
        daemon = self.daemons[name]
        if daemon.alive:
            daemon.alive = False
            self.record("crash", d=daemon.token)

    def feed(self, daemon: SimDaemon, event: Event) -> None:
        if not daemon.alive:
            return
        if daemon.paused_until > self.now:
            daemon.held.append(event)
            return
        # A connection opens and closes when its daemon handles the request (a paused daemon
        # handles it later), which is what the trace must show.
        if isinstance(event, SessionOpened):
            self.record("open", p=event.conn, d=daemon.token)
        elif isinstance(event, SessionClosed):
            self.record("close", p=event.conn, d=daemon.token)
        self.execute(daemon, daemon.node.handle(self.now, event))

    def resume(self, daemon: SimDaemon) -> None:
        held, daemon.held = daemon.held, []
        for event in held:
            self.feed(daemon, event)

    def execute(self, daemon: SimDaemon, commands: list[Command]) -> None:
        token = daemon.token
        for cmd in commands:
            if isinstance(cmd, SendFrame):
                self.send(daemon.name, cmd.targets, cmd.frame)
            elif isinstance(cmd, SetTimer):
                self._set_timer(daemon, cmd)
            else:
                event = trace_event(token, cmd)
                if event is not None:
                    self.trace.append({"t": self.now, **event})
                if isinstance(cmd, DeliverMessage) and self.on_deliver is not None:
                    self.on_deliver(daemon.name, cmd)
                elif isinstance(cmd, DeliverMembership) and self.on_membership is not None:
                    self.on_membership(daemon.name, cmd)
                elif isinstance(cmd, Note):
                    self._note(token, cmd)

    def _note(self, token: str, note: Note) -> None:
        if note.event in SUSPICIOUS_NOTES:
            self.anomalies.append(f"{self.now} ms {note.event} {note.fields}")
        elif note.event in ROUND_NOTES:
            self.round_started.setdefault(token, self.now)
        elif note.event == "install" and note.fields.get("kind") == "regular":
            began = self.round_started.pop(token, None)
            if began is not None:
                self.rounds.append((token, str(note.fields["conf"]), began))

    def _set_timer(self, daemon: SimDaemon, cmd: SetTimer) -> None:
        version = daemon.timer_versions.get(cmd.name, 0) + 1
        daemon.timer_versions[cmd.name] = version
        incarnation = daemon.incarnation

        def fire() -> None:
            current = self.daemons[daemon.name]
            if current.incarnation == incarnation and daemon.timer_versions[cmd.name] == version:
                self.feed(current, TimerFired(name=cmd.name))

        self.at(max(cmd.at_ms, self.now), fire)

    # ---------------------------------------------------------------- network
    def send(self, src: str, targets: tuple[str, ...], frame: Frame) -> None:
        payload: bytes | Frame = frame
        if self.opt.codec:
            try:
                data = encode_frame(frame)
            except WireError as exc:  # a frame the protocol cannot ship fails the run
                self.anomalies.append(
                    f"{self.now} ms {src} cannot encode {type(frame).__name__}: {exc}"
                )
                return
            self.frame_bytes += len(data) * len(targets)
            payload = data
        rng = self.rng
        for dst in targets:
            self.frames_sent += 1
            if (src, dst) in self.blocked or rng.random() < self.loss:
                continue
            copies = 2 if rng.random() < self.opt.duplication else 1
            for _ in range(copies):
                self.at(self.now + self._latency(), self._arrival(dst, payload))

    def _latency(self) -> int:
        opt = self.opt
        latency = self.rng.randint(opt.latency_min_ms, opt.latency_max_ms)
        if opt.latency_tail and self.rng.random() < opt.latency_tail:
            latency *= 5  # a straggler: reorders frames on the same link
        return latency

    def _arrival(self, dst: str, payload: bytes | Frame) -> Callable[[], None]:
        def arrive() -> None:
            daemon = self.daemons.get(dst)
            if daemon is None or not daemon.alive:
                return
            frame = decode_frame(payload) if isinstance(payload, bytes) else payload
            self.feed(daemon, FrameReceived(frame=frame))

        return arrive

    # ----------------------------------------------------------------- output
    def counters(self) -> RunnerCounters:
        """What only the runner knows, for ``sim.metrics``."""
        return RunnerCounters(
            frames_sent=self.frames_sent,
            frame_bytes=self.frame_bytes if self.opt.codec else None,
            naks=sum(node.counters["naks"] for node in self.nodes),
            retransmitted=sum(node.counters["retransmitted"] for node in self.nodes),
            rounds=tuple(self.rounds),
        )

    def trace_lines(self) -> list[str]:
        return [json.dumps(e, separators=(",", ":"), sort_keys=True) for e in self.trace]
