"""Pure statistics over what the members recorded: percentiles, rates, loss, per-sender stream
checks and the comparison of delivery orders.

No I/O and no clocks, so every rule of the report (what counts as loss, what "same order" means)
is unit-tested on small hand-made inputs.

Order comparison: receivers can legitimately have delivered different *sets* (an unreliable run
lost some messages, a receiver hit the drain deadline), and then whole-sequence hashes differ
even though the order is the same. So the orders are compared on the **common stretch**: each
receiver's delivery sequence restricted to the messages that *every* receiver delivered. Equal
projections mean no two receivers delivered any two messages in opposite order. Loss is reported
separately.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

SEQ_MASK = 0xFFFFFFFF


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ascending ``sorted_values``, interpolating linearly between
    closest ranks (numpy's default). ``ValueError`` on an empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of nothing")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} outside 0..1")
    pos = (len(sorted_values) - 1) * q
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def latency_summary(samples_ns: Sequence[int]) -> dict[str, float | int | None]:
    """p50/p90/p99/p99.9/max in microseconds of pooled samples (all None when empty)."""
    keys = ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")
    if not samples_ns:
        return {"lat_n": 0, **dict.fromkeys(keys)}
    xs = sorted(samples_ns)
    qs = (0.5, 0.9, 0.99, 0.999, 1.0)
    out: dict[str, float | int | None] = {"lat_n": len(xs)}
    for key, q in zip(keys, qs, strict=True):
        out[key] = round(percentile(xs, q) / 1e3, 1)
    return out


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def in_window(times_ns: Sequence[int], w0: int, w1: int) -> int:
    """How many of ``times_ns`` fall in the window ``[w0, w1)`` (what ``Recorder`` counts)."""
    return sum(1 for t in times_ns if w0 <= t < w1)


def loss(expected: int, delivered_unique: int) -> float:
    """Fraction of the ``expected`` messages never delivered (0 when nothing was expected)."""
    if expected <= 0:
        return 0.0
    return max(0, expected - delivered_unique) / expected


@dataclass(frozen=True, slots=True)
class StreamCheck:
    """One receiver's delivery sequence, checked per sender."""

    delivered: int
    unique: int
    duplicates: int
    fifo_violations: int  # a message delivered after a later one of the same sender
    per_sender: dict[int, int]  # sender -> distinct messages delivered


def check_stream(keys: Sequence[int]) -> StreamCheck:
    last: dict[int, int] = {}
    violations = 0
    for key in keys:
        sender, seq = key >> 32, key & SEQ_MASK
        if seq <= last.get(sender, -1):
            violations += 1
        else:
            last[sender] = seq
    distinct = set(keys)
    per_sender: dict[int, int] = {}
    for key in distinct:
        per_sender[key >> 32] = per_sender.get(key >> 32, 0) + 1
    return StreamCheck(len(keys), len(distinct), len(keys) - len(distinct), violations, per_sender)


def order_hash(keys: Sequence[int]) -> str:
    """A short digest of a delivery sequence (for the report; equality is checked exactly)."""
    return hashlib.blake2b(array("Q", keys).tobytes(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class OrderCheck:
    same: bool  # every receiver delivered the common stretch in the same order
    common: int  # length of the common stretch
    identical: bool  # ... and the whole sequences are identical
    hashes: tuple[str, ...]  # digest of each receiver's common stretch


def compare_orders(sequences: Sequence[Sequence[int]]) -> OrderCheck:
    """Compare receivers' delivery sequences on the messages every one of them delivered."""
    if not sequences:
        return OrderCheck(True, 0, True, ())
    first = array("Q", sequences[0]).tobytes()
    if all(array("Q", s).tobytes() == first for s in sequences[1:]):
        digest = order_hash(sequences[0])
        return OrderCheck(True, len(sequences[0]), True, (digest,) * len(sequences))
    common = set(sequences[0])
    for seq in sequences[1:]:
        common.intersection_update(seq)
    projections = [[k for k in seq if k in common] for seq in sequences]
    same = all(p == projections[0] for p in projections[1:])
    return OrderCheck(same, len(projections[0]), False, tuple(order_hash(p) for p in projections))
