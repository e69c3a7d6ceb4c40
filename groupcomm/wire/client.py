"""msgpack codec of the client protocol (``protocol/client.md``): client library <-> daemon.

Every ZeroMQ message is one msgpack array ``[version, op, *fields]`` with ``version = 1`` and
``op`` a short string. Requests (client -> daemon) and replies (daemon -> client) are frozen
dataclasses; ``encode`` turns either into bytes and ``decode_request`` / ``decode_reply`` turn
bytes back, validating every field (type, arity, range).

Decoding is a trust boundary in both directions: lengths are bounded while unpacking
(``msgpack.unpackb`` limits) and ``ClientWireError`` is the only exception that escapes.
Semantic rules that need daemon state (group-name syntax, service levels, name syntax, window)
belong to the session layer, which answers them with a ``reject`` that names the request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple, TypeVar, cast

import msgpack

from groupcomm.core.service import MAX_GROUPS_PER_MESSAGE
from groupcomm.wire.errors import WireError

CLIENT_PROTOCOL_VERSION: Final = 1
MAX_UINT: Final = 2**63 - 1
MAX_STR_BYTES: Final = 1024  # names, reasons, texts; group names are at most 128 bytes anyway
MAX_ADMIN_ARGS: Final = 16
DEFAULT_MAX_PAYLOAD: Final = 1 << 20
DEFAULT_MAX_REQUEST: Final = DEFAULT_MAX_PAYLOAD + 64 * 1024
DEFAULT_MAX_REPLY: Final = 64 << 20  # a ``msgs`` batch may hold many messages
MAX_STATUS_DEPTH: Final = 8
MAX_BATCH: Final = 65_536  # payloads in one ``mcastb``
ACCESS_OPS: Final = ("join", "send")


class ClientWireError(WireError):
    """Bytes that are not a valid client-protocol message (or a message that cannot be encoded).

    ``frame`` holds the op when it is known, ``field`` the offending field."""


# ---------------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Hello:
    name: str  # "" asks the daemon to invent one
    want_membership: bool
    token: str = field(default="", repr=False)  # "" = none (sent only when set)
    policy: str = ""  # slow-consumer policy (protocol/retention.md section 5); "" = block


@dataclass(frozen=True, slots=True)
class JoinReq:
    req: int
    group: str
    since: str | float | None = None  # replay from a position, a time or "earliest"


@dataclass(frozen=True, slots=True)
class LeaveReq:
    req: int
    group: str


@dataclass(slots=True, init=False, unsafe_hash=True)
class McastReq:
    # A written __init__ and Final fields instead of frozen=True: compiled natively
    # (groupcomm/core/frames.py's docstring says why).

    req: Final[int]
    groups: Final[tuple[str, ...]]
    service: Final[int]
    msg_type: Final[int]
    payload: Final[bytes]

    def __init__(
        self, req: int, groups: tuple[str, ...], service: int, msg_type: int, payload: bytes
    ) -> None:
        self.req = req
        self.groups = groups
        self.service = service
        self.msg_type = msg_type
        self.payload = payload


@dataclass(frozen=True, slots=True)
class McastBatchReq:
    """Several multicasts with the same destination and service, in order; request ids
    ``first_req``, ``first_req + 1``, ... (one per payload)."""

    first_req: int
    groups: tuple[str, ...]
    service: int
    msg_type: int
    payloads: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Consumed:
    nbytes: int


@dataclass(frozen=True, slots=True)
class StatusReq:
    req: int


@dataclass(frozen=True, slots=True)
class AdminReq:
    req: int
    command: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AccessReq:
    """May this session ``op`` (``"join"`` or ``"send"``) each of ``groups``? Changes nothing."""

    req: int
    op: str
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    """Are you there? The daemon answers ``Pong`` at once (client liveness)."""


@dataclass(frozen=True, slots=True)
class FormatsReq:
    """The client decodes these optional reply formats (``VIEWSET``); the daemon may use them
    from its next reply on and ignores names it does not know."""

    names: tuple[str, ...]


Request = (
    Hello
    | JoinReq
    | LeaveReq
    | McastReq
    | McastBatchReq
    | Consumed
    | StatusReq
    | AdminReq
    | AccessReq
    | Bye
    | Ping
    | FormatsReq
)

# ----------------------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class Welcome:
    private_name: str
    daemon: str
    send_window: int
    slow_consumer_bytes: int  # the client paces its ``consumed`` reports against it
    identity: str = ""  # who the daemon took the client for ("" from an older daemon)
    acl: bool = False  # the daemon has [[acl]] rules: ``access`` answers may say no
    # The largest multicast payload; 0 (omitted on the wire) means the 1 MiB default, so a
    # daemon with the default limit stays readable by clients older than this field.
    max_message_bytes: int = 0


@dataclass(slots=True, init=False, unsafe_hash=True)
class CreditGrant:
    # A written __init__ and Final fields instead of frozen=True: compiled natively
    # (groupcomm/core/frames.py's docstring says why).

    nbytes: Final[int]

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


# One entry of a ``msgs`` batch, in wire order. Decoding hands out the validated array itself
# (msgpack builds it as a tuple), not a copy: the client library copies each entry once, into
# its ``Message``.
DeliveredEntry = tuple[str, tuple[str, ...], int, int, bytes, str, str, int]


class Delivered(NamedTuple):
    """One entry of a ``msgs`` batch with named fields, for building replies."""

    sender: str
    groups: tuple[str, ...]
    service: int
    msg_type: int
    payload: bytes
    mid: str
    conf: str = ""  # the position (protocol/retention.md section 1); "" and 0 from a daemon
    n: int = 0  # older than positions


@dataclass(frozen=True, slots=True)
class Msgs:
    msgs: tuple[DeliveredEntry, ...]


@dataclass(frozen=True, slots=True)
class ViewMsg:
    group: str
    kind: str  # "regular" | "transitional" | "self_leave"
    gid: str
    members: tuple[str, ...]
    cause: str
    vs_sets: tuple[tuple[str, ...], ...]
    changed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Views:
    """Consecutive membership messages of one daemon turn, in order (a view change over many
    groups is thousands of them: one record instead of one each)."""

    views: tuple[ViewMsg, ...]


@dataclass(frozen=True, slots=True)
class ViewSet:
    """``len(groups)`` consecutive membership messages that differ only in group and gid:
    message ``i`` is ``ViewMsg(groups[i], kind, gids[i], members, cause, vs_sets, changed)``.
    A view change over 10,000 groups with the same members is one of these instead of 20,000
    ``views`` entries (sent only to a client that asked for ``VIEWSET`` in ``formats``)."""

    kind: str
    members: tuple[str, ...]
    cause: str
    vs_sets: tuple[tuple[str, ...], ...]
    changed: tuple[str, ...]
    groups: tuple[str, ...]
    gids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GapMsg:
    """Messages the client does not get (protocol/retention.md section 4)."""

    groups: tuple[str, ...]
    reason: str
    after: str
    before: str
    first: str
    last: str
    count: int  # -1: unknown


@dataclass(frozen=True, slots=True)
class RejectMsg:
    req: int
    op: str
    group: str | None
    reason: str
    code: str = ""  # "" or "denied" (access rules), "auth", "limit" (a refused hello)


@dataclass(frozen=True, slots=True)
class StatusReply:
    req: int
    info: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AdminReply:
    req: int
    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class AccessReply:
    """One verdict per group of the ``access`` request, in order: ``""`` allowed, else why
    not (the text a refusal of that request would carry)."""

    req: int
    denials: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ErrorMsg:
    code: str  # "malformed", "protocol", "no_session", "fatal"
    text: str


@dataclass(frozen=True, slots=True)
class Closed:
    reason: str


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to ``Ping``."""


