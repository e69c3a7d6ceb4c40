"""Member placement and the member command line."""

from __future__ import annotations

import argparse

import pytest

from groupcomm.benchmark.workload import (
    DEFAULT_MAX_MESSAGE_BYTES,
    FLOOD_BATCH,
    ZMQ_WINDOW_BYTES,
    MemberSpec,
    Workload,
    add_member_arguments,
    daemon_protocol,
    default_drain,
    format_size,
    member_plan,
    paced_schedule,
    parse_size,
    plan_from_args,
    zmq_window,
)
from groupcomm.config import ProtocolConfig


def test_all_mode_one_member_per_daemon_each_sends_and_receives() -> None:
    w = Workload(mode="all", daemons=3)
    assert w.members() == [MemberSpec(i, True, True, i) for i in range(3)]
    assert (w.senders, w.receivers) == (3, 3)


def test_one_mode_sender_on_daemon_one_plus_a_receiver_per_daemon() -> None:
    w = Workload(mode="one", daemons=3)
    assert w.members() == [
        MemberSpec(0, True, False, 0),
        MemberSpec(1, False, True, 0),
        MemberSpec(2, False, True, 1),
        MemberSpec(3, False, True, 2),
    ]
    assert (w.senders, w.receivers) == (1, 3)


def test_latency_rate_is_split_over_the_senders() -> None:
    assert Workload(mode="all", kind="lat", lat_rate=900).rate_per_sender() == 300
    assert Workload(mode="one", kind="lat", lat_rate=900).rate_per_sender() == 900
    assert Workload(kind="tput").rate_per_sender() == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        {"size": 8},
        {"warm": 7.0},
        {"daemons": 0},
        {"service": "x"},
        {"lat_rate": 0},
        {"member_gc": "off"},
        {"stagger": True},  # a flood has no schedule to shift
    ],
)
def test_bad_workloads_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Workload(**bad)  # type: ignore[arg-type]


def test_stagger_spreads_the_senders_over_one_interval() -> None:
    """By default every sender's message i is due at the same instant (the peer kit's
    schedule: bursts); staggered, sender k's schedule is shifted by k / senders of an interval,
    so the group's messages come evenly spaced."""
    start = 10**12
    for w, due in (
        (Workload(kind="lat", lat_rate=900), [start] * 3),
        (
            Workload(kind="lat", lat_rate=900, stagger=True),
            [start, start + 1_111_111, start + 2_222_222],
        ),
        (Workload(mode="one", kind="lat", lat_rate=300, stagger=True), [start]),
    ):
        plans = [member_plan(m, w, "/tmp/x.json") for m in w.members() if m.send]
        assert [paced_schedule(p, start)[0] for p in plans] == due
        assert {paced_schedule(p, start)[1] for p in plans} == {1e9 / w.rate_per_sender()}
    assert [w.phase(m) for m in Workload(mode="one", kind="lat", stagger=True).members()] == [
        0.0
    ] * 4


def test_member_plan_survives_its_command_line() -> None:
    w = Workload(mode="all", kind="lat", size=1000, service="safe", dur=3, warm=0.5, stagger=True)
    parser = argparse.ArgumentParser()
    add_member_arguments(parser)
    for spec in w.members():
        plan = member_plan(spec, w, "/tmp/x.json")
        assert plan_from_args(parser.parse_args(plan.to_argv())) == plan


def test_batch_is_what_a_flooding_groupcomm_sender_uses() -> None:
    w = Workload(batch=1)
    assert member_plan(w.members()[0], w, "/tmp/x.json").batch == 1
    assert Workload().send_batch("groupcomm") == FLOOD_BATCH == 100
    assert Workload(batch=7).send_batch("zmq") == 1  # one message per frame
    assert Workload(kind="lat", batch=7).send_batch("groupcomm") == 1  # paced: one per call
    with pytest.raises(ValueError):
        Workload(batch=0)


def test_zmq_window_is_the_kits_up_to_a_byte_bound() -> None:
    assert zmq_window(100) == (20_000, 256)
    window, ack_every = zmq_window(100_000)
    assert window * 100_000 <= ZMQ_WINDOW_BYTES and window < 20_000
    assert 0 < ack_every <= window // 4
    assert zmq_window(1 << 20) == (32, 8)  # 32 MiB ahead at most
    assert zmq_window(64 << 20) == (2, 1)  # large messages: two in flight, an ack each


def test_sizes_take_units() -> None:
    assert [parse_size(t) for t in ("100", "16384", " 1MiB", "16 MiB", "64mib")] == [
        100,
        16384,
        1 << 20,
        16 << 20,
        64 << 20,
    ]
    assert [parse_size(t) for t in ("100kB", "1MB", "2KiB", "1.5MiB", "1GiB", "7B")] == [
        100_000,
        1_000_000,
        2048,
        3 << 19,
        1 << 30,
        7,
    ]
    for bad in ("", "MiB", "1M", "1 K", "-1", "1e6", "0.3B", "12 bytes", "1MiB2"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert [format_size(n) for n in (100, 1000, 1 << 20, 64 << 20, 3 << 19, 1 << 30)] == [
        "100",
        "1000",
        "1MiB",
        "64MiB",
        "1536KiB",
        "1GiB",
    ]


def test_large_sizes_raise_the_daemons_max_message_bytes_unless_given() -> None:
    assert ProtocolConfig().max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES
    assert daemon_protocol(100, {}) == {}
    assert daemon_protocol(1 << 20, {"tick_ms": 5}) == {"tick_ms": 5}  # the default holds it
    assert daemon_protocol((1 << 20) + 1, {}) == {"max_message_bytes": (1 << 20) + 1}
    assert daemon_protocol(64 << 20, {"tick_ms": 5}) == {
        "tick_ms": 5,
        "max_message_bytes": 64 << 20,
    }
    given = {"max_message_bytes": 128 << 20}
    assert daemon_protocol(64 << 20, given) == given  # the user's, large enough: kept
    with pytest.raises(ValueError, match="larger than --protocol max_message_bytes"):
        daemon_protocol(64 << 20, {"max_message_bytes": 16 << 20})
    with pytest.raises(ValueError, match="largest max_message_bytes"):
        daemon_protocol((1 << 30) + 1, {})


def test_large_messages_one_per_call_every_one_sampled_and_a_longer_drain() -> None:
    assert Workload(size=100).flood_batch() == FLOOD_BATCH
    assert Workload(size=100_000).flood_batch() == 10  # 1 MiB of payload per call
    big = Workload(size=64 << 20)
    assert big.flood_batch() == 1 and big.send_batch("groupcomm") == 1
    assert member_plan(big.members()[0], big, "/tmp/x.json").batch == 1
    assert Workload(size=1000).lat_stride() == 64 and big.lat_stride() == 1
    assert default_drain(100, 3) == default_drain((1 << 20) - 1, 3) == 5.0
    assert default_drain(1 << 20, 3) == 5.0  # 2 x 3 x 1 MiB at 10 MB/s: less than 5 s
    assert default_drain(64 << 20, 3) == 41.0  # two 64 MiB messages per sender at 10 MB/s
    assert default_drain(64 << 20, 1) == 14.0
