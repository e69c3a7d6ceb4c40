"""Events: past-tense facts fed into ``Node.handle``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

from groupcomm.core.frames import Frame


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    """The daemon process started: begin heartbeats and discovery."""


class FrameReceived(NamedTuple):
    """A frame from a peer: one per frame, so a NamedTuple (cheaper to build than a frozen
    dataclass, immutable all the same)."""

    frame: Frame


@dataclass(slots=True, kw_only=True, init=False, unsafe_hash=True)
class TimerFired:
    # A written __init__ and Final fields instead of frozen=True: compiled natively
    # (groupcomm/core/frames.py's docstring says why).

    name: Final[str]

    def __init__(self, *, name: str) -> None:
        self.name = name


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionOpened:
    conn: str  # the connection's private name, "#<client>#<daemon>"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionClosed:
    conn: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinRequested:
    conn: str
    group: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaveRequested:
    conn: str
    group: str


class MulticastRequested(NamedTuple):
    """A client's multicast (one per message: a NamedTuple, immutable and cheaper to build
    than a frozen dataclass)."""

    conn: str
    groups: tuple[str, ...]
    service: int  # Service | optional SELF_DISCARD
    msg_type: int
    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class BacklogChanged:
    """A local client fell behind consuming its deliveries (``lagging``), or no client lags any
    more. While one lags the daemon delivers nothing and acknowledges receipt only of what it
    delivered: every sender's window fills, and the group slows to what the slowest client
    consumes instead of that client being closed as a slow consumer (protocol/ordering.md 7)."""

    lagging: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownRequested:
    """Clean shutdown: announce Leave so peers react at once (no timeout)."""


Event = (
    Started
    | FrameReceived
    | TimerFired
    | SessionOpened
    | SessionClosed
    | JoinRequested
    | LeaveRequested
    | MulticastRequested
    | BacklogChanged
    | ShutdownRequested
)
