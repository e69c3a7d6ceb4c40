"""The groupcomm side of the catch-up measurement, written against the replay API that issue 14
is adding: ``Connection.join(group, since=position)`` and ``Message.position``.

Until the client has both, ``replay_problem()`` says what is missing and the command skips the
groupcomm catch-up with that message (the Redis Streams catch-up runs regardless). Once they
exist nothing here needs to change: the away consumer keeps the ``position`` of the last line it
delivered, closes its connection, and later resumes with ``join(TOPIC, since=position)``; the
lines the daemon then replays go through the same ``ConsumerTally`` as live ones, so gaps (lines
the replay did not have) and duplicates (a replay that starts at, rather than after, the
position) are counted either way.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from groupcomm.client.connection import Connection
from groupcomm.client.events import Message

SINCE = "since"  # the keyword of Connection.join
POSITION = "position"  # the field of Message


def replay_problem() -> str | None:
    """``None`` if the client library can resume from a position, else what is missing."""
    if SINCE not in inspect.signature(Connection.join).parameters:
        return (
            f"Connection.join has no `{SINCE}` parameter yet (replay from a position, "
            "issue 14, is not in the client API)"
        )
    if not hasattr(Message, POSITION):
        return f"Message has no `{POSITION}` field yet"
    return None


def position_of(message: Message) -> Any:
    """The position of a delivered message (an opaque value to hand back to ``join``)."""
    return getattr(message, POSITION)


async def join_since(conn: Connection, group: str, position: Any) -> int:
    """``conn.join(group, since=position)``, called through the signature checked above."""
    join: Callable[..., Awaitable[int]] = conn.join
    return await join(group, **{SINCE: position})
