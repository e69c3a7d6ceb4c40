"""The Spread 4.x/5.0 client protocol: a pure, sans-IO codec (``protocol/spread.md``).

What libspread, the Java client and their bindings put on the stream to their local daemon,
and what they expect back, as read from Spread 5.0.1 (the design notes cite its sources). This
module owns the bytes: the connect handshake (``SpreadReader`` parses a client's whole stream
incrementally, whatever the read boundaries), the 48-byte message header in both byte orders,
client messages (JOIN/LEAVE/KILL, multicasts), data, reject and membership messages to clients,
and the daemon's validation rules. It does not own what the messages mean (which group a
session is in, which view it sees): that is ``groupcomm.daemon.spreadmap`` and the front-end.

Byte order: every integer is in the *sender's* order; a little-endian sender ORs the marker
``0x80000080`` into ``type`` and ``hint``, a big-endian one (the Java client, a C library on a
big-endian host) leaves it clear. This daemon writes little-endian with the marker, as a real
daemon on x86 does; ``hint`` is passed through as the sender wrote it (the receiving library
reads the sender's byte order from it).

Errors: a connect the daemon answers with a reject byte is the item ``ConnectRejected(code)``
(the daemon sends the byte, then closes); ``SpreadWireError`` is raised for a message that kills
the session (the real daemon resets the connection). Nothing else is raised on any input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from groupcomm.wire.errors import WireError

# include/sp.h, daemon/sess_types.h, daemon/spread_params.h
UNRELIABLE_MESS = 0x00000001
RELIABLE_MESS = 0x00000002
FIFO_MESS = 0x00000004
CAUSAL_MESS = 0x00000008
AGREED_MESS = 0x00000010
SAFE_MESS = 0x00000020
SERVICE_BITS = 0x0000003F
SELF_DISCARD = 0x00000040
CAUSED_BY_JOIN = 0x00000100
CAUSED_BY_LEAVE = 0x00000200
CAUSED_BY_DISCONNECT = 0x00000400
CAUSED_BY_NETWORK = 0x00000800
REG_MEMB_MESS = 0x00001000
TRANSITION_MESS = 0x00002000
JOIN_MESS = 0x00010000
LEAVE_MESS = 0x00020000
KILL_MESS = 0x00040000
REJECT_MESS = 0x00400000
ENDIAN_MARKER = 0x80000080
HINT_TYPE_MASK = 0x00FFFF00

ACCEPT_SESSION = 1
ILLEGAL_SPREAD = -1
COULD_NOT_CONNECT = -2
REJECT_QUOTA = -3
REJECT_NO_NAME = -4
REJECT_ILLEGAL_NAME = -5
REJECT_NOT_UNIQUE = -6
REJECT_VERSION = -7
CONNECTION_CLOSED = -8
REJECT_AUTH = -9

MAX_GROUP_NAME = 32  # a NUL-padded fixed field; a name of exactly 32 bytes has no NUL
# The longest name a daemon may show a client: libspread closes a session whose private group
# has MAX_GROUP_NAME bytes (SP_connect, "illegal values received"), lets only 1..31-byte group
# names through, and copies names into 32-byte buffers that applications print as C strings.
MAX_NAME_LEN = MAX_GROUP_NAME - 1
MAX_PRIVATE_NAME = 10
MAX_PROC_NAME = 20
MAX_AUTH_NAME = 30
MAX_AUTH_METHODS = 3
AUTH_BLOCK = MAX_AUTH_NAME * MAX_AUTH_METHODS  # the 90 bytes a >= 3.16 library sends
MAX_GROUPS_PER_MESSAGE = 100
MAX_MESSAGE_BODY_LEN = 100 * (1472 - 32)  # 144,000
HEADER_LEN = 48
MEMBERSHIP_BODY_MIN = 20  # group id (12) + num_vs_sets (4) + local_vs_offset (4)

# A daemon accepts libraries from 3.1.0 on; 3.15.0 on send the patch byte (the daemon reads it
# when major*10000 + minor*100 > 31400) and read it in the accept; 3.16.0 on do the auth step.
MIN_LIBRARY = 30100
PATCH_FROM = 31400
ACCEPT_PATCH_FROM = 31500
AUTH_FROM = 31600
DAEMON_VERSION = (5, 0, 1)

_LE = struct.Struct("<I32siIi")
_BE = struct.Struct(">I32siIi")
_ONE_OP = (JOIN_MESS, LEAVE_MESS, KILL_MESS)


class SpreadWireError(WireError):
    """A client message the real daemon would answer by killing the session."""


def version_number(major: int, minor: int, patch: int = 0) -> int:
    return major * 10000 + minor * 100 + patch


# ------------------------------------------------------------------------------ parsed items


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """The first bytes of a session: library version, flags and the requested private name."""

    major: int
    minor: int
    patch: int  # 0 when the library did not send it (before 3.15)
    flags: int
    name: bytes

    @property
    def version(self) -> int:
        return version_number(self.major, self.minor, self.patch)

    @property
    def want_membership(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def priority(self) -> int:
        return (self.flags >> 4) & 0x01


@dataclass(frozen=True, slots=True)
class AuthChoice:
    """The 90-byte block: up to three auth method names the library wants to use."""

    methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One message from a client, integers in host order, the marker bits stripped."""

    type: int
    sender: str  # the private_group_name field
    groups: tuple[str, ...]
    hint: int  # as the sender meant it (marker bits stripped)
    hint_raw: bytes  # the 4 bytes as sent (passed through to receivers)
    body: bytes
    little_endian: bool

    @property
    def mess_type(self) -> int:
        """The application's int16 message type, as an unsigned 16-bit value."""
        return (self.hint & HINT_TYPE_MASK) >> 8


