"""Golden vectors: the committed bytes of ``protocol/vectors/*.json`` are the wire format.

Each vector is built from its JSON ``fields``, encoded and compared byte for byte with ``hex``,
and ``hex`` is decoded back to an equal frame. A failure here means the wire format changed:
bump ``PROTOCOL_VERSION`` and update ``protocol/frames.md`` together with the vectors.

JSON representation of fields: ViewId, Msg and Cleanup are objects keyed by field name, tuples
are arrays, ``bytes`` are lowercase hex strings and ``None`` is ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from groupcomm.core import frames as frames_module
from groupcomm.core.frames import Frame
from groupcomm.wire import FRAME_TAGS, PROTOCOL_VERSION, decode_frame, encode_frame

VECTORS_DIR = Path(__file__).resolve().parents[2] / "protocol" / "vectors"
VECTORS = sorted(VECTORS_DIR.glob("*.json"))
FRAME_CLASSES: dict[str, type[Any]] = {cls.__name__: cls for cls in FRAME_TAGS}


def from_json(hint: Any, value: Any) -> Any:
    """Build the Python value of a field annotated ``hint`` from its JSON representation."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Final:  # the per-turn frames' fields (core/frames.py)
        return from_json(args[0], value)
    if hint is bytes:
        assert isinstance(value, str)
        return bytes.fromhex(value)
    if hint is int or hint is str:
        assert type(value) is hint, (hint, value)
        return value
    if origin is types.UnionType:
        if value is None:
            assert type(None) in args
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return from_json(inner, value)
    if origin is tuple:
        assert isinstance(value, list)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], v) for v in value)
        assert len(value) == len(args)
        return tuple(from_json(a, v) for a, v in zip(args, value, strict=True))
    assert dataclasses.is_dataclass(hint) and isinstance(hint, type), hint
    return build(hint, value)


def build(cls: type[Any], fields: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls, vars(frames_module))
    assert set(fields) == set(hints), f"{cls.__name__}: fields {sorted(fields)}"
    return cls(**{name: from_json(hints[name], fields[name]) for name in hints})


def load(path: Path) -> tuple[dict[str, Any], Frame]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert set(vector) == {"frame", "description", "fields", "hex"}, path.name
    frame: Frame = build(FRAME_CLASSES[vector["frame"]], vector["fields"])
    return vector, frame


def test_every_frame_type_has_a_vector() -> None:
    names = {json.loads(p.read_text(encoding="utf-8"))["frame"] for p in VECTORS}
    assert names == set(FRAME_CLASSES)
    for cls in FRAME_TAGS:
        assert (VECTORS_DIR / f"{cls.__name__.lower()}.json").exists()


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_encodes_to_committed_bytes(path: Path) -> None:
    vector, frame = load(path)
    expected = bytes.fromhex(vector["hex"])
    assert encode_frame(frame).hex() == expected.hex()
    assert expected[1:3] == bytes([PROTOCOL_VERSION, FRAME_TAGS[type(frame)]])


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_committed_bytes_decode_to_the_vector(path: Path) -> None:
    vector, frame = load(path)
    assert decode_frame(bytes.fromhex(vector["hex"])) == frame