Reply = (
    Welcome
    | CreditGrant
    | Msgs
    | ViewMsg
    | Views
    | ViewSet
    | GapMsg
    | RejectMsg
    | StatusReply
    | AdminReply
    | AccessReply
    | ErrorMsg
    | Closed
    | Pong
)

VIEW_KINDS: Final = frozenset({"regular", "transitional", "self_leave"})
VIEWSET: Final = "viewset"  # the ``formats`` name of the ``viewset`` reply
MAX_FORMATS: Final = 16  # names in one ``formats`` request

# ---------------------------------------------------------------------------------- encoding

_PACKER: Final = msgpack.Packer(use_bin_type=True, autoreset=True)


def _fields(msg: Request | Reply) -> tuple[str, tuple[object, ...]]:
    match msg:
        case Hello(name, want, token, policy):
            # Optional trailing fields only when set: older daemons read the shorter form.
            if policy:
                return "hello", (name, want, token, policy)
            return "hello", (name, want, token) if token else (name, want)
        case JoinReq(req, group, since):
            return "join", (req, group) if since is None else (req, group, since)
        case LeaveReq(req, group):
            return "leave", (req, group)
        case McastReq(req, groups, service, msg_type, payload):
            return "mcast", (req, list(groups), service, msg_type, payload)
        case McastBatchReq(first_req, groups, service, msg_type, payloads):
            return "mcastb", (first_req, list(groups), service, msg_type, list(payloads))
        case FormatsReq(names):
            return "formats", (list(names),)
        case Consumed(nbytes):
            return "consumed", (nbytes,)
        case StatusReq(req):
            return "status", (req,)
        case AdminReq(req, command, args):
            return "admin", (req, command, list(args))
        case AccessReq(req, op, groups):
            return "access", (req, op, list(groups))
        case Bye():
            return "bye", ()
        case Ping():
            return "ping", ()
        case Welcome(private_name, daemon, window, slow, identity, acl, max_msg):
            # max_message_bytes only when set: a client older than it refuses a 7-field welcome
            if max_msg:
                return "welcome", (private_name, daemon, window, slow, identity, acl, max_msg)
            return "welcome", (private_name, daemon, window, slow, identity, acl)
        case CreditGrant(nbytes):
            return "credit", (nbytes,)
        case Msgs(msgs):
            return "msgs", (list(msgs),)
        case GapMsg(groups, reason, after, before, first, last, count):
            return "gap", (list(groups), reason, after, before, first, last, count)
        case ViewMsg(group, kind, gid, members, cause, vs_sets, changed):
            return "view", (group, kind, gid, members, cause, vs_sets, changed)
        case Views(views):
            return "views", ([_view_fields(v) for v in views],)
        case ViewSet(kind, members, cause, vs_sets, changed, groups, gids):
            return "viewset", (kind, members, cause, vs_sets, changed, groups, gids)
        case RejectMsg(req, op, group, reason, code):
            return "reject", (req, op, group, reason, code) if code else (req, op, group, reason)
        case StatusReply(req, info):
            return "status", (req, dict(info))
        case AdminReply(req, ok, text):
            return "admin", (req, ok, text)
        case AccessReply(req, denials):
            return "access", (req, list(denials))
        case ErrorMsg(code, text):
            return "error", (code, text)
        case Closed(reason):
            return "closed", (reason,)
        case Pong():
            return "pong", ()
    raise ClientWireError(f"cannot encode {type(msg).__name__}: not a client-protocol message")


