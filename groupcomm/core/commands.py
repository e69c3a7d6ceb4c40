"""Commands: imperatives returned by ``Node.handle`` for the driver to execute in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from groupcomm.core.frames import Frame

# The commands of every turn (SendFrame, SetTimer, Credit) and DeliverMessage are NamedTuples:
# immutable like the rest and about half the cost of a frozen keyword-only dataclass to build,
# which counts in a light-load turn (docs/performance.md, Results, "2026-12-05 (night)").


class SendFrame(NamedTuple):
    """Fire and forget: the protocol tolerates loss, so a full queue drops and counts."""

    targets: tuple[str, ...]  # daemon names
    frame: Frame


class SetTimer(NamedTuple):
    name: str
    at_ms: int


class DeliverMessage(NamedTuple):
    """One delivered message for one local connection: the hottest command (one per message
    per recipient), so a NamedTuple, immutable like the rest and about 2.5x cheaper to build
    than a frozen dataclass. The fields after ``conn`` are, in order, one entry of the client
    protocol's ``msgs`` array (``protocol/client.md``), so a front-end can slice instead of
    copying field by field. ``conf``, ``n`` and ``mid`` are the message's position
    (protocol/retention.md section 1, RET-POS). ``conn`` is ``RECORD`` for the daemon's own
    record of the message (``CoreConfig.record``)."""

    conn: str  # local receiving connection, or RECORD
    sender: str  # sending connection's private name
    groups: tuple[str, ...]
    service: int
    msg_type: int
    payload: bytes
    mid: str
    conf: str  # the configuration it is delivered in
    n: int  # its ordinal there: gseq in a regular one, 1.. in a transitional one


RECORD = ""  # DeliverMessage.conn of the daemon's own record (no connection is named "")


class DeliverMembership(NamedTuple):
    """One membership message for one local connection. A view change over 10,000 groups is
    20,000 of them at each daemon (issue 11), so a NamedTuple like ``DeliverMessage``; the
    fields after ``conn`` are, in order, the client protocol's ``view`` fields."""

    conn: str
    group: str
    kind: str  # "regular" | "transitional" | "self_leave"
    gid: str
    members: tuple[str, ...]
    cause: str  # "JOIN" | "LEAVE" | "DISCONNECT" | "NETWORK" ("" for transitional)
    vs_sets: tuple[tuple[str, ...], ...]
    changed: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectRequest:
    conn: str
    op: str  # "join" | "leave" | "multicast" | "session"
    group: str | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseSession:
    conn: str
    reason: str


class Credit(NamedTuple):
    """The core stamped ``payload_bytes`` more of this connection's multicasts into the ordered
    stream: the session may let its client send that much more (send-side flow control)."""

    conn: str
    payload_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    """Something worth logging or tracing. The core never logs; the driver decides."""

    event: str
    fields: dict[str, object]


Command = (
    SendFrame
    | SetTimer
    | DeliverMessage
    | DeliverMembership
    | RejectRequest
    | CloseSession
    | Credit
    | Note
)
