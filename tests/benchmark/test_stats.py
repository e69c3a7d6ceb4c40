"""The statistics behind every figure of ``groupcomm bench``, on hand-made inputs."""

from __future__ import annotations

import pytest

from groupcomm.benchmark.stats import (
    check_stream,
    compare_orders,
    in_window,
    latency_summary,
    loss,
    order_hash,
    percentile,
    rate,
)


def key(sender: int, seq: int) -> int:
    return sender << 32 | seq


def test_percentile_interpolates_between_closest_ranks() -> None:
    xs = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(xs, 0.0) == 10
    assert percentile(xs, 0.5) == 30
    assert percentile(xs, 1.0) == 50
    assert percentile(xs, 0.9) == pytest.approx(46.0)  # 4 * 0.9 = 3.6 -> 40 + 0.6 * 10
    assert percentile([7.0], 0.99) == 7


def test_percentile_rejects_nothing_and_bad_quantiles() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_latency_summary_in_microseconds() -> None:
    samples = [i * 1000 for i in range(1, 1001)]  # 1..1000 us, unsorted order does not matter
    samples.reverse()
    s = latency_summary(samples)
    assert s["lat_n"] == 1000
    assert s["p50_us"] == pytest.approx(500.5)
    assert s["p99_us"] == pytest.approx(990.0, abs=0.1)
    assert s["max_us"] == 1000.0


def test_latency_summary_of_nothing_is_none() -> None:
    s = latency_summary([])
    assert s["lat_n"] == 0 and s["p50_us"] is None and s["max_us"] is None


def test_window_counts_half_open_interval() -> None:
    times = [0, 99, 100, 150, 199, 200, 250]
    assert in_window(times, 100, 200) == 3  # 100, 150, 199: start included, end excluded
    assert rate(3, 0.5) == 6.0
    assert rate(3, 0.0) == 0.0


def test_loss_counts_distinct_deliveries_against_what_was_sent() -> None:
    assert loss(100, 100) == 0.0
    assert loss(100, 97) == pytest.approx(0.03)
    assert loss(0, 0) == 0.0
    assert loss(10, 12) == 0.0  # never negative


def test_stream_check_finds_duplicates_and_fifo_violations() -> None:
    keys = [key(1, 0), key(2, 0), key(1, 1), key(1, 1), key(2, 2), key(2, 1)]
    c = check_stream(keys)
    assert c.delivered == 6
    assert c.unique == 5
    assert c.duplicates == 1
    assert c.fifo_violations == 2  # the repeated (1, 1) and (2, 1) after (2, 2)
    assert c.per_sender == {1: 2, 2: 3}


def test_identical_orders() -> None:
    seq = [key(0, 0), key(1, 0), key(0, 1)]
    check = compare_orders([seq, list(seq), list(seq)])
    assert check.same and check.identical
    assert check.common == 3
    assert len(set(check.hashes)) == 1
    assert check.hashes[0] == order_hash(seq)


def test_orders_compared_on_the_common_stretch() -> None:
    # receiver b missed (1, 1) and stopped before (0, 2); the order of the rest agrees
    a = [key(0, 0), key(1, 0), key(1, 1), key(0, 1), key(0, 2)]
    b = [key(0, 0), key(1, 0), key(0, 1)]
    check = compare_orders([a, b])
    assert check.same
    assert not check.identical
    assert check.common == 3
    assert check.hashes[0] == check.hashes[1]


def test_opposite_order_on_the_common_stretch_differs() -> None:
    a = [key(0, 0), key(1, 0), key(2, 0)]
    b = [key(1, 0), key(0, 0)]  # (0, 0) and (1, 0) in the other order
    check = compare_orders([a, b])
    assert not check.same
    assert check.common == 2


def test_no_receivers_compare_equal() -> None:
    assert compare_orders([]).same