def _view_fields(v: ViewMsg) -> tuple[object, ...]:
    return (v.group, v.kind, v.gid, v.members, v.cause, v.vs_sets, v.changed)


def encode_msgs(entries: list[DeliveredEntry]) -> bytes:
    """``encode(Msgs(...))`` from ready ``(sender, groups, service, msg_type, payload, mid)``
    tuples: the daemon's per-message hot path skips building ``Delivered`` objects."""
    try:
        data: bytes = _PACKER.pack((CLIENT_PROTOCOL_VERSION, "msgs", entries))
    except (TypeError, ValueError, OverflowError) as e:
        raise ClientWireError(f"cannot encode msgs: {e}", frame="msgs") from e
    return data


def encode(msg: Request | Reply) -> bytes:
    """Encode a request or a reply as ``[1, op, *fields]``; ``ClientWireError`` if impossible."""
    op, values = _fields(msg)
    try:
        data: bytes = _PACKER.pack((CLIENT_PROTOCOL_VERSION, op, *values))
    except (TypeError, ValueError, OverflowError) as e:
        raise ClientWireError(f"cannot encode {op}: {e}", frame=op) from e
    return data


# ---------------------------------------------------------------------------------- decoding


_T = TypeVar("_T")
_V = TypeVar("_V")


class _Bad(Exception):
    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(problem)
        self.field_name = field_name
        self.problem = problem


