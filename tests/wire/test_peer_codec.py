"""Peer frame codec: round trips of every frame type and one test per kind of validation."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest

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
)
from groupcomm.core.ids import ViewId
from groupcomm.core.service import SELF_DISCARD, Kind, Service
from groupcomm.wire import (
    DEFAULT_MAX_FRAME_SIZE,
    FRAME_TAGS,
    PROTOCOL_VERSION,
    WireError,
    decode_frame,
    encode_frame,
)
from groupcomm.wire.peer import MAX_UINT

A, B, C = "alpha:1", "bravo:3", "charlie:2"
OLD = ViewId(4, A)
VIEW = ViewId(5, A)
NEXT = ViewId(6, B)


def msg(
    payload: bytes = b"hello",
    *,
    kind: int = Kind.DATA,
    conn: str = "#c1#alpha",
    service: int = Service.AGREED,
    groups: tuple[str, ...] = ("chat",),
    msg_type: int = 0,
) -> Msg:
    return Msg(
        kind=kind, conn=conn, service=service, groups=groups, msg_type=msg_type, payload=payload
    )


JOIN = msg(b"", kind=Kind.JOIN, conn="#c2#bravo", groups=("chat",))
SAFE = msg(b"\x00\xff" * 40, service=Service.SAFE | SELF_DISCARD, groups=("a", "b"), msg_type=9)

SAMPLES: list[Frame] = [
    Status(
        view=VIEW,
        sender=B,
        max_epoch=6,
        proposal=NEXT,
        sent_seq=120,
        ordered_upto=300,
        ord_known=299,
        aru=298,
        stable=250,
    ),
    Status(
        view=VIEW,
        sender=C,
        max_epoch=5,
        proposal=None,
        sent_seq=0,
        ordered_upto=0,
        ord_known=0,
        aru=0,
        stable=0,
    ),
    Data(view=VIEW, sender=A, first_seq=70_000, msgs=(msg(), JOIN, SAFE, msg(b"x" * 1000))),
    Data(view=VIEW, sender=A, first_seq=1, msgs=()),
    Ordered(view=VIEW, first_gseq=2**40, ranges=((A, 10, 3), (B, 1, 1), (A, 13, 200))),
    Nak(view=VIEW, sender=C, data=((A, 4, 9), (B, 1, 1)), order_from=17, order_to=20),
    Nak(view=VIEW, sender=C, data=(), order_from=1, order_to=0),
    Propose(view=NEXT, members=(A, B, C)),
    Flush(
        proposal=NEXT,
        sender=C,
        old_view=VIEW,
        old_members=(A, B, C),
        delivered_upto=41,
        order=((40, A, 7, 2), (42, B, 3, 1)),
        msgs=((A, 8, msg(b"late")), (B, 3, SAFE)),
        acks=((A, 42), (B, 41), (C, 43)),
        local_groups=(("#c1#charlie", ("chat", "news")), ("#c2#charlie", ())),
    ),
    Install(
        view=NEXT,
        members=(A, B),
        cleanups=(
            Cleanup(
                old_view=VIEW,
                trans_members=(A, B),
                regular_upto=42,
                regular=((41, A, 8, msg(b"late")), (42, B, 3, SAFE)),
                transitional=((C, 5, JOIN),),
            ),
            Cleanup(old_view=OLD, trans_members=(B,), regular_upto=0, regular=(), transitional=()),
        ),
        groups=((A, "#c1#alpha", ("chat",)), (B, "#c2#bravo", ("chat", "news"))),
    ),
    Leave(view=VIEW, sender=B),
]


def raw(frame: Frame) -> list[Any]:
    """The frame's wire structure as mutable lists, for building bad frames."""
    value: list[Any] = msgpack.unpackb(encode_frame(frame), raw=False)
    return value


def pack(value: object) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def reject(value: object, match: str) -> WireError:
    with pytest.raises(WireError, match=match) as info:
        decode_frame(pack(value))
    return info.value


