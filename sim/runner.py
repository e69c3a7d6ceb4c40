"""The deterministic simulation: real ``Node``s and codecs, simulated clock and network.

Owns the event queue, the network model (latency, loss, duplication, reordering, partitions,
pauses), daemon crash/restart, the observable trace, and the counters only the runner can see
(frames and bytes sent, repairs, when each daemon's view change began) that ``sim.metrics``
adds to what it reads from the trace. The workload and the fault schedule live in ``workload``
and ``faults``; the checkers in ``sim.checkers``.

The network model: a frame from ``src`` to ``dst`` is dropped when the directed link is in
``blocked`` (the static cuts: partitions and their shapes, asymmetric and link cuts) or in
``layer_blocked`` (the union of the timed cuts' layers: flaps, swizzles), else lost with the
global ``loss`` and then with the link's own ``link_loss``; it arrives after the random latency
plus the link's ``link_delay``. Each daemon may have a host clock (``Clock``: an offset and a
rate); a daemon without one reads simulated time. With no timed cut, link fault or clock, the
model draws exactly the random numbers it always drew, so seeds keep their traces.
"""

from __future__ import annotations

import heapq
import json
import math
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
from groupcomm.core.frames import Frame, origin
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


class _Encoded:
    """A frame as it crossed the wire, decoded by its first receiver and shared with the
    others: frames are immutable, and one decode per send instead of per receiver was a fifth
    of a 20-daemon run's CPU (every daemon's Status goes to every other)."""

    __slots__ = ("_frame", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._frame: Frame | None = None

    def frame(self) -> Frame:
        if self._frame is None:
            self._frame = decode_frame(self.data)
        return self._frame


@dataclass(slots=True)
class SimDaemon:
    name: str
    incarnation: int
    node: Node
    alive: bool = True
    paused_until: int = 0
    held: list[Event] = field(default_factory=list)  # events that arrived while paused
    timer_versions: dict[str, int] = field(default_factory=dict)
    timer_due: dict[str, int] = field(default_factory=dict)  # pending timer -> local ms

    @property
    def token(self) -> str:
        return make_token(self.name, self.incarnation)


@dataclass(slots=True)
class Clock:
    """A daemon's host clock: it reads ``base_local + rate * (t - base_t)`` (floored to a ms)
    at simulated time ``t``. It never runs backwards: a change jumps ahead or changes the
    rate from the current reading on. It survives restarts (it is the host's)."""

    base_t: int
    base_local: float
    rate: float

    def local(self, t: int) -> int:
        return math.floor(self.base_local + self.rate * (t - self.base_t))

    def sim_time(self, local_ms: int, now: int) -> int:
        """The first simulated ms, not before ``now``, at which this clock reads ``local_ms``."""
        t = max(now, self.base_t + math.ceil((local_ms - self.base_local) / self.rate))
        while self.local(t) < local_ms:
            t += 1
        while t > now and self.local(t - 1) >= local_ms:
            t -= 1
        return t


Pair = tuple[str, str]


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
        self.layers: dict[int, frozenset[Pair]] = {}  # timed cuts (flaps, swizzles) by fault
        self.layer_blocked: frozenset[Pair] = frozenset()  # their union
        self.degraded: dict[int, tuple[str, frozenset[Pair], float]] = {}  # slow/lossy links
        self.link_loss: dict[Pair, float] = {}
        self.link_delay: dict[Pair, int] = {}
        self.clocks: dict[str, Clock] = {}  # daemons whose host clock is not simulated time
        self.boot_clocks: set[str] = set()  # clocks set at boot by a clock fault at 0 ms
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
        if incarnation == 0 and name not in self.clocks:
            for plan in self.opt.faults:  # a clock fault at 0 ms is the host's clock from boot
                if plan.what == "clock" and plan.at_ms == 0 and plan.args[0] == name:
                    self.clocks[name] = Clock(0, int(plan.args[1]), float(plan.args[2]))
                    self.boot_clocks.add(name)
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
        now = self.local_now(daemon.name) if self.clocks else self.now
        self.execute(daemon, daemon.node.handle(now, event))

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
        daemon.timer_due[cmd.name] = cmd.at_ms
        self.at(self._timer_time(daemon.name, cmd.at_ms), self._timer(daemon, cmd.name, version))

    def _timer_time(self, name: str, local_ms: int) -> int:
        clock = self.clocks.get(name) if self.clocks else None
        return max(local_ms, self.now) if clock is None else clock.sim_time(local_ms, self.now)

    def _timer(self, daemon: SimDaemon, name: str, version: int) -> Callable[[], None]:
        incarnation = daemon.incarnation

        def fire() -> None:
            current = self.daemons[daemon.name]
            if current.incarnation != incarnation or daemon.timer_versions[name] != version:
                return
            due = daemon.timer_due.get(name)
            if due is None:  # fired already (a copy re-armed by a clock change)
                return
            if self.clocks and daemon.name in self.clocks and self.local_now(daemon.name) < due:
                self.at(self._timer_time(daemon.name, due), fire)  # the clock slowed down
                return
            del daemon.timer_due[name]
            self.feed(current, TimerFired(name=name))

        return fire

    # ----------------------------------------------------------------- clocks
    def local_now(self, name: str) -> int:
        """What daemon ``name``'s host clock reads now."""
        clock = self.clocks.get(name)
        return self.now if clock is None else clock.local(self.now)

    def set_clock(self, name: str, jump_ms: int, rate: float) -> None:
        """From now on daemon ``name``'s clock reads ``jump_ms`` ahead of its current reading
        and runs at ``rate``; its pending timers are re-armed for the new clock."""
        self.clocks[name] = Clock(self.now, self.local_now(name) + jump_ms, rate)
        daemon = self.daemons.get(name)
        if daemon is not None and daemon.alive:
            for timer, due in list(daemon.timer_due.items()):
                version = daemon.timer_versions[timer]
                self.at(self._timer_time(name, due), self._timer(daemon, timer, version))

    # ---------------------------------------------------------------- network
    def send(self, src: str, targets: tuple[str, ...], frame: Frame) -> None:
        if origin(frame) != src:  # AUTH-1: a live link would refuse it (protocol/frames.md)
            self.anomalies.append(
                f"{self.now} ms {src} sends a {type(frame).__name__} of {origin(frame)} (AUTH-1)"
            )
        payload: Frame | _Encoded = frame
        if self.opt.codec:
            try:
                data = encode_frame(frame)
            except WireError as exc:  # a frame the protocol cannot ship fails the run
                self.anomalies.append(
                    f"{self.now} ms {src} cannot encode {type(frame).__name__}: {exc}"
                )
                return
            self.frame_bytes += len(data) * len(targets)
            payload = _Encoded(data)
        rng = self.rng
        layered = self.layer_blocked
        link_loss = self.link_loss
        link_delay = self.link_delay
        for dst in targets:
            self.frames_sent += 1
            pair = (src, dst)
            if pair in self.blocked or (layered and pair in layered) or rng.random() < self.loss:
                continue
            if link_loss and pair in link_loss and rng.random() < link_loss[pair]:
                continue
            delay = link_delay.get(pair, 0) if link_delay else 0
            copies = 2 if rng.random() < self.opt.duplication else 1
            for _ in range(copies):
                self.at(self.now + self._latency() + delay, self._arrival(dst, payload))

    def set_layer(self, key: int, pairs: frozenset[Pair] | None) -> None:
        """Timed cut ``key`` now cuts ``pairs`` (directed; None: it ends)."""
        if pairs:
            self.layers[key] = pairs
        else:
            self.layers.pop(key, None)
        self.layer_blocked = frozenset().union(*self.layers.values())

    def set_degraded(self, key: int, kind: str, pairs: frozenset[Pair], value: float) -> None:
        """Link fault ``key`` (``slow``: ``value`` ms more latency, ``lossy``: ``value`` loss)
        on ``pairs`` (directed); ``value`` 0 ends it. Several on one link add their delays and
        combine their losses."""
        if value:
            self.degraded[key] = (kind, pairs, value)
        else:
            self.degraded.pop(key, None)
        delay: dict[Pair, int] = {}
        keep: dict[Pair, float] = {}
        for what, links, amount in self.degraded.values():
            for pair in links:
                if what == "slow":
                    delay[pair] = delay.get(pair, 0) + int(amount)
                else:
                    keep[pair] = keep.get(pair, 1.0) * (1.0 - amount)
        self.link_delay = delay
        self.link_loss = {pair: 1.0 - kept for pair, kept in keep.items()}

    def cut_problem(self) -> str:
        """Why the links cut now are not a transitive cut ('' if they are: the daemons fall
        into groups, connected within and cut between, every cut both ways)."""
        cut = self.blocked | self.layer_blocked
        for a, b in sorted(cut):
            if (b, a) not in cut:
                return f"one-way cut {a}->{b}"
        reach = {a: {b for b in self.names if (a, b) not in cut} for a in self.names}
        for a in self.names:
            for b in sorted(reach[a]):
                if reach[a] != reach[b]:
                    c = min(reach[a] ^ reach[b])
                    x, y = (a, b) if c in reach[a] else (b, a)
                    return f"{y}-{c} cut while both reach {x}"
        return ""

    def _latency(self) -> int:
        opt = self.opt
        latency = self.rng.randint(opt.latency_min_ms, opt.latency_max_ms)
        if opt.latency_tail and self.rng.random() < opt.latency_tail:
            latency *= 5  # a straggler: reorders frames on the same link
        return latency

    def _arrival(self, dst: str, payload: Frame | _Encoded) -> Callable[[], None]:
        def arrive() -> None:
            daemon = self.daemons.get(dst)
            if daemon is None or not daemon.alive:
                return
            frame = payload.frame() if isinstance(payload, _Encoded) else payload
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
