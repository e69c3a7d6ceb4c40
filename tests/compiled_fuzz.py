"""Hostile input to the codecs in whatever build this process loads: ``python -m
tests.compiled_fuzz SEED COUNT``. Prints one line per input that raised anything but the codec's
own error, and exits 1 if there was one.

Run by ``tests/test_compiled.py`` with ``GROUPCOMM_COMPILED=1``: a compiled function checks the
declared type of every value it takes from untyped data (``msgpack`` output) and raises
``TypeError`` where the source would have reached its own check, so the compiled decoders must
be shown, not assumed, to refuse hostile bytes with ``WireError`` only (the daemon drops those
and goes on; anything else would end its loop). Inputs: every committed vector of
``protocol/vectors`` and ``protocol/vectors/client`` (peer frames and client records), each
mutated ``COUNT`` times: a value replaced by one of another type or an extreme, a list shortened
or lengthened, bytes flipped or cut; and the Spread client vectors (``protocol/vectors/spread``,
direction ``client``), bytes flipped, cut or extended, through a ``SpreadReader``.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from groupcomm.wire.client import decode_reply, decode_request
from groupcomm.wire.errors import WireError
from groupcomm.wire.peer import decode_frame
from groupcomm.wire.spread import SpreadReader

VECTORS = Path(__file__).resolve().parent.parent / "protocol" / "vectors"
ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63 - 1,
    2**63,
    -(2**63),
    2**64 - 1,
    1.5,
    float("nan"),
    "",
    "x",
    "a:1",
    "é" * 40,
    b"",
    b"\x00\xff",
    [],
    [1],
    ["a", "b"],
    [[1, 2, 3]],
    [None, None, None],
    {},
)


def vectors() -> list[tuple[str, bytes]]:
    """(file name, committed bytes) of every vector that has them."""
    out: list[tuple[str, bytes]] = []
    for path in sorted([*VECTORS.glob("*.json"), *VECTORS.glob("client/*.json")]):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("hex"), str):
            out.append((path.relative_to(VECTORS).as_posix(), bytes.fromhex(data["hex"])))
    return out


def spread_vectors() -> tuple[bytes, list[tuple[str, bytes]]]:
    """The 3.14 connect (no authentication step follows it), and (name, bytes) of every
    client-direction Spread vector."""
    connect = b""
    out: list[tuple[str, bytes]] = []
    for path in sorted(VECTORS.glob("spread/*.json")):
        data = json.loads(path.read_text())
        if data.get("direction") != "client":
            continue
        raw = bytes.fromhex(data["hex"])
        out.append((path.name, raw))
        if path.name == "connect_3_14_0.json":
            connect = raw
    return connect, out


def spread_sample(rng: random.Random, connect: bytes, data: bytes, kind: str) -> bytes:
    raw = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        raw[rng.randrange(len(raw))] = rng.randrange(256)
    if rng.random() < 0.3:
        del raw[rng.randrange(len(raw)) :]
    if rng.random() < 0.3:
        raw += rng.randbytes(rng.randrange(1, 64))
    return bytes(raw) if kind == "connect" else connect + bytes(raw)


def paths(obj: Any, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """Every position inside nested lists, the root included."""
    found = [prefix]
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            found.extend(paths(item, (*prefix, i)))
    return found


def replaced(obj: Any, at: tuple[int, ...], value: Any) -> Any:
    if not at:
        return value
    copy = list(obj)
    copy[at[0]] = replaced(copy[at[0]], at[1:], value)
    return copy


def get(obj: Any, at: tuple[int, ...]) -> Any:
    for i in at:
        obj = obj[i]
    return obj


def mutate(rng: random.Random, data: bytes) -> bytes:
    how = rng.randrange(4)
    if how == 0:  # raw bytes: flips and cuts
        raw = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        if rng.random() < 0.3:
            del raw[rng.randrange(len(raw)) :]
        return bytes(raw)
    tree = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)
    for _ in range(rng.randint(1, 3)):
        at = rng.choice(paths(tree))
        node = get(tree, at)
        if how == 1 or not isinstance(node, list):
            tree = replaced(tree, at, rng.choice(ODD_VALUES))
        elif how == 2 and node:  # a list one shorter
            tree = replaced(tree, at, node[: rng.randrange(len(node))])
        else:  # a list one longer, or a copy of a sibling's shape
            tree = replaced(tree, at, [*node, rng.choice(ODD_VALUES)])
    packed: bytes = msgpack.packb(tree, use_bin_type=True)
    return packed


def main(argv: list[str]) -> int:
    seed, count = int(argv[0]), int(argv[1])
    rng = random.Random(seed)
    decoders: list[Callable[[bytes], object]] = [decode_frame, decode_request, decode_reply]
    bad = 0
    tried = 0
    for name, data in vectors():
        use = [decode_frame] if "/" not in name else decoders[1:]
        for _ in range(count):
            sample = mutate(rng, data)
            for decode in use:
                tried += 1
                try:
                    decode(sample)
                except WireError:
                    pass
                except Exception as exc:  # what this probe exists to find
                    bad += 1
                    print(f"{name} {decode.__name__} {sample.hex()}: {type(exc).__name__}: {exc}")
    connect, spread = spread_vectors()
    for name, data in spread:
        kind = "connect" if name.startswith("connect") else "message"
        for _ in range(count):
            sample = spread_sample(rng, connect, data, kind)
            tried += 1
            try:
                SpreadReader().feed(sample)
            except WireError:
                pass
            except Exception as exc:  # what this probe exists to find
                bad += 1
                print(f"{name} SpreadReader {sample.hex()}: {type(exc).__name__}: {exc}")
    print(f"fuzz: {tried} decodes, {bad} raised something else")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