DATA = SAMPLES[2]
STATUS = SAMPLES[0]
LEAVE = SAMPLES[-1]


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("frame", SAMPLES, ids=lambda f: type(f).__name__)
def test_round_trip(frame: Frame) -> None:
    data = encode_frame(frame)
    decoded = decode_frame(data)
    assert decoded == frame
    assert type(decoded) is type(frame)
    assert encode_frame(decoded) == data


def test_samples_cover_every_frame_type() -> None:
    assert {type(f) for f in SAMPLES} == set(FRAME_TAGS)


@pytest.mark.parametrize("frame", SAMPLES, ids=lambda f: type(f).__name__)
def test_envelope_is_version_tag_then_fields_in_dataclass_order(frame: Frame) -> None:
    wire = raw(frame)
    assert wire[0] == PROTOCOL_VERSION
    assert wire[1] == FRAME_TAGS[type(frame)]
    names = [f.name for f in dataclasses.fields(frame)]
    assert len(wire) == 2 + len(names)
    # Scalars sit at their dataclass position (every sample uses distinct-looking values).
    for name, value in zip(names, wire[2:], strict=True):
        field = getattr(frame, name)
        if isinstance(field, int | str):
            assert value == field, name
        elif isinstance(field, ViewId):
            assert value == [field.epoch, field.coord], name


def test_tags_are_distinct_small_ints() -> None:
    tags = list(FRAME_TAGS.values())
    assert len(set(tags)) == len(tags) == 8
    assert all(0 <= t <= 127 for t in tags)  # positive fixint: one byte


def test_msg_layout_and_bin_payload() -> None:
    wire = raw(Data(view=VIEW, sender=A, first_seq=1, msgs=(SAFE,)))
    assert wire[5] == [[0, "#c1#alpha", 0x60, ["a", "b"], 9, SAFE.payload, 0]]
    assert isinstance(wire[5][0][5], bytes)  # bin, not str


def test_decoded_values_have_exact_types() -> None:
    frame = decode_frame(encode_frame(DATA))
    assert isinstance(frame, Data)
    m = frame.msgs[1]
    assert type(m.groups) is tuple and type(m.payload) is bytes and type(m.kind) is int
    assert m == JOIN and hash(m) == hash(JOIN)


def test_accepts_bytearray_and_memoryview() -> None:
    data = encode_frame(DATA)
    assert decode_frame(bytearray(data)) == DATA
    assert decode_frame(memoryview(data)) == DATA


def test_limits_at_the_boundary_are_accepted() -> None:
    long_name = "é" * 256  # 256 characters, 512 UTF-8 bytes
    m = msg(b"p" * 1024, conn=long_name, groups=tuple(f"g{i}" for i in range(100)))
    frame = Data(view=ViewId(MAX_UINT, long_name), sender=A, first_seq=MAX_UINT, msgs=(m,))
    assert decode_frame(encode_frame(frame), max_payload=1024) == frame


# ------------------------------------------------------------------------ envelope errors


@pytest.mark.parametrize("version", [0, 1, 2, 4, 255, True, "3", None, 3.0])
def test_wrong_version(version: object) -> None:
    wire = raw(LEAVE)
    wire[0] = version
    err = reject(wire, "unsupported protocol version")
    assert err.field == "version"


@pytest.mark.parametrize("tag", [0, 9, 127, -1, True, "Leave", None, [8]])
def test_unknown_tag(tag: object) -> None:
    wire = raw(LEAVE)
    wire[1] = tag
    err = reject(wire, "unknown frame tag")
    assert err.field == "tag"


@pytest.mark.parametrize("value", [{}, {"v": 1}, 1, None, "frame", b"frame", [], [1]])
def test_envelope_not_a_frame_array(value: object) -> None:
    with pytest.raises(WireError):
        decode_frame(pack(value))


@pytest.mark.parametrize("frame", SAMPLES, ids=lambda f: type(f).__name__)
def test_wrong_arity(frame: Frame) -> None:
    name = type(frame).__name__
    reject([*raw(frame), 0], f"{name} frame has .* fields, expected")
    reject(raw(frame)[:-1], f"{name} frame has .* fields, expected")


