"""Client requests entering the core: validation and queueing as ordered operations.

Every accepted request becomes a ``Msg`` in the node's pending queue; it is stamped into the
current view when flow control allows. Joins, leaves and disconnects travel in the same ordered
stream as data, so every daemon sees them at the same point (SP-VIEW-ORDER, EVS-2.6). Anything
invalid is rejected with a reason and changes nothing.

The functions get the node's ``GroupTable`` and pending queue, never the ``Node`` itself.
"""

from __future__ import annotations

import functools
from collections import deque

from groupcomm.core.commands import Command, RejectRequest
from groupcomm.core.events import (
    JoinRequested,
    LeaveRequested,
    MulticastRequested,
    SessionClosed,
    SessionOpened,
)
from groupcomm.core.frames import Msg, new_msg
from groupcomm.core.groups import GroupTable
from groupcomm.core.service import (
    MAX_GROUPS_PER_MESSAGE,
    SELF_DISCARD,
    Kind,
    Service,
    is_private_name,
    validate_group_name,
)

VALID_SERVICES = frozenset(int(s) for s in Service)
DATA = int(Kind.DATA)  # a plain int: decoded frames carry ints, and comparing them is cheaper


def on_session_event(
    groups: GroupTable,
    pending: deque[Msg],
    event: SessionOpened | SessionClosed | JoinRequested | LeaveRequested,
    out: list[Command],
) -> None:
    match event:
        case SessionOpened(conn=conn):
            if not is_private_name(conn) or validate_group_name(conn) or conn in groups.local:
                _reject(out, conn, "session", None, "connection name in use or malformed")
                return
            groups.open_local(conn)
        case SessionClosed(conn=conn):
            if conn not in groups.local:
                return
            groups.close_local(conn)  # nothing more is delivered to it from now on
            pending.append(_op(Kind.DISCONNECT, conn, ()))
        case JoinRequested(conn=conn, group=group):
            why = _check_group_op(groups, conn, group)
            if why:
                _reject(out, conn, "join", group, why)
                return
            if groups.request(conn, group, join=True):  # a member's join is a no-op
                pending.append(_op(Kind.JOIN, conn, (group,)))
        case LeaveRequested(conn=conn, group=group):
            why = _check_group_op(groups, conn, group)
            if why:
                _reject(out, conn, "leave", group, why)
                return
            if groups.request(conn, group, join=False):  # so is a non-member's leave
                pending.append(_op(Kind.LEAVE, conn, (group,)))


def _check_group_op(groups: GroupTable, conn: str, group: str) -> str:
    if conn not in groups.local:
        return "no such session"
    return group_op_problem(group)


def group_op_problem(group: str) -> str:
    """Why a join/leave of ``group`` is refused, or "" (shared with the session layer)."""
    if is_private_name(group):
        return "private names cannot be joined or left"  # SP-PRIV
    return validate_group_name(group) or ""


def on_multicast(
    groups: GroupTable,
    pending: deque[Msg],
    max_message_bytes: int,
    event: MulticastRequested,
    out: list[Command],
) -> None:
    why = _check_multicast(groups, max_message_bytes, event)
    if why:
        _reject(out, event.conn, "multicast", None, why)
        return
    conn, dests, service, msg_type, payload = event
    pending.append(new_msg(DATA, conn, service, dests, msg_type, payload))


def _check_multicast(groups: GroupTable, max_message_bytes: int, event: MulticastRequested) -> str:
    if event.conn not in groups.local:
        return "no such session"
    return multicast_problem(
        event.groups,
        event.service,
        event.msg_type,
        len(event.payload),
        max_message_bytes,
    )


def multicast_problem(
    groups: tuple[str, ...], service: int, msg_type: int, size: int, max_bytes: int
) -> str:
    """Why a multicast is refused, or "" (shared with the session layer, which must name the
    refused request and give its window back)."""
    why = destinations_problem(groups)
    if why:
        return why
    if service & ~(0x3F | SELF_DISCARD) or service & 0x3F not in VALID_SERVICES:
        return f"invalid service {service:#x}: exactly one service level is required"
    if not 0 <= msg_type <= 0xFFFF:
        return "msg_type must be in 0..65535"
    if size > max_bytes:
        return f"message of {size} bytes exceeds {max_bytes}"
    return ""


@functools.lru_cache(maxsize=512)  # bounded: at most ~6 MB of hostile keys
def destinations_problem(groups: tuple[str, ...]) -> str:
    """Why ``groups`` is not a valid destination list, or "". Cached: a sender usually sends
    many messages to the same few destinations, and this runs twice per multicast (session
    layer and core)."""
    if not groups:
        return "no destination group"
    if len(groups) > MAX_GROUPS_PER_MESSAGE:
        return f"more than {MAX_GROUPS_PER_MESSAGE} destination groups"  # SP-MULTI
    if len(set(groups)) != len(groups):
        return "duplicate destination group"
    for group in groups:
        why = validate_group_name(group)  # private names obey the same bounds (wire limits)
        if why:
            return why
    return ""


def _op(kind: Kind, conn: str, groups: tuple[str, ...]) -> Msg:
    return Msg(
        kind=kind, conn=conn, service=int(Service.AGREED), groups=groups, msg_type=0, payload=b""
    )


def _reject(out: list[Command], conn: str, op: str, group: str | None, why: str) -> None:
    out.append(RejectRequest(conn=conn, op=op, group=group, reason=why))