@dataclass(frozen=True, slots=True)
class ConnectRejected:
    """A connect to refuse with the single reject byte ``code`` (the reader then reads no
    more of this stream)."""

    code: int
    reason: str


SpreadItem = ConnectRequest | AuthChoice | ClientMessage | ConnectRejected


# ----------------------------------------------------------------------------------- helpers


def name_field(name: str) -> bytes:
    """A name as the fixed 32-byte field (NUL-padded; exactly 32 bytes leaves no NUL)."""
    raw = name.encode("latin-1")
    if len(raw) > MAX_GROUP_NAME:
        raise WireError(f"name {name!r} is longer than {MAX_GROUP_NAME} bytes")
    return raw.ljust(MAX_GROUP_NAME, b"\0")


def field_name(raw: bytes | bytearray) -> str:
    """The name in a fixed field: up to the first NUL (latin-1: every byte is a character)."""
    end = raw.find(b"\0")
    return (raw if end < 0 else raw[:end]).decode("latin-1")


def connect_name_problem(name: bytes) -> int:
    """The reject code for a requested private name, or 0 (``session.c``: each character
    ``> '#'`` and ``<= '~'``; the length was checked when it was read)."""
    if any(c <= 0x23 or c > 0x7E for c in name):
        return REJECT_ILLEGAL_NAME
    return 0


def message_problem(msg: ClientMessage, private_name: str, max_body: int) -> str:
    """Why the daemon kills the session for ``msg``, or "" (``session.c`` validation)."""
    # Only the service and operation bits count (session.c counts bits 0-5 and 16-18); any
    # other bit is ignored, as there, and never delivered (the service is masked).
    kind = msg.type & ~SELF_DISCARD
    levels = kind & SERVICE_BITS
    ops = [op for op in _ONE_OP if kind & op]
    if (1 if levels else 0) + len(ops) != 1 or (levels and levels & (levels - 1)):
        return f"type {msg.type:#x} must set exactly one service or JOIN, LEAVE, KILL"
    if msg.sender != private_name:
        return f"private_group_name {msg.sender!r} is not this session's"
    if msg.hint & ~HINT_TYPE_MASK:
        return f"hint {msg.hint:#x} has bits outside the message type"
    if len(msg.body) + MAX_GROUP_NAME * len(msg.groups) > max_body - HEADER_LEN:
        return f"message of {len(msg.body)} bytes exceeds {max_body}"
    if ops and ops[0] != KILL_MESS and len(msg.groups) != 1:
        return "JOIN and LEAVE name exactly one group"
    return ""


# ------------------------------------------------------------------------------------ reader