def test_truncated_bytes() -> None:
    for frame in SAMPLES:
        data = encode_frame(frame)
        for cut in range(len(data)):
            with pytest.raises(WireError):
                decode_frame(data[:cut])


def test_truncation_names_the_frame_type() -> None:
    data = encode_frame(DATA)
    with pytest.raises(WireError, match="Data frame: malformed msgpack") as info:
        decode_frame(data[:-3])
    assert info.value.frame == "Data"


def test_trailing_bytes() -> None:
    with pytest.raises(WireError, match="Leave frame: 2 trailing bytes"):
        decode_frame(encode_frame(LEAVE) + b"\x00\x00")


def test_empty_and_non_bytes_input() -> None:
    with pytest.raises(WireError, match="empty frame"):
        decode_frame(b"")
    with pytest.raises(WireError, match="expected bytes"):
        decode_frame("\x94\x01\x08")  # type: ignore[arg-type]


def test_frame_size_limit() -> None:
    data = encode_frame(DATA)
    assert decode_frame(data, max_frame_size=len(data)) == DATA
    with pytest.raises(WireError, match="exceed max_frame_size"):
        decode_frame(data, max_frame_size=len(data) - 1)
    big = b"\x94\x01\x02" + b"\x00" * DEFAULT_MAX_FRAME_SIZE
    with pytest.raises(WireError, match="exceed max_frame_size"):
        decode_frame(big)


def test_payload_limit() -> None:
    with pytest.raises(WireError, match="max_bin_len"):
        decode_frame(encode_frame(DATA), max_payload=999)


def test_huge_declared_lengths_are_rejected_without_allocating() -> None:
    for header in (b"\xdd\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff"):
        with pytest.raises(WireError, match=r"exceeds max_|incomplete input"):
            decode_frame(b"\x94\x01\x02" + header + b"\x00" * 8)


def test_deep_nesting() -> None:
    with pytest.raises(WireError):
        decode_frame(b"\x94\x01\x02" + b"\x91" * 5000)


# --------------------------------------------------------------------------- field errors


def test_bool_is_not_an_int() -> None:
    wire = raw(STATUS)
    wire[6] = True  # sent_seq
    err = reject(wire, r"Status\.sent_seq: expected int, got bool")
    assert (err.frame, err.field) == ("Status", "sent_seq")
    wire = raw(STATUS)
    wire[2][0] = False
    reject(wire, r"Status\.view\.epoch: expected int, got bool")
    wire = raw(DATA)
    wire[5][0][0] = False
    reject(wire, r"Data\.msgs\[0\]\.kind: expected int, got bool")
    wire = raw(DATA)
    wire[5][2][2] = True
    reject(wire, r"Data\.msgs\[2\]\.service: expected int, got bool")


@pytest.mark.parametrize("value", [-1, -(2**63), 2**63, 2**64 - 1, 1.0, "1", None, b"1"])
def test_bad_uint(value: object) -> None:
    wire = raw(DATA)
    wire[4] = value  # first_seq
    reject(wire, r"Data\.first_seq: ")


def test_negative_values_everywhere() -> None:
    cases: list[tuple[Frame, tuple[int, ...], str]] = [
        (SAMPLES[4], (4, 1, 2), r"Ordered\.ranges\[1\]\.count"),
        (SAMPLES[5], (4, 0, 1), r"Nak\.data\[0\]\.first_seq"),
        (SAMPLES[5], (6,), r"Nak\.order_to"),
        (SAMPLES[8], (7, 1, 0), r"Flush\.order\[1\]\.first_gseq"),
        (SAMPLES[8], (9, 2, 1), r"Flush\.acks\[2\]\.ord_known"),
        (SAMPLES[9], (4, 0, 3, 1, 0), r"Install\.cleanups\[0\]\.regular\[1\]\.gseq"),
        (DATA, (5, 3, 4), r"Data\.msgs\[3\]\.msg_type"),
    ]
    for frame, path, where in cases:
        wire = raw(frame)
        target = wire
        for i in path[:-1]:
            target = target[i]
        target[path[-1]] = -1
        reject(wire, where + ": -1 is outside")


