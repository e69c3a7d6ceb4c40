"""Several client protocols over one session layer: ``FrontEnds``, a ``frontend_api.FrontEnd``.

Native and Spread clients must share groups (one total order, the same views), so they share
one ``SessionLayer``: one namespace of private names, one set of flow-control and access rules,
one queue of core events. Each protocol is a ``ProtocolPart``: it reads its own links and calls
the layer, and encodes the notices of the sessions it owns. This module owns the turn around
them: read every part, release parked multicasts, hand the core the layer's events; after the
commands, apply the time rules once and route each session's notices to the part that owns it.
``NativeFrontEnd`` alone runs the same turn with itself as the only part.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from groupcomm.core.events import Event
from groupcomm.daemon.frontend_api import SessionCommand
from groupcomm.daemon.readiness import Readiness
from groupcomm.daemon.sessions import Notice, SessionLayer

EXPIRE_EVERY_MS = 1000


class ProtocolPart(Protocol):
    def attach(self, readiness: Readiness) -> None: ...

    def read(self, now_ms: int, limit: int) -> None:
        """Handle the requests ready at the last wait (about ``limit``), calling the layer."""
        ...

    def wants_turn(self) -> bool:
        """Input is waiting although no socket may be readable (held back, now allowed)."""
        ...

    def owns(self, conn: str) -> bool: ...

    def deliver(self, conn: str, notices: list[Notice]) -> None:
        """Encode one session's notices of this turn, in order."""
        ...

    def flush_output(self) -> None: ...

    def expire_links(self) -> None:
        """Close links whose handshake never completed (called about once a second)."""
        ...

    def admin_requests(self) -> list[tuple[str, list[str]]]: ...

    def status_provider(self, provider: object) -> None: ...

    def close(self) -> None: ...


def take_events(
    layer: SessionLayer, parts: Sequence[ProtocolPart], now_ms: int, limit: int
) -> list[Event]:
    for part in parts:
        part.read(now_ms, limit)
    layer.release_parked()  # a consumed report may have ended a local consumer's lag
    return layer.take_events()


def flush(
    layer: SessionLayer, parts: Sequence[ProtocolPart], now_ms: int, last_expire_ms: int
) -> int:
    """Apply the time rules, route the turn's notices, write; returns when it last expired."""
    if now_ms - last_expire_ms >= EXPIRE_EVERY_MS:
        last_expire_ms = now_ms
        layer.expire(now_ms)
        for part in parts:
            part.expire_links()  # TLS handshakes that never completed
    elif layer.behind():  # every turn: a lagging session stops the whole cluster
        layer.check_lagging(now_ms)
    layer.pump()  # replays and waiting deliveries, as far as each client keeps up
    per_conn: dict[str, list[Notice]] = {}
    for notice in layer.take_notices():
        per_conn.setdefault(notice.conn, []).append(notice)
    for conn, notices in per_conn.items():
        for part in parts:
            if part.owns(conn):
                part.deliver(conn, notices)
                break
    for part in parts:
        part.flush_output()
    return last_expire_ms


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class FrontEnds:
    """Several ``ProtocolPart`` s sharing ``layer``; implements ``frontend_api.FrontEnd``."""

    def __init__(
        self,
        layer: SessionLayer,
        parts: Sequence[ProtocolPart],
        clock: Callable[[], int] = _monotonic_ms,
    ) -> None:
        self.layer = layer
        self.parts = list(parts)
        self._clock = clock
        self._last_expire = clock()

    def attach(self, readiness: Readiness) -> None:
        for part in self.parts:
            part.attach(readiness)

    def pending(self) -> bool:
        return self.layer.has_events() or any(p.wants_turn() for p in self.parts)

    def take_events(self, now_ms: int, limit: int) -> list[Event]:
        return take_events(self.layer, self.parts, self._clock(), limit)

    def execute(self, command: SessionCommand) -> None:
        self.layer.apply(command)

    def flush(self) -> None:
        self._last_expire = flush(self.layer, self.parts, self._clock(), self._last_expire)

    def lagging(self) -> bool:
        return self.layer.lagging()

    def admin_requests(self) -> list[tuple[str, list[str]]]:
        return [request for part in self.parts for request in part.admin_requests()]

    def status_provider(self, provider: object) -> None:
        for part in self.parts:
            part.status_provider(provider)

    def close(self) -> None:
        for part in self.parts:
            part.close()
