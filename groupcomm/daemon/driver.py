"""The driver: the loop that runs one ``Node`` over a ``DataPlane`` and a ``FrontEnd``.

One turn: take the frames and client requests that were ready at the last wait (the transport
and the front-end read their own descriptors from the shared ``Readiness`` set, a bounded amount
each), add ``TimerFired("tick")`` when due, call ``node.handle_batch`` once, execute the
commands in order, then flush: one write per peer and per client with everything the turn
produced (``docs/performance.md`` "Transports"), and the trace.

Two ways to sleep when nothing is ready, with the same turns:

- ``run_blocking`` (the daemon process): ``epoll_wait`` until a descriptor is ready or the timer
  is due. One thread, no event loop: a wake-up through asyncio (selector, callback, future, task
  step) cost about a tenth of the daemon's CPU at 1,000 msg/s (docs/performance.md
  "Profiles").
- ``run`` (asyncio, for several drivers in one process, as some tests do): sleeps on the epoll
  descriptor itself (``loop.add_reader``), which is readable when any watched socket is.

Time for the core is ``time.monotonic`` in milliseconds; the trace uses wall-clock time.
``stop()`` (SIGTERM/SIGINT) feeds ``ShutdownRequested``: peers get a ``Leave`` and react at once;
then the transport lingers briefly so the ``Leave`` goes out, and ``run`` returns 0.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from typing import Any

import structlog

from groupcomm import compiled
from groupcomm.config import DaemonConfig, core_config
from groupcomm.core.commands import (
    CloseSession,
    Credit,
    DeliverMembership,
    DeliverMessage,
    Note,
    RejectRequest,
    SendFrame,
    SetTimer,
)
from groupcomm.core.events import (
    BacklogChanged,
    Event,
    FrameReceived,
    SessionClosed,
    SessionOpened,
    ShutdownRequested,
    Started,
    TimerFired,
)
from groupcomm.core.node import DRAIN, TICK, Node
from groupcomm.daemon.dataplanes import make_transport
from groupcomm.daemon.frontend_api import FrontEnd
from groupcomm.daemon.readiness import Readiness
from groupcomm.daemon.trace import TraceWriter
from groupcomm.daemon.transport import DataPlane

ROUND_NOTES = frozenset(
    (
        "suspect",
        "gather",
        "propose",
        "flush",
        "install",
        "install_timeout",
        "flush_timeout",
        "shutdown",
    )
)
WARNING_NOTES = frozenset(("frame_error", "install_rejected"))
SILENT_NOTES = frozenset(("send", "deliver"))  # per-message; traced, never logged
SHUTDOWN_LINGER_MS = 200
EARLY_FLUSH_COMMANDS = 1024  # a turn with more commands sends its peer frames before the rest


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class Driver:
    """Owns the Node, the timer, the transport and (optionally) a front-end."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        transport: DataPlane | None = None,
        frontend: FrontEnd | None = None,
        trace: TraceWriter | None = None,
        incarnation: int | None = None,
        batch: int = 256,
    ) -> None:
        tracing = trace is not None or bool(config.trace)
        self.config = config
        self.core = core_config(config, incarnation=incarnation, trace_messages=tracing)
        self.node = Node(self.core, random.Random())
        self.token = self.node.me
        self.transport: DataPlane = transport if transport is not None else make_transport(config)
        self.frontend = frontend
        self.trace = trace
        if self.trace is None and config.trace:
            self.trace = TraceWriter(config.trace, self.token)
        self.batch = batch
        self.log = structlog.get_logger("groupcomm.daemon").bind(d=self.token)
        self.timers: dict[str, int] = {}
        self.counters: dict[str, int] = {
            "turns": 0,
            "events": 0,
            "client_events": 0,
            "turn_max_ms": 0,  # the longest turn: a turn longer than heartbeat_ms delays ours
            "slow_turns": 0,  # turns longer than heartbeat_ms
            "holds": 0,  # times a lagging client made the core hold deliveries and acks
        }
        self._lagging = False
        self._slow_logged = 0.0
        self.view: dict[str, Any] = {"conf": "", "members": [self.token]}
        self.started_at = time.time()
        self._stop_requested = False
        self._stopped = False
        self._waiter: asyncio.Future[None] | None = None
        self.readiness = Readiness()
        self.transport.attach(self.readiness)
        if frontend is not None:
            frontend.attach(self.readiness)
            frontend.status_provider(self)

    # ---------------------------------------------------------------------------- public
    def stop(self) -> None:
        """Request a clean shutdown (safe to call from a signal handler via the loop)."""
        self._stop_requested = True
        self._wake()

    def status(self) -> dict[str, Any]:
        """Counters for the admin ``status`` request."""
        node = self.node
        return {
            "daemon": self.token,
            "uptime_s": round(time.time() - self.started_at, 3),
            "phase": node.phase,
            "view": str(node.view),
            "members": list(node.members),
            "messages": {
                "delivered": node.counters.get("delivered", 0),
                "retransmitted": node.counters.get("retransmitted", 0),
                "naks": node.counters.get("naks", 0),
                "frame_errors": node.counters.get("frame_errors", 0),
                # large messages (SVC-FRAG): dropped unfinished (cut by a view change, or out of
                # turn), and payload bytes held in unfinished ones now
                "fragments_dropped": node.frags.dropped,
                "fragments_buffered": node.frags.buffered,
            },
            "driver": dict(self.counters),
            "transport": self.transport.stats(),
            # the mypyc build of the hot path, or why this process runs the source
            "compiled": compiled.active(),
            "compiled_why_not": compiled.why_not(),
        }

    def partition(self, peers: list[str]) -> list[str]:
        return self.transport.block(peers)

    def heal(self) -> None:
        self.transport.heal()

    def run_blocking(self, *, install_signal_handlers: bool = True) -> int:
        """Run until stopped, sleeping in ``epoll_wait`` (the daemon process's loop).

        A signal interrupts the wait; Python runs the handler (``stop``) and resumes the wait
        with the time left, which is at most ``tick_ms`` once the node has started, so a stop
        is acted on within a tick."""
        previous: dict[signal.Signals, Any] = {}
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda _sig, _frame: self.stop())
        self._log_started()
        wait = self.readiness.wait
        try:
            self._turn([Started()])
            while not self._stopped:
                # Level-triggered: a socket left unread (a turn's budget) wakes us at once.
                wait(self._sleep_ms())
                self._step()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()
        self.log.info("daemon_stopped", **self.counters)
        return 0

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        """Run until stopped inside an asyncio loop (several drivers may share it)."""
        loop = asyncio.get_running_loop()
        fds = [self.readiness.fileno()]
        loop.add_reader(fds[0], self._wake)
        signals: list[signal.Signals] = []
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self.stop)
                    signals.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        self._log_started()
        try:
            self._turn([Started()])
            while not self._stopped:
                self.readiness.wait(0)
                if not self._step():
                    await self._sleep(loop)
        finally:
            for fd in fds:
                loop.remove_reader(fd)
            for sig in signals:
                loop.remove_signal_handler(sig)
            self.close()
        self.log.info("daemon_stopped", **self.counters)
        return 0

    def _log_started(self) -> None:
        self.log.info(
            "daemon_started",
            peers=list(self.config.peer_names),
            data=(
                self.config.epgm.endpoint
                if self.config.transport == "epgm"
                else self.config.me.data_endpoint
            ),
            control=self.config.me.control_endpoint,
            trace=self.config.trace or None,
            compiled=compiled.active() or compiled.why_not(),
        )

    def close(self) -> None:
        linger = SHUTDOWN_LINGER_MS if self._stopped else 0
        self.transport.close(linger)
        if self.frontend is not None:
            self.frontend.close()
        self.readiness.close()
        if self.trace is not None:
            self.trace.close()

    # ---------------------------------------------------------------------------- the loop
    def _step(self) -> bool:
        """One turn with what the last ``Readiness.wait`` found; False when the caller may
        sleep."""
        ready = bool(self.readiness.ready) or bool(self.readiness.zmq_ready())
        events: list[Event] = []
        if ready:
            # tuple.__new__: the NamedTuple's own __new__ is Python, interpreted even in the
            # compiled build, and this runs once per received frame.
            new = tuple.__new__
            events.extend(new(FrameReceived, (f,)) for f in self.transport.receive(self.batch))
        if self.frontend is not None:
            if ready or self.frontend.pending():
                client = self.frontend.take_events(monotonic_ms(), self.batch)
                self.counters["client_events"] += len(client)
                events.extend(client)
            for command, args in self.frontend.admin_requests():
                self._admin(command, args)
            lagging = self.frontend.lagging()
            if lagging != self._lagging:  # checked every turn and tick: at most tick_ms late
                self._lagging = lagging
                self.counters["holds"] += lagging
                events.append(BacklogChanged(lagging=lagging))
        now = monotonic_ms()
        due = self.timers.get(TICK)
        if due is not None and now >= due:
            del self.timers[TICK]
            events.append(TimerFired(name=TICK))
            self.transport.tick()
        if DRAIN in self.timers and now >= self.timers[DRAIN]:
            del self.timers[DRAIN]  # the core has more to deliver (after the backlog check)
            events.append(TimerFired(name=DRAIN))
        if self._stop_requested:
            self._stop_requested = False
            events.append(ShutdownRequested())
        if not events:
            self.transport.flush()  # a link that became writable, a connect that completed
            if self.frontend is not None:
                self.frontend.flush()
            return ready
        self._turn(events, now)
        self._time_turn(now, len(events))
        return True

    def _time_turn(self, started_ms: int, events: int) -> None:
        """Count long turns: while one runs no heartbeat goes out, and peers suspect us after
        ``suspect_timeout_ms`` (L2). Logged at most every 10 s, with the turn's size."""
        took = monotonic_ms() - started_ms
        if took > self.counters["turn_max_ms"]:
            self.counters["turn_max_ms"] = took
        if took > self.core.heartbeat_ms:
            self.counters["slow_turns"] += 1
            wall = time.monotonic()
            if wall - self._slow_logged >= 10.0:
                self._slow_logged = wall
                self.log.warning(
                    "slow_turn", ms=took, events=events, heartbeat_ms=self.core.heartbeat_ms
                )

    def _turn(self, events: list[Event], now: int | None = None) -> None:
        now = monotonic_ms() if now is None else now
        self.counters["turns"] += 1
        self.counters["events"] += len(events)
        trace = self.trace
        if trace is not None:
            for ev in events:
                if isinstance(ev, SessionOpened):
                    trace.opened(ev.conn)
                elif isinstance(ev, SessionClosed):
                    trace.closed(ev.conn)
        commands = self.node.handle_batch(now, events)
        frontend = self.frontend
        if len(commands) > EARLY_FLUSH_COMMANDS:
            # A turn with thousands of client commands (a view change over 10,000 groups
            # delivers 20,000 views) takes hundreds of ms to execute: let the peer frames it
            # produced first (the Install) leave before that, not after, or every other daemon
            # waits for our clients.
            for cmd in commands:
                if isinstance(cmd, SendFrame):
                    self.transport.send(cmd.targets, cmd.frame)
            self.transport.flush()
            commands = [cmd for cmd in commands if not isinstance(cmd, SendFrame)]
        for cmd in commands:
            if type(cmd) is DeliverMessage:  # by far the most frequent command
                if frontend is not None:
                    frontend.execute(cmd)
                if trace is not None:
                    trace.command(cmd)
            elif isinstance(cmd, SendFrame):
                self.transport.send(cmd.targets, cmd.frame)
            elif isinstance(cmd, SetTimer):
                self.timers[cmd.name] = cmd.at_ms
            elif isinstance(cmd, DeliverMembership | RejectRequest):
                if frontend is not None:
                    frontend.execute(cmd)
                if trace is not None:
                    trace.command(cmd)
            elif isinstance(cmd, CloseSession | Credit):
                if frontend is not None:
                    frontend.execute(cmd)
                if trace is not None and isinstance(cmd, CloseSession):
                    trace.command(cmd)
            elif isinstance(cmd, Note):
                self._note(cmd)
                if trace is not None:
                    trace.command(cmd)
        self.transport.flush()
        if frontend is not None:
            frontend.flush()
        if trace is not None:
            trace.flush()
        if self.node.stopped:
            self._stopped = True

    def _note(self, note: Note) -> None:
        event = note.event
        if event in SILENT_NOTES:
            return
        fields = {k: v for k, v in note.fields.items() if k != "d"}
        if event in ROUND_NOTES:
            if event == "install":
                self.view = {"conf": fields.get("conf"), "members": fields.get("members")}
            self.log.info(event, **fields)
        elif event in WARNING_NOTES:
            self.log.warning(event, **fields)
        else:
            self.log.debug(event, **fields)

    def _admin(self, command: str, args: list[str]) -> None:
        if command == "partition":
            blocked = self.partition(args)
            self.log.warning("admin_partition", blocked=blocked)
        elif command == "heal":
            self.heal()
            self.log.warning("admin_heal")
        else:
            self.log.warning("admin_unknown", command=command)

    # ---------------------------------------------------------------------------- sleeping
    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _sleep_ms(self) -> int:
        """How long the loop may sleep: until the tick is due (1 s before the first one), 0 when
        a stop is pending."""
        if self._stop_requested or (self.frontend is not None and self.frontend.pending()):
            return 0
        due = self.timers.get(TICK)
        drain = self.timers.get(DRAIN)
        if drain is not None:
            due = drain if due is None else min(due, drain)
        return 1000 if due is None else max(0, due - monotonic_ms())

    async def _sleep(self, loop: asyncio.AbstractEventLoop) -> None:
        timeout = self._sleep_ms()
        if timeout <= 0:
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        handle = loop.call_later(timeout / 1000, self._wake)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None
