"""What groupcomm's deliveries look like to a Spread client (``protocol/spread.md``).

Pure functions from the core's session commands to Spread messages (``groupcomm.wire.spread``
owns the bytes): names longer than Spread's 32-byte field get a stable alias, group ids become
Spread's ``(proc_id, time, index)`` triple, views become regular, transitional and self-leave
membership messages with the vs-set block. What a session is and when it gets what is the
front-end's business (``spreadfrontend.py``).
"""

from __future__ import annotations

import zlib

from groupcomm.core.commands import DeliverMembership, DeliverMessage
from groupcomm.core.ids import decimal
from groupcomm.wire import spread as sp

ALIAS_KEEP = 22  # characters of a long name kept in its alias: 22 + "~" + 8 hex = 31
CAUSES = {
    "JOIN": sp.CAUSED_BY_JOIN,
    "LEAVE": sp.CAUSED_BY_LEAVE,
    "DISCONNECT": sp.CAUSED_BY_DISCONNECT,
    "NETWORK": sp.CAUSED_BY_NETWORK,
}
INT32 = 0x7FFFFFFF


def spread_name(name: str) -> str:
    """``name`` as a Spread client sees it: itself when it has at most 31 bytes, else a
    31-character alias (a prefix, ``~`` and a CRC-32 of the whole name), the same at every
    daemon. Native clients may use longer names (group names up to 128 bytes, private names
    ``#<20>#<daemon>``): a Spread client sees, and can send to, their aliases. A name of
    exactly 32 bytes is aliased too: libspread 5.0.1 closes a session whose private group has
    32 bytes (``SP_connect``: ``len >= MAX_GROUP_NAME``) and copies names into 32-byte buffers
    that must end with a NUL (``sp.MAX_NAME_LEN``)."""
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) <= sp.MAX_NAME_LEN:
        return raw.decode("latin-1")
    prefix = raw[:ALIAS_KEEP].decode("latin-1")
    return f"{prefix}~{zlib.crc32(raw):08x}"


def from_field(name: str) -> str:
    """A name a Spread client wrote (latin-1 of its bytes) as groupcomm's (UTF-8) name."""
    raw = name.encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return name  # not UTF-8: the core refuses what it cannot name


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value > INT32 else value


def group_id(gid: str) -> sp.GroupId:
    """A regular view's gid ``R<epoch>.<coordinator>/<group>/<n>`` (``core/groups.py``) as
    ``(proc_id, time, index)``: a CRC-32 of the daemon view, its epoch and the group's view
    counter. Every daemon derives the same triple from the same gid (SP-GID); ``index``
    increases with each view of the group inside one daemon view, as Spread's does."""
    conf, _, rest = gid.partition("/")
    epoch_text = conf[1:].partition(".")[0]
    counter = rest.rpartition("/")[2]
    epoch = int(epoch_text) if decimal(epoch_text) else 0
    index = int(counter) if decimal(counter) else 0
    return (_int32(zlib.crc32(conf.encode("utf-8", "surrogatepass"))), epoch & INT32, index & INT32)


def transitional_group_id(tgid: str) -> sp.GroupId:
    """A transitional view names ``<previous gid> > <next gid>``; Spread sends the old one."""
    return group_id(tgid.partition(" > ")[0])


def data_message(d: DeliverMessage) -> bytes:
    """A delivered message as the Spread daemon passes a sender's message on: the sender's
    private name, the destination groups, the service bits (SELF_DISCARD included), and the
    message type in ``hint`` (written by this daemon, little-endian: see protocol/spread.md)."""
    return sp.encode_message(
        d.service,
        spread_name(d.sender),
        tuple(spread_name(g) for g in d.groups),
        d.payload,
        hint=sp.hint_for(d.msg_type),
    )


def lightweight_transitional(v: DeliverMembership, after: DeliverMembership | None = None) -> bool:
    """Whether ``v`` is the transitional view groupcomm puts before a ``LEAVE`` or
    ``DISCONNECT`` view inside one daemon view (``after``: the view delivered next to the same
    session, when known). Spread 5.0.1 sends no transitional message there (``groups.c``: a
    leave or disconnect in a group with no partitioned daemon gets the lightweight regular
    message alone), so a Spread client gets none; a transitional view of a daemon view change
    is Spread's ``TRANSITION_MESS``. Told apart by the next view: a LEAVE or DISCONNECT with
    the transitional's next gid; or, without it, by both gids being in one daemon view (not
    enough alone: a group that got no view at the last daemon view change still has its last
    gid from the one before)."""
    if v.kind != "transitional":
        return False
    prev, _, nxt = v.gid.partition(" > ")
    if (
        after is not None
        and after.kind == "regular"
        and after.group == v.group
        and after.gid == nxt
        and after.cause in ("LEAVE", "DISCONNECT")
    ):
        return True
    return bool(prev) and prev.partition("/")[0] == nxt.partition("/")[0]


def membership_message(
    v: DeliverMembership, after: DeliverMembership | None = None
) -> bytes | None:
    """A group view as Spread's membership message for the session ``v.conn``: the group name
    in the sender field, the members as the groups, the group id and vs-sets in the body.
    ``None`` for a view Spread has no message for (``lightweight_transitional``; ``after``: the
    view delivered next to the same session, when known)."""
    group = spread_name(v.group)
    if v.kind == "self_leave":
        return sp.encode_message(sp.CAUSED_BY_LEAVE, group, (), b"")
    if lightweight_transitional(v, after):
        return None
    if v.kind == "transitional":
        body = sp.group_id_bytes(transitional_group_id(v.gid))
        return sp.encode_message(sp.TRANSITION_MESS, group, (), body)
    members = tuple(spread_name(m) for m in v.members)
    sets = tuple(tuple(spread_name(m) for m in s) for s in v.vs_sets) or (members,)
    local = next((i for i, s in enumerate(v.vs_sets) if v.conn in s), 0)
    if v.cause != "NETWORK":
        local = 0  # a join, leave or disconnect: one vs-set, the member that changed
    body = sp.membership_body(group_id(v.gid), sets, local)
    return sp.encode_message(sp.REG_MEMB_MESS | CAUSES.get(v.cause, 0), group, members, body)
