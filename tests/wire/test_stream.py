"""Records on a stream (``groupcomm.wire.stream``): any split of the bytes gives back the same
records; an announced length over the limit is refused before anything is buffered."""

from __future__ import annotations

import random

import pytest

from groupcomm.wire.stream import RecordReader, RecordTooLarge, parse_endpoint, record


@pytest.mark.parametrize("seed", range(5))
def test_any_split_gives_the_same_records(seed: int) -> None:
    rng = random.Random(seed)
    records = [rng.randbytes(rng.choice((0, 1, 3, 4, 5, 100, 4000))) for _ in range(300)]
    blob = b"".join(record(r) for r in records)
    reader = RecordReader(4000)
    got: list[bytes] = []
    pos = 0
    while pos < len(blob):
        n = rng.choice((1, 2, 3, 5, 64, 4096, 10_000))
        got += reader.feed(blob[pos : pos + n])
        pos += n
    assert got == records
    assert reader.pending() == 0


def test_a_large_record_arrives_in_pieces() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    reader = RecordReader(len(big))
    data = record(big)
    got: list[bytes] = []
    for i in range(0, len(data), 1000):
        got += reader.feed(data[i : i + 1000])
    assert got == [big]


def test_oversized_length_is_refused_at_once() -> None:
    reader = RecordReader(100)
    assert reader.feed(record(b"x" * 100)) == [b"x" * 100]
    with pytest.raises(RecordTooLarge):
        reader.feed((101).to_bytes(4, "big"))
    reader = RecordReader(100)
    reader.feed(b"\x00")  # the header arrives in pieces: still refused before any body
    with pytest.raises(RecordTooLarge):
        reader.feed(b"\xff\xff\xff")


@pytest.mark.parametrize("split", [None, 1, 3, 50, 4100])
def test_the_first_record_has_its_own_limit(split: int | None) -> None:
    """A peer link's hello (at most a few KiB) and the larger frames queued behind it arrive
    in one read: only the first record is held to ``first_max``."""
    hello, frame = b"h" * 40, b"f" * 20_000
    data = record(hello) + record(frame)
    reader = RecordReader(100_000, first_max=100)
    if split is None:
        assert reader.feed(data) == [hello, frame]
    else:
        assert reader.feed(data[:split]) + reader.feed(data[split:]) == [hello, frame]
    assert reader.feed(record(frame)) == [frame]
    with pytest.raises(RecordTooLarge):
        RecordReader(100_000, first_max=100).feed(record(b"x" * 101))
    reader = RecordReader(100_000, first_max=100)
    reader.feed(record(b"x" * 101)[: 4 - 1])  # the first header in pieces: refused at once
    with pytest.raises(RecordTooLarge):
        reader.feed(b"\x65")


@pytest.mark.parametrize(
    ("endpoint", "parsed"),
    [
        ("ipc:///tmp/x.sock", ("unix", "/tmp/x.sock")),
        ("tcp://127.0.0.1:4803", ("tcp", ("127.0.0.1", 4803))),
        ("tcp://[::1]:4803", ("tcp", ("::1", 4803))),
    ],
)
def test_endpoints(endpoint: str, parsed: tuple[str, object]) -> None:
    assert parse_endpoint(endpoint) == parsed


@pytest.mark.parametrize(
    "endpoint", ["ipc://", "tcp://host", "tcp://:80", "tcp://h:0", "tcp://h:99999", "inproc://x"]
)
def test_bad_endpoints(endpoint: str) -> None:
    with pytest.raises(ValueError, match=r"endpoint|expected|empty"):
        parse_endpoint(endpoint)