def _uint(v: object, name: str, hi: int = MAX_UINT) -> int:
    if type(v) is not int or not 0 <= v <= hi:
        raise _Bad(name, f"expected an integer in 0..{hi}, got {v!r:.40}")
    return v


def _str(v: object, name: str, *, empty: bool = True) -> str:
    if type(v) is not str:
        raise _Bad(name, f"expected str, got {type(v).__name__}")
    if not empty and not v:
        raise _Bad(name, "must not be empty")
    return v


def _int(v: object, name: str) -> int:
    if type(v) is not int or not -MAX_UINT <= v <= MAX_UINT:
        raise _Bad(name, f"expected an integer, got {v!r:.40}")
    return v


POLICIES: Final = ("block", "drop", "disconnect")  # protocol/retention.md section 5


def _policy(v: object, name: str) -> str:
    policy = _str(v, name)
    if policy and policy not in POLICIES:
        raise _Bad(name, f"expected one of {', '.join(POLICIES)}, got {policy!r:.40}")
    return policy


def _since(v: object, name: str) -> str | float:
    """A replay's start: a position or "earliest" (non-empty str), or a time in seconds."""
    if type(v) is str and v:
        return v
    if (type(v) is int or type(v) is float) and 0 <= v < 1e11:
        return float(v)
    raise _Bad(name, f"expected a position, 'earliest' or seconds since 1970, got {v!r:.40}")


def _opt_str(v: object, name: str) -> str | None:
    return None if v is None else _str(v, name)


def _bool(v: object, name: str) -> bool:
    if type(v) is not bool:
        raise _Bad(name, f"expected bool, got {type(v).__name__}")
    return v


def _bin(v: object, name: str) -> bytes:
    if type(v) is not bytes:
        raise _Bad(name, f"expected bin, got {type(v).__name__}")
    return v


def _strs(v: object, name: str, lo: int = 0, hi: int = MAX_UINT) -> tuple[str, ...]:
    if type(v) is not tuple:
        raise _Bad(name, f"expected array, got {type(v).__name__}")
    if not lo <= len(v) <= hi:
        raise _Bad(name, f"expected {lo}..{hi} entries, got {len(v)}")
    for x in v:  # the common case without building a field name per entry
        if type(x) is not str or not x:
            break
    else:
        return cast(tuple[str, ...], v)
    return tuple(_str(x, f"{name}[{i}]", empty=False) for i, x in enumerate(v))


def _bins(v: object, name: str) -> tuple[bytes, ...]:
    if type(v) is not tuple:
        raise _Bad(name, f"expected array, got {type(v).__name__}")
    if not 1 <= len(v) <= MAX_BATCH:
        raise _Bad(name, f"expected 1..{MAX_BATCH} entries, got {len(v)}")
    for i, x in enumerate(v):
        if type(x) is not bytes:
            raise _Bad(f"{name}[{i}]", f"expected bin, got {type(x).__name__}")
    return v


def _status_value(v: object, depth: int) -> object:
    if depth > MAX_STATUS_DEPTH:
        raise _Bad("info", "nested too deeply")
    if v is None or type(v) in (bool, int, float, str, bytes):
        return v
    if type(v) is tuple:
        return [_status_value(x, depth + 1) for x in v]
    if type(v) is dict:
        return _status_map(v, depth + 1)
    raise _Bad("info", f"unsupported value of type {type(v).__name__}")


