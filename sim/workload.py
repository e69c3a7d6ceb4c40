"""Simulated client connections: open, join, leave, multicast at every service level, close.

Owns connection naming and the random choice of operations; it talks to daemons only through
core events, exactly as the real session layer does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from groupcomm.core.events import (
    Event,
    JoinRequested,
    LeaveRequested,
    MulticastRequested,
    SessionClosed,
    SessionOpened,
)
from groupcomm.core.service import SELF_DISCARD, Service
from sim.runner import SimDaemon, Simulation

SERVICES = tuple(int(s) for s in Service)


@dataclass(slots=True)
class Conn:
    name: str
    daemon: str
    incarnation: int
    joined: set[str] = field(default_factory=set)
    open: bool = True


class Workload:
    def __init__(self, sim: Simulation, stop_ms: int) -> None:
        self.sim = sim
        self.opt = sim.opt
        self.rng = random.Random(f"workload-{sim.opt.seed}")
        self.stop_ms = stop_ms
        self.conns: list[Conn] = []
        self.serial = 0
        self.groups = [f"g{i + 1}" for i in range(self.opt.groups)]

    def open_clients(self, daemon: SimDaemon) -> None:
        for _ in range(self.opt.clients_per_daemon):
            self.open_conn(daemon)

    def open_conn(self, daemon: SimDaemon) -> None:
        self.serial += 1
        conn = Conn(f"#c{self.serial}#{daemon.name}", daemon.name, daemon.incarnation)
        self.conns.append(conn)
        self.sim.feed(daemon, SessionOpened(conn=conn.name))
        first = self.rng.choice(self.groups)
        self._send(conn, JoinRequested(conn=conn.name, group=first))
        conn.joined.add(first)
        self._schedule(conn)

    def _schedule(self, conn: Conn) -> None:
        gap = int(self.rng.expovariate(self.opt.rate_per_client / 1000.0)) + 1
        when = self.sim.now + gap
        if when < self.stop_ms:
            self.sim.at(when, lambda: self._act(conn))

    def _daemon(self, conn: Conn) -> SimDaemon | None:
        daemon = self.sim.daemons.get(conn.daemon)
        if daemon is None or not daemon.alive or daemon.incarnation != conn.incarnation:
            return None
        return daemon

    def _send(self, conn: Conn, event: Event) -> None:
        daemon = self._daemon(conn)
        if daemon is not None:
            self.sim.feed(daemon, event)

    def _act(self, conn: Conn) -> None:
        daemon = self._daemon(conn)
        if daemon is None or not conn.open:
            return
        rng = self.rng
        roll = rng.random()
        if self.opt.churn and roll < 0.02:
            conn.open = False
            self.sim.feed(daemon, SessionClosed(conn=conn.name))
            self.sim.at(self.sim.now + rng.randint(10, 300), lambda: self._reopen(conn))
            return
        if self.opt.churn and 0.02 <= roll < 0.12:
            group = rng.choice(self.groups)
            if group in conn.joined:
                conn.joined.discard(group)
                self.sim.feed(daemon, LeaveRequested(conn=conn.name, group=group))
            else:
                conn.joined.add(group)
                self.sim.feed(daemon, JoinRequested(conn=conn.name, group=group))
        elif 0.12 <= roll < 0.13:
            self.sim.feed(daemon, JoinRequested(conn=conn.name, group=conn.name))  # SP-PRIV
        else:
            self.sim.feed(daemon, self._multicast(conn))
        self._schedule(conn)

    def _reopen(self, conn: Conn) -> None:
        daemon = self._daemon(conn)
        if daemon is not None and self.sim.now < self.stop_ms:
            self.open_conn(daemon)

    def _multicast(self, conn: Conn) -> MulticastRequested:
        rng = self.rng
        count = 1 if rng.random() < 0.8 else rng.randint(2, len(self.groups) + 1)
        groups = rng.sample(self.groups, min(count, len(self.groups)))
        if rng.random() < 0.05:
            peers = [c.name for c in self.conns if c.open]
            groups = [rng.choice(peers)]  # a private-name send (SP-PRIV)
        service = rng.choice(SERVICES)
        if rng.random() < 0.1:
            service |= SELF_DISCARD
        payload = bytes(rng.randrange(256) for _ in range(rng.randint(0, 24)))
        return MulticastRequested(
            conn=conn.name,
            groups=tuple(groups),
            service=service,
            msg_type=rng.randrange(100),
            payload=payload,
        )