class SpreadReader:
    """A client's byte stream, incrementally: ``feed`` returns the items completed so far
    (``ConnectRequest``, then ``AuthChoice`` for a library >= 3.16, then ``ClientMessage`` s,
    or a final ``ConnectRejected``); partial reads are buffered. Raises ``SpreadWireError`` for
    a message header that kills the session, before reading its body (a hostile ``data_len``
    never makes the daemon buffer more than ``max_body``)."""

    __slots__ = ("_buf", "_stage", "max_body")

    def __init__(self, max_body: int = MAX_MESSAGE_BODY_LEN) -> None:
        self.max_body = max_body
        self._buf = bytearray()
        self._stage = "connect"  # -> "auth" (>= 3.16) -> "messages"

    def feed(self, data: bytes | memoryview) -> list[SpreadItem]:
        self._buf += data
        out: list[SpreadItem] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def _next(self) -> SpreadItem | None:
        if self._stage == "connect":
            item = self._connect()
            if isinstance(item, ConnectRejected):
                self._stage = "rejected"
            return item
        if self._stage == "rejected":
            self._buf.clear()
            return None
        if self._stage == "auth":
            if len(self._buf) < AUTH_BLOCK:
                return None
            block = bytes(self._buf[:AUTH_BLOCK])
            del self._buf[:AUTH_BLOCK]
            self._stage = "messages"
            names = (block[i : i + MAX_AUTH_NAME] for i in range(0, AUTH_BLOCK, MAX_AUTH_NAME))
            return AuthChoice(tuple(n for n in map(field_name, names) if n))
        return self._message()

    def _connect(self) -> ConnectRequest | ConnectRejected | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        major, minor = buf[0], buf[1]
        with_patch = version_number(major, minor) > PATCH_FROM
        head = 5 if with_patch else 4
        if len(buf) < head:
            return None
        patch = buf[2] if with_patch else 0
        if version_number(major, minor, patch) < MIN_LIBRARY:
            return ConnectRejected(REJECT_VERSION, f"library {major}.{minor}.{patch} is too old")
        flags, name_len = buf[head - 2], buf[head - 1]
        if name_len > MAX_PRIVATE_NAME:
            return ConnectRejected(REJECT_ILLEGAL_NAME, f"name of {name_len} bytes")
        if len(buf) < head + name_len:
            return None
        name = bytes(buf[head : head + name_len])
        del buf[: head + name_len]
        request = ConnectRequest(major, minor, patch, flags, name)
        self._stage = "auth" if request.version >= AUTH_FROM else "messages"
        return request

    def _message(self) -> ClientMessage | None:
        buf = self._buf
        if len(buf) < HEADER_LEN:
            return None
        little = (int.from_bytes(buf[0:4], "little") & ENDIAN_MARKER) == ENDIAN_MARKER
        head = (_LE if little else _BE).unpack_from(buf)
        mtype, sender, num_groups, hint, data_len = head
        if not 0 <= num_groups <= MAX_GROUPS_PER_MESSAGE:
            raise SpreadWireError(f"num_groups {num_groups} outside 0..100")
        if data_len < 0 or data_len + MAX_GROUP_NAME * num_groups > self.max_body - HEADER_LEN:
            raise SpreadWireError(f"data_len {data_len} with {num_groups} groups is too long")
        total = HEADER_LEN + MAX_GROUP_NAME * num_groups + data_len
        if len(buf) < total:
            return None
        groups = tuple(
            field_name(buf[o : o + MAX_GROUP_NAME])
            for o in range(HEADER_LEN, HEADER_LEN + MAX_GROUP_NAME * num_groups, MAX_GROUP_NAME)
        )
        body = bytes(buf[total - data_len : total])
        hint_raw = bytes(buf[40:44])
        del buf[:total]
        return ClientMessage(
            type=mtype & ~ENDIAN_MARKER,
            sender=field_name(sender),
            groups=groups,
            hint=hint & ~ENDIAN_MARKER,
            hint_raw=hint_raw,
            body=body,
            little_endian=little,
        )


# ---------------------------------------------------------------------- daemon -> client


def encode_reject(code: int) -> bytes:
    """A refused connect: one signed byte (the daemon then closes)."""
    return struct.pack("b", code)


def encode_auth_list(methods: str = "NULL ") -> bytes:
    """The auth methods the daemon allows, for a library >= 3.16 (the real daemon: "NULL ")."""
    raw = methods.encode("ascii")
    return bytes((len(raw),)) + raw


def encode_accept(request: ConnectRequest, private_name: str) -> bytes:
    """``ACCEPT_SESSION``, the daemon's version (the patch byte only for a library >= 3.15),
    then the private group name (at most ``MAX_NAME_LEN`` bytes: libspread 5.0.1 answers a
    32-byte one with ``CONNECTION_CLOSED``)."""
    major, minor, patch = DAEMON_VERSION
    raw = private_name.encode("latin-1")
    if not 0 < len(raw) <= MAX_NAME_LEN:
        raise WireError(f"private name {private_name!r} is not 1..{MAX_NAME_LEN} bytes")
    with_patch = request.version >= ACCEPT_PATCH_FROM
    version = bytes((major, minor, patch) if with_patch else (major, minor))
    return bytes((ACCEPT_SESSION,)) + version + bytes((len(raw),)) + raw