def test_group_list_limit() -> None:
    wire = raw(DATA)
    wire[5][0][3] = [f"g{i}" for i in range(101)]
    reject(wire, r"Data\.msgs\[0\]\.groups: 101 groups exceed 100")


@pytest.mark.parametrize("service", [0, 0x03, 0x40, 0x80, 0x3F, 0x7F, 0x100])
def test_bad_service(service: int) -> None:
    wire = raw(DATA)
    wire[5][1][2] = service
    reject(wire, rf"Data\.msgs\[1\]\.service: unknown service {service}")


@pytest.mark.parametrize("service", [s | flag for s in Service for flag in (0, SELF_DISCARD)])
def test_every_known_service_is_accepted(service: int) -> None:
    frame = Data(view=VIEW, sender=A, first_seq=1, msgs=(msg(service=service),))
    assert decode_frame(encode_frame(frame)) == frame


def test_bad_kind() -> None:
    wire = raw(DATA)
    wire[5][0][0] = 5
    reject(wire, r"Data\.msgs\[0\]\.kind: unknown kind 5")


def test_str_and_bin_are_not_interchangeable() -> None:
    wire = raw(DATA)
    wire[5][0][5] = "hello"
    reject(wire, r"Data\.msgs\[0\]\.payload: expected bin, got str")
    wire = raw(DATA)
    wire[5][0][1] = b"#c1#alpha"
    reject(wire, r"Data\.msgs\[0\]\.conn: expected str, got bin")
    wire = raw(LEAVE)
    wire[3] = b"bravo:3"
    reject(wire, r"Leave\.sender: expected str, got bin")


@pytest.mark.parametrize("name", ["", "x" * 257, "é" * 257])
def test_bad_names(name: str) -> None:
    wire = raw(DATA)
    wire[5][2][3][1] = name
    reject(wire, r"Data\.msgs\[2\]\.groups\[1\]: ")
    wire = raw(SAMPLES[7])
    wire[3][2] = name
    reject(wire, r"Propose\.members\[2\]: ")
    wire = raw(SAMPLES[9])
    wire[5][1][2][1] = name
    reject(wire, r"Install\.groups\[1\]\.groups\[1\]: ")


def test_invalid_utf8() -> None:
    data = encode_frame(LEAVE)
    bad = data.replace(b"bravo", b"br\xc3\x28o")
    with pytest.raises(WireError, match="UnicodeDecodeError"):
        decode_frame(bad)


def test_only_data_below_causal_is_marked_early() -> None:
    """protocol/frames.md ``Msg.early``: a mark on anything else is refused, never obeyed."""
    for kind, service, ok in ((0, 0x04, True), (0, 0x02 | 0x40, True), (0, 0x08, False),
                              (0, 0x10, False), (1, 0x02, False), (4, 0x04, False)):  # fmt: skip
        wire = raw(DATA)
        wire[5] = [[kind, "#c", service, ["g"], 0, b"", 5]]
        if ok:
            decoded = decode_frame(pack(wire))
            assert isinstance(decoded, Data) and decoded.msgs[0].early == 5
        else:
            reject(wire, r"Data\.msgs\[0\]\.early: only DATA of UNRELIABLE, RELIABLE or FIFO")


def test_wrong_container_types() -> None:
    wire = raw(DATA)
    wire[2] = {"epoch": 5, "coord": A}
    reject(wire, r"Data\.view: expected array of 2, got map|max_map_len")
    wire = raw(DATA)
    wire[5] = [[0, "#c", 16, ["g"], 0, b"", 0]][0]
    reject(wire, r"Data\.msgs\[0\]: expected array of 7, got int")
    wire = raw(SAMPLES[8])
    wire[10] = [["#c1#charlie", "chat"]]
    reject(wire, r"Flush\.local_groups\[0\]\.groups: expected array, got str")
    wire = raw(STATUS)
    wire[5] = [6]
    reject(wire, r"Status\.proposal: expected array of 2, got array of 1")


