"""msgpack codec of the peer frames (``groupcomm.core.frames``): encoding, decoding, validation.

A frame on the wire is one msgpack array ``[version, tag, *fields]`` with the fields in dataclass
field order; ``protocol/frames.md`` is the specification and ``protocol/vectors/`` pins it.

Decoding is a trust boundary: the bytes come from the network. Every length is bounded while
unpacking (``msgpack.unpackb`` limits), every field is type- and range-checked afterwards, and
``WireError`` is the only exception that escapes. Encoding trusts the core to build well-formed
frames; it only turns packing failures and oversize results into ``WireError``.

Encoding reuses one module-level ``msgpack.Packer``, which is not thread-safe: encode from one
thread (the daemon's event loop) at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeGuard, TypeVar

import msgpack

from groupcomm.core.frames import (
    Cleanup,
    Data,
    Flush,
    Frame,
    Install,
    Leave,
    Msg,
    Nak,
    Ordered,
    Propose,
    Status,
    new_msg,
)
from groupcomm.core.ids import ViewId
from groupcomm.core.service import (
    MAX_GROUPS_PER_MESSAGE,
    SELF_DISCARD,
    Kind,
    Service,
    may_be_early,
)
from groupcomm.wire.errors import WireError

PROTOCOL_VERSION: Final = 3
DEFAULT_MAX_FRAME_SIZE: Final = 16 * 1024 * 1024
DEFAULT_MAX_PAYLOAD: Final = 1024 * 1024
MAX_UINT: Final = 2**63 - 1  # every integer field lies in 0..MAX_UINT
MAX_NAME_CHARS: Final = 256  # tokens, connection names and group names: 1..256 characters
_MAX_NAME_BYTES: Final = 4 * MAX_NAME_CHARS  # UTF-8 worst case; characters are counted after

TAG_STATUS: Final = 1
TAG_DATA: Final = 2
TAG_ORDERED: Final = 3
TAG_NAK: Final = 4
TAG_PROPOSE: Final = 5
TAG_FLUSH: Final = 6
TAG_INSTALL: Final = 7
TAG_LEAVE: Final = 8

FRAME_TAGS: Final[Mapping[type[Frame], int]] = {
    Status: TAG_STATUS,
    Data: TAG_DATA,
    Ordered: TAG_ORDERED,
    Nak: TAG_NAK,
    Propose: TAG_PROPOSE,
    Flush: TAG_FLUSH,
    Install: TAG_INSTALL,
    Leave: TAG_LEAVE,
}

_KINDS: Final = frozenset(int(k) for k in Kind)
_SERVICES: Final = frozenset(int(s) | flag for s in Service for flag in (0, SELF_DISCARD))

# Everything msgpack.unpackb raises on hostile input (ExtraData, FormatError, StackError and
# UnicodeDecodeError are ValueErrors; OutOfData is an UnpackException).
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

_PACKER: Final = msgpack.Packer(use_bin_type=True, autoreset=True)


# --------------------------------------------------------------------------------------------
# Encoding


def encode_frame(frame: Frame, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """Encode ``frame`` as ``[PROTOCOL_VERSION, tag, *fields]``.

    Raises ``WireError`` for a non-frame, an unpackable field value or a result larger than
    ``max_frame_size`` (which peers would reject)."""
    encoder = _ENCODERS.get(type(frame))
    if encoder is None:
        raise WireError(f"cannot encode {type(frame).__name__}: not a peer frame")
    name = type(frame).__name__
    try:
        data: bytes = _PACKER.pack(encoder(frame))
    except (TypeError, ValueError, OverflowError, AttributeError) as e:
        raise WireError(f"cannot encode {name}: {e}", frame=name) from e
    if len(data) > max_frame_size:
        raise WireError(
            f"cannot encode {name}: {len(data)} bytes exceed max_frame_size {max_frame_size}",
            frame=name,
        )
    return data


def _v(view: ViewId) -> tuple[int, str]:
    return (view.epoch, view.coord)


def _m(m: Msg) -> tuple[object, ...]:
    return (m.kind, m.conn, m.service, m.groups, m.msg_type, m.payload, m.early)


def _enc_status(f: Status) -> tuple[object, ...]:
    p = f.proposal
    return (
        PROTOCOL_VERSION,
        TAG_STATUS,
        _v(f.view),
        f.sender,
        f.max_epoch,
        None if p is None else _v(p),
        f.sent_seq,
        f.ordered_upto,
        f.ord_known,
        f.aru,
        f.stable,
        f.acked,
        f.safe,
    )


def _enc_data(f: Data) -> tuple[object, ...]:
    v = f.view
    # Hot path: Msg tuples are built inline rather than through _m().
    msgs = [(m.kind, m.conn, m.service, m.groups, m.msg_type, m.payload, m.early) for m in f.msgs]
    return (PROTOCOL_VERSION, TAG_DATA, (v.epoch, v.coord), f.sender, f.first_seq, msgs)


def _enc_ordered(f: Ordered) -> tuple[object, ...]:
    return (PROTOCOL_VERSION, TAG_ORDERED, _v(f.view), f.first_gseq, f.ranges)


def _enc_nak(f: Nak) -> tuple[object, ...]:
    return (PROTOCOL_VERSION, TAG_NAK, _v(f.view), f.sender, f.data, f.order_from, f.order_to)


def _enc_propose(f: Propose) -> tuple[object, ...]:
    return (PROTOCOL_VERSION, TAG_PROPOSE, _v(f.view), f.members)


def _enc_flush(f: Flush) -> tuple[object, ...]:
    return (
        PROTOCOL_VERSION,
        TAG_FLUSH,
        _v(f.proposal),
        f.sender,
        _v(f.old_view),
        f.old_members,
        f.delivered_upto,
        f.order,
        [(sender, seq, _m(m)) for sender, seq, m in f.msgs],
        f.acks,
        f.local_groups,
        f.delivered_seqs,
    )


def _enc_cleanup(c: Cleanup) -> tuple[object, ...]:
    return (
        _v(c.old_view),
        c.trans_members,
        c.regular_upto,
        [(gseq, sender, seq, _m(m)) for gseq, sender, seq, m in c.regular],
        [(sender, seq, _m(m)) for sender, seq, m in c.transitional],
    )


def _enc_install(f: Install) -> tuple[object, ...]:
    cleanups = [_enc_cleanup(c) for c in f.cleanups]
    return (PROTOCOL_VERSION, TAG_INSTALL, _v(f.view), f.members, cleanups, f.groups)


def _enc_leave(f: Leave) -> tuple[object, ...]:
    return (PROTOCOL_VERSION, TAG_LEAVE, _v(f.view), f.sender)


_ENCODERS: Final[dict[type, Callable[[Any], tuple[object, ...]]]] = {
    Status: _enc_status,
    Data: _enc_data,
    Ordered: _enc_ordered,
    Nak: _enc_nak,
    Propose: _enc_propose,
    Flush: _enc_flush,
    Install: _enc_install,
    Leave: _enc_leave,
}


# --------------------------------------------------------------------------------------------
# Decoding


def decode_frame(
    data: bytes | bytearray | memoryview,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> Frame:
    """Decode and fully validate one frame; raise ``WireError`` (and nothing else) otherwise.

    ``data`` may be ``bytes``, ``bytearray`` or a byte ``memoryview``. ``max_frame_size`` bounds
    the whole frame and ``max_payload`` every ``Msg.payload``."""
    if isinstance(data, memoryview):
        size = data.nbytes
    elif isinstance(data, bytes | bytearray):
        size = len(data)
    else:
        raise WireError(f"expected bytes, got {type(data).__name__}")
    if size == 0:
        raise WireError("empty frame")
    if size > max_frame_size:
        raise WireError(
            f"{_frame_label(data)}: {size} bytes exceed max_frame_size {max_frame_size}",
            frame=_peek_name(data),
        )
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=False,
            max_str_len=_MAX_NAME_BYTES,
            max_bin_len=max_payload,
            max_array_len=size,  # every element takes at least one byte
            max_map_len=0,
            max_ext_len=0,
        )
    except msgpack.ExtraData as e:
        raise WireError(
            f"{_frame_label(data)}: {len(e.extra)} trailing bytes after the frame",
            frame=_peek_name(data),
        ) from e
    except _UNPACK_ERRORS as e:
        detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise WireError(
            f"{_frame_label(data)}: malformed msgpack ({detail})", frame=_peek_name(data)
        ) from e
    return _decode_envelope(obj)


def _decode_envelope(obj: object) -> Frame:
    if type(obj) is not tuple:
        raise WireError(f"frame is not an array (got {_tname(obj)})")
    if len(obj) < 2:
        raise WireError(f"frame array of {len(obj)} is shorter than [version, tag]")
    version, tag = obj[0], obj[1]
    if type(version) is not int or version != PROTOCOL_VERSION:
        shown = f"{version!r} ({_tname(version)})" if type(version) is not int else str(version)
        raise WireError(
            f"unsupported protocol version {shown}, expected {PROTOCOL_VERSION}", field="version"
        )
    schema = _SCHEMAS.get(tag) if type(tag) is int else None
    if schema is None:
        raise WireError(f"unknown frame tag {tag!r} ({_tname(tag)})", field="tag")
    name, arity, decode = schema
    if len(obj) != 2 + arity:
        raise WireError(f"{name} frame has {len(obj) - 2} fields, expected {arity}", frame=name)
    fields = obj[2:]
    fast = _FAST.get(tag)
    if fast is not None:
        quick = fast(fields)
        if quick is not None:
            return quick
    try:
        frame: Frame = decode(fields)  # every frame the fast path declined: it names the fault
    except _Invalid as e:
        raise WireError(f"{name}.{e.path}: {e.problem}", frame=name, field=e.path) from None
    return frame


_MSGPACK_TYPE_NAMES: Final[dict[type, str]] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    bytes: "bin",
    tuple: "array",
    dict: "map",
    type(None): "nil",
    msgpack.ExtType: "ext",
}


def _tname(v: object) -> str:
    """The msgpack type name of a decoded value, for error messages."""
    return _MSGPACK_TYPE_NAMES.get(type(v), type(v).__name__)


def _peek_name(data: bytes | bytearray | memoryview) -> str | None:
    """Best-effort frame type of bytes that do not unpack, read from the envelope's first bytes
    (array header, version 1, tag)."""
    head = bytes(data[:7])
    if not head:
        return None
    if 0x92 <= head[0] <= 0x9F:
        i = 1
    elif head[0] == 0xDC:
        i = 3
    elif head[0] == 0xDD:
        i = 5
    else:
        return None
    if len(head) < i + 2 or head[i] != PROTOCOL_VERSION:
        return None
    schema = _SCHEMAS.get(head[i + 1])
    return None if schema is None else schema[0]


def _frame_label(data: bytes | bytearray | memoryview) -> str:
    name = _peek_name(data)
    return "frame" if name is None else f"{name} frame"


class _Invalid(Exception):
    """Internal: a value failed validation. Enclosing checkers prefix ``path`` on the way out."""

    def __init__(self, problem: str, path: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path

    def within(self, name: str) -> _Invalid:
        if not self.path or self.path.startswith("["):
            self.path = name + self.path
        else:
            self.path = f"{name}.{self.path}"
        return self


Check = Callable[[object], object]
T = TypeVar("T")


def _uint_problem(v: object) -> str:
    if type(v) is not int:
        return f"expected int, got {_tname(v)}"
    return f"{v} is outside 0..2**63-1"


def _name_problem(v: object) -> str:
    if type(v) is not str:
        return f"expected str, got {_tname(v)}"
    if not v:
        return "empty string"
    return f"string of {len(v)} characters exceeds {MAX_NAME_CHARS}"


def _array_problem(v: object, arity: int | None = None) -> str:
    expected = "array" if arity is None else f"array of {arity}"
    if type(v) is not tuple:
        return f"expected {expected}, got {_tname(v)}"
    return f"expected {expected}, got array of {len(v)}"


def _is_uint(v: object) -> TypeGuard[int]:
    """A native call in the compiled build; ``min``/``max`` over a frame's fields were generic
    calls that built a tuple, once per ``Status``."""
    return type(v) is int and 0 <= v <= MAX_UINT


def _uint(v: object) -> int:
    if _is_uint(v):
        return v
    raise _Invalid(_uint_problem(v))


def _name(v: object) -> str:
    if type(v) is str and 0 < len(v) <= MAX_NAME_CHARS:
        return v
    raise _Invalid(_name_problem(v))


def _names(v: object) -> tuple[str, ...]:
    """An array of names of any length (members, joined groups)."""
    if type(v) is not tuple:
        raise _Invalid(_array_problem(v))
    for i, s in enumerate(v):
        if type(s) is not str or not 0 < len(s) <= MAX_NAME_CHARS:
            raise _Invalid(_name_problem(s), f"[{i}]")
    return v


def _checked_fields(spec: tuple[tuple[str, Check], ...], v: object) -> list[object]:
    if type(v) is not tuple or len(v) != len(spec):
        raise _Invalid(_array_problem(v, len(spec)))
    out: list[object] = []
    try:
        for (_, check), x in zip(spec, v, strict=True):
            out.append(check(x))
    except _Invalid as e:
        raise e.within(spec[len(out)][0]) from None
    return out


def _record(*spec: tuple[str, Check]) -> Check:
    """A fixed-arity array decoded to a tuple; ``spec`` names its elements for error paths."""
    return lambda v: tuple(_checked_fields(spec, v))


def _struct(cls: Callable[..., T], *spec: tuple[str, Check]) -> Callable[[object], T]:
    """A fixed-arity array decoded to ``cls(**fields)``."""
    names = [name for name, _ in spec]
    return lambda v: cls(**dict(zip(names, _checked_fields(spec, v), strict=True)))


def _array(item: Check) -> Check:
    """A variable-length array of ``item``, decoded to a tuple."""

    def check(v: object) -> tuple[object, ...]:
        if type(v) is not tuple:
            raise _Invalid(_array_problem(v))
        try:
            return tuple([item(x) for x in v])
        except _Invalid as e:
            # Error path only: find the index of the first bad element for the message.
            for i, x in enumerate(v):
                try:
                    item(x)
                except _Invalid:
                    raise e.within(f"[{i}]") from None
            raise  # pragma: no cover - item() is deterministic

    return check


def _msg(v: object) -> Msg:
    """Hot path: inline checks, no exceptions and no helper calls unless the value is bad."""
    if type(v) is not tuple or len(v) != 7:
        raise _Invalid(_array_problem(v, 7))
    kind, conn, service, groups, msg_type, payload, early = v
    if type(kind) is not int or kind not in _KINDS:
        problem = _uint_problem(kind) if type(kind) is not int else f"unknown kind {kind}"
        raise _Invalid(problem, "kind")
    if type(conn) is not str or not 0 < len(conn) <= MAX_NAME_CHARS:
        raise _Invalid(_name_problem(conn), "conn")
    if type(service) is not int or service not in _SERVICES:
        problem = (
            _uint_problem(service) if type(service) is not int else f"unknown service {service}"
        )
        raise _Invalid(problem, "service")
    if type(groups) is not tuple or len(groups) > MAX_GROUPS_PER_MESSAGE:
        problem = (
            _array_problem(groups)
            if type(groups) is not tuple
            else f"{len(groups)} groups exceed {MAX_GROUPS_PER_MESSAGE}"
        )
        raise _Invalid(problem, "groups")
    for i, g in enumerate(groups):
        if type(g) is not str or not 0 < len(g) <= MAX_NAME_CHARS:
            raise _Invalid(_name_problem(g), f"groups[{i}]")
    if type(msg_type) is not int or not 0 <= msg_type <= MAX_UINT:
        raise _Invalid(_uint_problem(msg_type), "msg_type")
    if type(payload) is not bytes:
        raise _Invalid(f"expected bin, got {_tname(payload)}", "payload")
    if type(early) is not int or not 0 <= early <= MAX_UINT:
        raise _Invalid(_uint_problem(early), "early")
    if early and not may_be_early(kind, service):
        raise _Invalid("only DATA of UNRELIABLE, RELIABLE or FIFO is marked early", "early")
    return new_msg(kind, conn, service, groups, msg_type, payload, early)


_view = _struct(ViewId, ("epoch", _uint), ("coord", _name))


def _opt_view(v: object) -> ViewId | None:
    return None if v is None else _view(v)


_order_ranges = _array(_record(("sender", _name), ("first_seq", _uint), ("count", _uint)))
_nak_runs = _array(_record(("sender", _name), ("first_seq", _uint), ("last_seq", _uint)))
_global_ranges = _array(
    _record(("first_gseq", _uint), ("sender", _name), ("first_seq", _uint), ("count", _uint))
)
_seq_msgs = _array(_record(("sender", _name), ("seq", _uint), ("msg", _msg)))
_gseq_msgs = _array(_record(("gseq", _uint), ("sender", _name), ("seq", _uint), ("msg", _msg)))
_cleanups = _array(
    _struct(
        Cleanup,
        ("old_view", _view),
        ("trans_members", _names),
        ("regular_upto", _uint),
        ("regular", _gseq_msgs),
        ("transitional", _seq_msgs),
    )
)


# ---------------------------------------------------------------------------- the fast path
# Status, Data and Ordered are nearly every frame a daemon receives, one per wake-up at low
# rates, where the generic checks above (a helper call per field, keyword construction through a
# dict) cost about as much as the rest of the turn. These decoders check the same things inline
# and build the frame directly. They return None instead of raising: the generic decoder then
# runs on the same fields and names what is wrong, so errors read exactly as before.

_VIEWS: dict[tuple[object, ...], ViewId] = {}  # interned view ids: a daemon sees a handful
_VIEWS_MAX: Final = 256


def _fast_view(v: object) -> ViewId | None:
    if type(v) is not tuple or len(v) != 2:
        return None
    epoch, coord = v
    if type(epoch) is not int or type(coord) is not str:
        return None  # and only now is ``v`` surely hashable
    known = _VIEWS.get(v)
    if known is not None:
        return known
    if not (0 <= epoch <= MAX_UINT and 0 < len(coord) <= MAX_NAME_CHARS):
        return None
    if len(_VIEWS) >= _VIEWS_MAX:
        _VIEWS.clear()  # views from garbage must not grow memory
    view = _VIEWS[v] = ViewId(epoch, coord)
    return view


def _fast_status(f: tuple[object, ...]) -> Status | None:
    view, sender, max_epoch, proposal, sent, upto, ord_known, aru, stable, acked, safe = f
    vid = _fast_view(view)
    prop = None if proposal is None else _fast_view(proposal)
    if (
        vid is None
        or (prop is None and proposal is not None)
        or type(sender) is not str
        or not 0 < len(sender) <= MAX_NAME_CHARS
        or not _is_uint(max_epoch)
        or not _is_uint(sent)
        or not _is_uint(upto)
        or not _is_uint(ord_known)
        or not _is_uint(aru)
        or not _is_uint(stable)
        or not _is_uint(acked)
        or not _is_uint(safe)
    ):
        return None
    return Status(
        view=vid,
        sender=sender,
        max_epoch=max_epoch,
        proposal=prop,
        sent_seq=sent,
        ordered_upto=upto,
        ord_known=ord_known,
        aru=aru,
        stable=stable,
        acked=acked,
        safe=safe,
    )


def _fast_data(f: tuple[object, ...]) -> Data | None:
    view, sender, first_seq, msgs = f
    vid = _fast_view(view)
    if (
        vid is None
        or type(sender) is not str
        or not 0 < len(sender) <= MAX_NAME_CHARS
        or type(first_seq) is not int
        or not 0 <= first_seq <= MAX_UINT
        or type(msgs) is not tuple
    ):
        return None
    try:
        checked = tuple([_msg(m) for m in msgs])
    except _Invalid:
        return None
    return Data(view=vid, sender=sender, first_seq=first_seq, msgs=checked)


def _fast_ordered(f: tuple[object, ...]) -> Ordered | None:
    view, first_gseq, ranges = f
    vid = _fast_view(view)
    if (
        vid is None
        or type(first_gseq) is not int
        or not 0 <= first_gseq <= MAX_UINT
        or type(ranges) is not tuple
    ):
        return None
    for r in ranges:
        if type(r) is not tuple or len(r) != 3:
            return None
        sender, first_seq, count = r
        if (
            type(sender) is not str
            or not 0 < len(sender) <= MAX_NAME_CHARS
            or type(first_seq) is not int
            or not 0 <= first_seq <= MAX_UINT
            or type(count) is not int
            or not 0 <= count <= MAX_UINT
        ):
            return None
    return Ordered(view=vid, first_gseq=first_gseq, ranges=ranges)


_FAST: Final[dict[int, Callable[[tuple[object, ...]], Frame | None]]] = {
    TAG_STATUS: _fast_status,
    TAG_DATA: _fast_data,
    TAG_ORDERED: _fast_ordered,
}


_Schema = tuple[str, int, Callable[[object], Frame]]


def _schema(tag: int, cls: type[Frame], *spec: tuple[str, Check]) -> tuple[int, _Schema]:
    assert FRAME_TAGS[cls] == tag
    return tag, (cls.__name__, len(spec), _struct(cls, *spec))


_SCHEMAS: Final[dict[int, _Schema]] = dict(
    [
        _schema(
            TAG_STATUS,
            Status,
            ("view", _view),
            ("sender", _name),
            ("max_epoch", _uint),
            ("proposal", _opt_view),
            ("sent_seq", _uint),
            ("ordered_upto", _uint),
            ("ord_known", _uint),
            ("aru", _uint),
            ("stable", _uint),
            ("acked", _uint),
            ("safe", _uint),
        ),
        _schema(
            TAG_DATA,
            Data,
            ("view", _view),
            ("sender", _name),
            ("first_seq", _uint),
            ("msgs", _array(_msg)),
        ),
        _schema(
            TAG_ORDERED,
            Ordered,
            ("view", _view),
            ("first_gseq", _uint),
            ("ranges", _order_ranges),
        ),
        _schema(
            TAG_NAK,
            Nak,
            ("view", _view),
            ("sender", _name),
            ("data", _nak_runs),
            ("order_from", _uint),
            ("order_to", _uint),
        ),
        _schema(TAG_PROPOSE, Propose, ("view", _view), ("members", _names)),
        _schema(
            TAG_FLUSH,
            Flush,
            ("proposal", _view),
            ("sender", _name),
            ("old_view", _view),
            ("old_members", _names),
            ("delivered_upto", _uint),
            ("order", _global_ranges),
            ("msgs", _seq_msgs),
            ("acks", _array(_record(("member", _name), ("ord_known", _uint)))),
            ("local_groups", _array(_record(("conn", _name), ("groups", _names)))),
            ("delivered_seqs", _array(_record(("sender", _name), ("seq", _uint)))),
        ),
        _schema(
            TAG_INSTALL,
            Install,
            ("view", _view),
            ("members", _names),
            ("cleanups", _cleanups),
            ("groups", _array(_record(("daemon", _name), ("conn", _name), ("groups", _names)))),
        ),
        _schema(TAG_LEAVE, Leave, ("view", _view), ("sender", _name)),
    ]
)