def hint_for(mess_type: int, little_endian: bool = True) -> bytes:
    """The 4 ``hint`` bytes a sender of ``mess_type`` writes in its byte order."""
    value = (mess_type << 8) & HINT_TYPE_MASK
    if little_endian:
        return (value | ENDIAN_MARKER).to_bytes(4, "little")
    return value.to_bytes(4, "big")


def encode_message(
    mtype: int,
    sender: str,
    groups: tuple[str, ...],
    body: bytes,
    *,
    hint: bytes = b"",
    little_endian: bool = True,
    old_type: int | None = None,
) -> bytes:
    """One message, header + groups + body, in the given byte order (``type`` gets the marker
    when little-endian). ``hint`` is 4 bytes as the original sender wrote them (default: a
    zero message type in this message's order). ``old_type`` makes it a reject: the 4 bytes
    follow the header, before the groups."""
    order = "<" if little_endian else ">"
    marker = ENDIAN_MARKER if little_endian else 0
    hint = hint or hint_for(0, little_endian)
    head = struct.pack(f"{order}I32si", mtype | marker, name_field(sender), len(groups))
    out = [head, hint, struct.pack(f"{order}i", len(body))]
    if old_type is not None:
        out.append(struct.pack(f"{order}I", old_type | marker))
    out.extend(name_field(g) for g in groups)
    out.append(body)
    return b"".join(out)


GroupId = tuple[int, int, int]  # (proc_id, time, index), each an int32


def membership_body(gid: GroupId, vs_sets: tuple[tuple[str, ...], ...], local: int) -> bytes:
    """A regular membership message's body, little-endian: the group id, the number of
    vs-sets, the byte offset of vs-set ``local`` (relative to the first vs-set), then each
    vs-set as a count and that many 32-byte names (``groups.c``)."""
    sets = [struct.pack("<I", len(s)) + b"".join(name_field(m) for m in s) for s in vs_sets]
    offset = sum(len(s) for s in sets[:local])
    return struct.pack("<iiiII", *gid, len(sets), offset) + b"".join(sets)


def group_id_bytes(gid: GroupId) -> bytes:
    """A transitional membership message's body: the old view's group id."""
    return struct.pack("<iii", *gid)


@dataclass(frozen=True, slots=True)
class MembershipBody:
    gid: GroupId
    vs_sets: tuple[tuple[str, ...], ...]
    local: int  # the index of the vs-set at ``local_vs_offset``


def decode_membership_body(body: bytes, little_endian: bool = True) -> MembershipBody:
    """The inverse of ``membership_body`` (what ``SP_get_memb_info``/``SP_get_vs_sets_info``
    read); ``SpreadWireError`` for anything else."""
    order = "<" if little_endian else ">"
    if len(body) < MEMBERSHIP_BODY_MIN:
        raise SpreadWireError(f"membership body of {len(body)} bytes")
    *gid, count, offset = struct.unpack_from(f"{order}iiiII", body)
    pos, sets, local = MEMBERSHIP_BODY_MIN, [], -1
    for i in range(count):
        if pos - MEMBERSHIP_BODY_MIN == offset:
            local = i
        if pos + 4 > len(body):
            raise SpreadWireError("truncated vs-set")
        (n,) = struct.unpack_from(f"{order}I", body, pos)
        end = pos + 4 + MAX_GROUP_NAME * n
        if end > len(body):
            raise SpreadWireError("truncated vs-set")
        sets.append(tuple(field_name(body[o : o + 32]) for o in range(pos + 4, end, 32)))
        pos = end
    if pos != len(body) or local < 0:
        raise SpreadWireError("vs-sets do not match the body or the local offset")
    return MembershipBody((gid[0], gid[1], gid[2]), tuple(sets), local)


# ---------------------------------------------------------------------- client -> daemon


def encode_connect(
    major: int, minor: int, patch: int, flags: int, name: bytes, *, auth: tuple[str, ...] = ()
) -> bytes:
    """What a library sends to connect (the patch byte from 3.15 on), followed by the 90-byte
    auth block when ``auth`` names methods (a library >= 3.16 sends it after the daemon's
    method list; on the stream it simply comes next)."""
    with_patch = version_number(major, minor) > PATCH_FROM
    version = bytes((major, minor, patch) if with_patch else (major, minor))
    out = version + bytes((flags, len(name))) + name
    if auth:
        out += b"".join(m.encode("ascii").ljust(MAX_AUTH_NAME, b"\0") for m in auth).ljust(
            AUTH_BLOCK, b"\0"
        )
    return out