def _status_map(v: object, depth: int = 0) -> dict[str, object]:
    if type(v) is not dict:
        raise _Bad("info", f"expected map, got {type(v).__name__}")
    out: dict[str, object] = {}
    for k, x in v.items():
        out[_str(k, "info key")] = _status_value(x, depth)
    return out


def _delivered(v: object, i: int) -> DeliveredEntry:
    # Fast path for a well-formed entry (one per delivered message); the checks below it only
    # run to name what is wrong.
    if type(v) is tuple and len(v) == 8:
        sender, groups, service, msg_type, payload, mid, conf, n = v
        if (
            type(sender) is str
            and sender
            and type(groups) is tuple
            and (
                (len(groups) == 1 and type(groups[0]) is str and groups[0])
                or (
                    1 <= len(groups) <= MAX_GROUPS_PER_MESSAGE
                    and all(type(g) is str and g for g in groups)
                )
            )
            and type(service) is int
            and 0 <= service <= 0xFF
            and type(msg_type) is int
            and 0 <= msg_type <= 0xFFFF
            and type(payload) is bytes
            and type(mid) is str
            and type(conf) is str
            and type(n) is int
            and 0 <= n <= MAX_UINT
        ):
            return cast(DeliveredEntry, v)  # checked field by field above: no copy
    name = f"msgs[{i}]"
    if type(v) is not tuple or len(v) not in (6, 8):
        raise _Bad(name, "expected [sender, groups, service, msg_type, payload, mid, conf, n]")
    return Delivered(
        _str(v[0], f"{name}.sender", empty=False),
        _strs(v[1], f"{name}.groups", 1, MAX_GROUPS_PER_MESSAGE),
        _uint(v[2], f"{name}.service", 0xFF),
        _uint(v[3], f"{name}.msg_type", 0xFFFF),
        _bin(v[4], f"{name}.payload"),
        _str(v[5], f"{name}.mid"),
        _str(v[6], f"{name}.conf") if len(v) == 8 else "",
        _uint(v[7], f"{name}.n") if len(v) == 8 else 0,
    )


def _msgs(v: object) -> Msgs:
    if type(v) is not tuple:
        raise _Bad("msgs", f"expected array, got {type(v).__name__}")
    return Msgs(tuple(_delivered(x, i) for i, x in enumerate(v)))


def _view_kind(v: object) -> str:
    kind = _str(v, "kind")
    if kind not in VIEW_KINDS:
        raise _Bad("kind", f"unknown view kind {kind!r:.40}")
    return kind


def _vs_sets(v: object) -> tuple[tuple[str, ...], ...]:
    if type(v) is not tuple:
        raise _Bad("vs_sets", f"expected array, got {type(v).__name__}")
    return tuple(_strs(s, f"vs_sets[{i}]") for i, s in enumerate(v))


def _view(f: tuple[object, ...]) -> ViewMsg:
    kind = _view_kind(f[1])
    return ViewMsg(
        _str(f[0], "group", empty=False),
        kind,
        _str(f[2], "gid"),
        _strs(f[3], "members"),
        _str(f[4], "cause"),
        _vs_sets(f[5]),
        _strs(f[6], "changed"),
    )


def _views(v: object) -> Views:
    if type(v) is not tuple or not v:
        raise _Bad("views", "expected a non-empty array")
    out = []
    for i, entry in enumerate(v):
        if type(entry) is not tuple or len(entry) != 7:
            raise _Bad(
                f"views[{i}]", "expected [group, kind, gid, members, cause, vs_sets, changed]"
            )
        out.append(_view(entry))
    return Views(tuple(out))