def test_ext_types_are_rejected() -> None:
    wire = raw(LEAVE)
    wire[3] = msgpack.ExtType(1, b"")
    reject(wire, r"Leave\.sender: expected str, got ext")
    wire[3] = msgpack.ExtType(1, b"abc")
    reject(wire, "max_ext_len")


def test_float_where_int() -> None:
    wire = raw(SAMPLES[4])
    wire[3] = 1.5
    reject(wire, r"Ordered\.first_gseq: expected int, got float")


# ------------------------------------------------------------------------------- encoding


def test_encode_rejects_non_frames_and_unpackable_values() -> None:
    with pytest.raises(WireError, match="not a peer frame"):
        encode_frame(VIEW)  # type: ignore[arg-type]
    bad = Leave(view=VIEW, sender=object())  # type: ignore[arg-type]
    with pytest.raises(WireError, match="cannot encode Leave"):
        encode_frame(bad)
    with pytest.raises(WireError, match="cannot encode Data"):
        encode_frame(Data(view=VIEW, sender=A, first_seq=2**64, msgs=()))
    # The shared packer is left clean after a failure.
    assert decode_frame(encode_frame(LEAVE)) == LEAVE


def test_encode_rejects_oversize_frames() -> None:
    with pytest.raises(WireError, match="exceed max_frame_size"):
        encode_frame(DATA, max_frame_size=100)


def test_new_msg_builds_the_msg_the_keyword_constructor_builds() -> None:
    from groupcomm.core import frames

    built = frames.new_msg(0, "#c", 16, ("g",), 1, b"p")
    assert built == msg(b"p", conn="#c", service=16, groups=("g",), msg_type=1)
    assert hash(built) == hash(msg(b"p", conn="#c", service=16, groups=("g",), msg_type=1))
    marked = frames.with_early(built, 8)
    assert marked.early == 8 and marked != built
    assert frames.new_msg(0, "#c", 16, ("g",), 1, b"p", 8) == marked
    assert [f.name for f in dataclasses.fields(built)] == [
        "kind",
        "conn",
        "service",
        "groups",
        "msg_type",
        "payload",
        "early",
    ]


# ----------------------------------------------------------------------------- the fast path


FAST_SAMPLES = [f for f in SAMPLES if type(f) in (Status, Data, Ordered)]


@pytest.mark.parametrize("frame", FAST_SAMPLES, ids=lambda f: type(f).__name__)
def test_fast_path_builds_what_the_generic_decoder_builds(frame: Frame) -> None:
    from groupcomm.wire import peer

    fields = tuple(msgpack.unpackb(encode_frame(frame), raw=False, use_list=False)[2:])
    tag = FRAME_TAGS[type(frame)]
    fast = peer._FAST[tag](fields)
    assert fast is not None, "a well-formed frame must take the fast path"
    assert fast == peer._SCHEMAS[tag][2](fields) == frame


@pytest.mark.parametrize("frame", FAST_SAMPLES, ids=lambda f: type(f).__name__)
def test_fast_path_declines_every_bad_field(frame: Frame) -> None:
    """Each field replaced by a value of the wrong type or range: the fast path returns None and
    the generic decoder raises (so the error names the field, as before)."""
    from groupcomm.wire import peer

    tag = FRAME_TAGS[type(frame)]
    good = tuple(msgpack.unpackb(encode_frame(frame), raw=False, use_list=False)[2:])
    for i in range(len(good)):
        for bad in (-1, 2**63, "x" * 300, True, 1.5, {"k": 1}, ((1,),)):
            fields = (*good[:i], bad, *good[i + 1 :])
            assert peer._FAST[tag](fields) is None, (i, bad)
            with pytest.raises(WireError):
                decode_frame(pack([PROTOCOL_VERSION, tag, *fields]))


def test_fast_path_view_cache_is_bounded() -> None:
    from groupcomm.wire import peer

    assert isinstance(STATUS, Status)
    for epoch in range(3 * peer._VIEWS_MAX):
        frame = dataclasses.replace(STATUS, view=ViewId(epoch, A), max_epoch=epoch)
        assert decode_frame(encode_frame(frame)) == frame
        assert len(peer._VIEWS) <= peer._VIEWS_MAX
