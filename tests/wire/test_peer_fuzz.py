"""Property tests of the peer frame codec: garbage in -> WireError out, valid frames round-trip.

Frame strategies are derived from the dataclass type hints in ``groupcomm.core.frames``, so a
field added there is fuzzed without touching this file.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupcomm.core.frames import Frame, Msg
from groupcomm.core.ids import ViewId
from groupcomm.core.service import MAX_GROUPS_PER_MESSAGE, SELF_DISCARD, Kind, Service
from groupcomm.wire import FRAME_TAGS, WireError, decode_frame, encode_frame
from groupcomm.wire.peer import MAX_NAME_CHARS, MAX_UINT

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
names = st.one_of(
    st.sampled_from(["alpha:1", "bravo:2", "#c1#alpha", "chat", "é" * MAX_NAME_CHARS]), _text
)
uints = st.integers(0, MAX_UINT)
views = st.builds(ViewId, uints, names)
services = st.sampled_from([s | flag for s in Service for flag in (0, SELF_DISCARD)])
msgs = st.builds(
    Msg,
    kind=st.sampled_from(list(Kind)),
    conn=names,
    service=services,
    groups=st.one_of(
        st.lists(names, max_size=4).map(tuple),
        st.just(tuple(f"g{i}" for i in range(MAX_GROUPS_PER_MESSAGE))),
    ),
    msg_type=uints,
    payload=st.binary(max_size=64),
)

_SCALARS: dict[object, st.SearchStrategy[Any]] = {
    int: uints,
    str: names,
    bytes: st.binary(max_size=64),
    ViewId: views,
    Msg: msgs,
}


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """A strategy of valid values for a field annotated ``hint``."""
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Final:  # the per-turn frames' fields (core/frames.py)
        return strategy_for(args[0])
    if origin is types.UnionType:
        return st.one_of([st.none() if a is type(None) else strategy_for(a) for a in args])
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
    if origin is tuple:
        return st.tuples(*(strategy_for(a) for a in args))
    return builds_dataclass(hint)


def builds_dataclass(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{name: strategy_for(hint) for name, hint in hints.items()})


frames: st.SearchStrategy[Frame] = st.one_of([builds_dataclass(cls) for cls in FRAME_TAGS])


def assert_valid_or_wire_error(data: bytes) -> None:
    """``data`` decodes to a frame that round-trips, or raises WireError (nothing else)."""
    try:
        frame = decode_frame(data)
    except WireError:
        return
    assert type(frame) in FRAME_TAGS
    assert decode_frame(encode_frame(frame)) == frame


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    assert_valid_or_wire_error(data)


@FUZZ
@given(st.binary(max_size=200), st.integers(1, len(FRAME_TAGS)))
def test_random_bytes_behind_a_valid_envelope(data: bytes, tag: int) -> None:
    for header in (b"\x92", b"\x94", b"\x98", b"\x9b"):
        assert_valid_or_wire_error(header + bytes([1, tag]) + data)


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    names,
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=7),
        st.dictionaries(st.text(max_size=3), inner, max_size=2),
        st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=3)),
    ),
    max_leaves=20,
)


@FUZZ
@given(st.integers(0, len(FRAME_TAGS) + 1), st.lists(_values, max_size=10))
def test_random_structures_behind_a_valid_envelope(tag: int, fields: list[Any]) -> None:
    assert_valid_or_wire_error(msgpack.packb([1, tag, *fields], use_bin_type=True))


def _slots(value: list[Any]) -> list[tuple[list[Any], int]]:
    """Every (array, index) position inside a decoded wire structure, envelope included."""
    out = [(value, i) for i in range(len(value))]
    for item in value:
        if isinstance(item, list):
            out.extend(_slots(item))
    return out


@FUZZ
@given(frames, st.data())
def test_frames_with_a_replaced_value(frame: Frame, data: st.DataObject) -> None:
    wire: list[Any] = msgpack.unpackb(encode_frame(frame), raw=False)
    array, i = data.draw(st.sampled_from(_slots(wire)), label="slot")
    array[i] = data.draw(_values, label="replacement")
    assert_valid_or_wire_error(msgpack.packb(wire, use_bin_type=True))


@FUZZ
@given(frames, st.data())
def test_mutated_frames(frame: Frame, data: st.DataObject) -> None:
    encoded = bytearray(encode_frame(frame))
    n = len(encoded)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        if n == 0:
            break
        op = data.draw(st.sampled_from(["flip", "truncate", "insert", "splice", "delete"]))
        i = data.draw(st.integers(0, n - 1), label="at")
        if op == "flip":
            encoded[i] ^= data.draw(st.integers(1, 255), label="mask")
        elif op == "truncate":
            del encoded[i:]
        elif op == "insert":
            encoded[i:i] = data.draw(st.binary(min_size=1, max_size=8), label="inserted")
        elif op == "splice":
            other = encode_frame(data.draw(frames, label="other"))
            j = data.draw(st.integers(0, len(other)), label="from")
            encoded[i:] = other[j:]
        else:
            del encoded[i : i + data.draw(st.integers(1, 8), label="deleted")]
        n = len(encoded)
    assert_valid_or_wire_error(bytes(encoded))


@FUZZ
@given(frames)
def test_round_trip(frame: Frame) -> None:
    data = encode_frame(frame)
    decoded = decode_frame(data)
    assert decoded == frame
    assert encode_frame(decoded) == data