def _viewset(f: tuple[object, ...]) -> ViewSet:
    kind = _view_kind(f[0])
    groups = _strs(f[5], "groups", 1)
    gids = f[6]
    if type(gids) is not tuple or len(gids) != len(groups):
        raise _Bad("gids", f"expected an array of {len(groups)} strings, one per group")
    for i, gid in enumerate(gids):
        if type(gid) is not str:
            raise _Bad(f"gids[{i}]", f"expected str, got {type(gid).__name__}")
    return ViewSet(
        kind,
        _strs(f[1], "members"),
        _str(f[2], "cause"),
        _vs_sets(f[3]),
        _strs(f[4], "changed"),
        groups,
        cast(tuple[str, ...], gids),
    )


def _opt(f: tuple[object, ...], i: int, read: Callable[[object, str], _V], name: str) -> _V | None:
    """Field ``i`` when present: fields added after version 1 come last and are optional, so
    both sides of an upgrade understand each other."""
    return read(f[i], name) if len(f) > i else None


def _access_op(v: object, name: str) -> str:
    op = _str(v, name)
    if op not in ACCESS_OPS:
        raise _Bad(name, f"expected one of {', '.join(ACCESS_OPS)}, got {op!r:.40}")
    return op


def _texts(v: object, name: str) -> tuple[str, ...]:
    if type(v) is not tuple or not 1 <= len(v) <= MAX_GROUPS_PER_MESSAGE:
        raise _Bad(name, f"expected an array of 1..{MAX_GROUPS_PER_MESSAGE} strings")
    return tuple(_str(x, f"{name}[{i}]") for i, x in enumerate(v))


# op -> (fields: an exact count, or (least, most) when trailing fields are optional, builder)
_Schema = dict[str, tuple[int | tuple[int, int], Callable[[tuple[object, ...]], _T]]]

_REQUESTS: Final[_Schema[Request]] = {
    "hello": (
        (2, 4),
        lambda f: Hello(
            _str(f[0], "name"),
            _bool(f[1], "want_membership"),
            _opt(f, 2, _str, "token") or "",
            _opt(f, 3, _policy, "policy") or "",
        ),
    ),
    "join": (
        (2, 3),
        lambda f: JoinReq(_uint(f[0], "req"), _str(f[1], "group"), _opt(f, 2, _since, "since")),
    ),
    "leave": (2, lambda f: LeaveReq(_uint(f[0], "req"), _str(f[1], "group"))),
    "mcast": (
        5,
        lambda f: McastReq(
            _uint(f[0], "req"),
            _strs(f[1], "groups", 1, MAX_GROUPS_PER_MESSAGE),
            _uint(f[2], "service", 0xFF),
            _uint(f[3], "msg_type", 0xFFFF),
            _bin(f[4], "payload"),
        ),
    ),
    "mcastb": (
        5,
        lambda f: McastBatchReq(
            _uint(f[0], "first_req"),
            _strs(f[1], "groups", 1, MAX_GROUPS_PER_MESSAGE),
            _uint(f[2], "service", 0xFF),
            _uint(f[3], "msg_type", 0xFFFF),
            _bins(f[4], "payloads"),
        ),
    ),
    "consumed": (1, lambda f: Consumed(_uint(f[0], "bytes"))),
    "status": (1, lambda f: StatusReq(_uint(f[0], "req"))),
    "admin": (
        3,
        lambda f: AdminReq(
            _uint(f[0], "req"),
            _str(f[1], "command", empty=False),
            _strs(f[2], "args", 0, MAX_ADMIN_ARGS),
        ),
    ),
    "access": (
        3,
        lambda f: AccessReq(
            _uint(f[0], "req"),
            _access_op(f[1], "op"),
            _strs(f[2], "groups", 1, MAX_GROUPS_PER_MESSAGE),
        ),
    ),
    "bye": (0, lambda f: Bye()),
    "ping": (0, lambda f: Ping()),
    "formats": (1, lambda f: FormatsReq(_strs(f[0], "names", 1, MAX_FORMATS))),
}

