"""The seam between the daemon driver and a client front-end.

The driver owns the event loop, the peer transport, the timer and the ``Node``. A front-end owns
client connections and speaks one client protocol (the native one in ``frontend.py``; the Spread
toolkit's in ``spreadfrontend.py``, beside it through ``frontends.FrontEnds``). Both talk only in
core events and commands, so the session rules (flow control, slow consumers, validation) live
once, in the session layer both front-ends share.
"""

from __future__ import annotations

from typing import Protocol

from groupcomm.core.commands import (
    CloseSession,
    Credit,
    DeliverMembership,
    DeliverMessage,
    RejectRequest,
)
from groupcomm.core.events import Event
from groupcomm.daemon.readiness import Readiness

SessionCommand = DeliverMessage | DeliverMembership | RejectRequest | CloseSession | Credit


class FrontEnd(Protocol):
    def attach(self, readiness: Readiness) -> None:
        """Watch the front-end's sockets in the driver's ``Readiness`` set."""
        ...

    def pending(self) -> bool:
        """Core events are waiting although no socket may be readable (call ``take_events``)."""
        ...

    def take_events(self, now_ms: int, limit: int) -> list[Event]:
        """Read the client requests ready at the last wait (about ``limit`` at most) without
        blocking, as core events."""
        ...

    def execute(self, command: SessionCommand) -> None:
        """Apply one session command (buffered; see ``flush``)."""
        ...

    def flush(self) -> None:
        """Send what ``execute`` buffered (one batch per client per driver turn)."""
        ...

    def lagging(self) -> bool:
        """Whether a client is behind consuming its deliveries (the core then holds back:
        ``BacklogChanged``)."""
        ...

    def admin_requests(self) -> list[tuple[str, list[str]]]:
        """Admin commands (``partition``/``heal``) received since the last call, for the driver."""
        ...

    def status_provider(self, provider: object) -> None:
        """The driver hands itself in so the front-end can answer ``status`` requests."""
        ...

    def close(self) -> None: ...
