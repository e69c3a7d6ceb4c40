"""Member placement and the member command line."""

from __future__ import annotations

import argparse

import pytest

from groupcomm.benchmark.workload import (
    FLOOD_BATCH,
    ZMQ_WINDOW_BYTES,
    MemberSpec,
    Workload,
    add_member_arguments,
    member_plan,
    plan_from_args,
    zmq_window,
)


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
    ],
)
def test_bad_workloads_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Workload(**bad)  # type: ignore[arg-type]


def test_member_plan_survives_its_command_line() -> None:
    w = Workload(mode="one", kind="lat", size=1000, service="safe", dur=3, warm=0.5)
    plan = member_plan(w.members()[0], w, "/tmp/x.json")
    parser = argparse.ArgumentParser()
    add_member_arguments(parser)
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
    assert zmq_window(10**9) == (16, 4)