_REPLIES: Final[_Schema[Reply]] = {
    "welcome": (
        (4, 7),
        lambda f: Welcome(
            _str(f[0], "private_name", empty=False),
            _str(f[1], "daemon", empty=False),
            _uint(f[2], "send_window"),
            _uint(f[3], "slow_consumer_bytes"),
            _opt(f, 4, _str, "identity") or "",
            bool(_opt(f, 5, _bool, "acl")),
            _opt(f, 6, _uint, "max_message_bytes") or 0,
        ),
    ),
    "credit": (1, lambda f: CreditGrant(_uint(f[0], "bytes"))),
    "msgs": (1, lambda f: _msgs(f[0])),
    "view": (7, _view),
    "gap": (
        7,
        lambda f: GapMsg(
            _strs(f[0], "groups", 1, MAX_GROUPS_PER_MESSAGE),
            _str(f[1], "reason"),
            _str(f[2], "after"),
            _str(f[3], "before"),
            _str(f[4], "first"),
            _str(f[5], "last"),
            _int(f[6], "count"),
        ),
    ),
    "views": (1, lambda f: _views(f[0])),
    "viewset": (7, _viewset),
    "reject": (
        (4, 5),
        lambda f: RejectMsg(
            _uint(f[0], "req"),
            _str(f[1], "op"),
            _opt_str(f[2], "group"),
            _str(f[3], "reason"),
            _opt(f, 4, _str, "code") or "",
        ),
    ),
    "status": (2, lambda f: StatusReply(_uint(f[0], "req"), _status_map(f[1]))),
    "admin": (3, lambda f: AdminReply(_uint(f[0], "req"), _bool(f[1], "ok"), _str(f[2], "text"))),
    "access": (2, lambda f: AccessReply(_uint(f[0], "req"), _texts(f[1], "denials"))),
    "error": (2, lambda f: ErrorMsg(_str(f[0], "code"), _str(f[1], "text"))),
    "closed": (1, lambda f: Closed(_str(f[0], "reason"))),
    "pong": (0, lambda f: Pong()),
}

_UNPACK_ERRORS: Final = (
    ValueError,
    TypeError,
    OverflowError,
    RecursionError,
    IndexError,
    KeyError,
    BufferError,
    msgpack.UnpackException,
)


def _decode(data: object, schema: _Schema[_T], max_size: int, max_payload: int) -> _T:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ClientWireError(f"expected bytes, got {type(data).__name__}")
    size = memoryview(data).nbytes
    if size == 0:
        raise ClientWireError("empty message")
    if size > max_size:
        raise ClientWireError(f"message of {size} bytes exceeds {max_size}")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=False,
            max_str_len=MAX_STR_BYTES,
            max_bin_len=max_payload,
            max_array_len=size,
            max_map_len=size,
            max_ext_len=0,
        )
    except _UNPACK_ERRORS as e:
        raise ClientWireError(f"malformed msgpack ({type(e).__name__}: {e})") from e
    if type(obj) is not tuple or len(obj) < 2:
        raise ClientWireError("message is not an array [version, op, *fields]")
    version, op = obj[0], obj[1]
    if type(version) is not int or version != CLIENT_PROTOCOL_VERSION:
        raise ClientWireError(f"unsupported client protocol version {version!r:.40}")
    entry = schema.get(op) if type(op) is str else None
    if entry is None:
        raise ClientWireError(f"unknown op {op!r:.40}")
    arity, build = entry
    least, most = arity if isinstance(arity, tuple) else (arity, arity)
    if not least <= len(obj) - 2 <= most:
        expected = f"{least}..{most}" if least != most else str(least)
        raise ClientWireError(f"{op} has {len(obj) - 2} fields, expected {expected}", frame=op)
    try:
        return build(obj[2:])
    except _Bad as e:
        raise ClientWireError(
            f"{op}.{e.field_name}: {e.problem}", frame=op, field=e.field_name
        ) from None


def decode_request(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_REQUEST,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> Request:
    """Decode and validate one client -> daemon message; raise only ``ClientWireError``."""
    return _decode(data, _REQUESTS, max_size, max_payload)


def decode_reply(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_REPLY,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> Reply:
    """Decode and validate one daemon -> client message; raise only ``ClientWireError``."""
    return _decode(data, _REPLIES, max_size, max_payload)
