"""The proposer's cleanup decision (protocol/membership.md, 'cleanup')."""

from __future__ import annotations

from groupcomm.core.frames import Msg
from groupcomm.core.viewchange import decide_cleanup, decide_install
from tests.core.helpers import NEW, OLD, flush, msg


def _payloads(entries: tuple[tuple[str, int, Msg], ...]) -> list[bytes]:
    return [m.payload for _, _, m in entries]


def test_laggard_catches_up_in_the_regular_view() -> None:
    # EVS-4: a delivered 1..2 in the old regular view, b only 1: b delivers 2 there too.
    m = {("a:0", 1): msg("a1"), ("b:0", 1): msg("b1")}
    order = ((1, "a:0", 1, 1), (2, "b:0", 1, 1))
    acks = {"a:0": 2, "b:0": 2}
    reports = [flush("a:0", 2, order, m, acks), flush("b:0", 1, order, m, acks)]
    cleanup = decide_cleanup(OLD, reports)
    assert cleanup.regular_upto == 2
    assert [(g, s) for g, s, _, _ in cleanup.regular] == [(2, "b:0")]
    assert cleanup.transitional == ()


def test_hole_skips_absent_senders_but_keeps_survivors() -> None:
    # gseq 1 = c's message that no survivor holds (c is gone): a hole. After it, only senders in
    # the transitional set are delivered (EVS-5, EVS-6.2), even when c acked the order.
    m = {("a:0", 1): msg("a1"), ("c:0", 2): msg("c2")}
    order = ((1, "c:0", 1, 1), (2, "a:0", 1, 1), (3, "c:0", 2, 1))
    acks = {"a:0": 3, "b:0": 3, "c:0": 3}
    cleanup = decide_cleanup(
        OLD, [flush("a:0", 0, order, m, acks), flush("b:0", 0, order, m, acks)]
    )
    assert cleanup.trans_members == ("a:0", "b:0")
    assert _payloads(cleanup.transitional) == [b"a1"]


def test_absent_sender_needs_its_ordering_ack() -> None:
    # c's message is ordered and held, but c never acknowledged that order: c's own partition
    # may deliver it as unordered, so survivors must not (EVS-6.1).
    m = {("c:0", 1): msg("c1"), ("a:0", 1): msg("a1")}
    order = ((1, "c:0", 1, 1), (2, "a:0", 1, 1))
    without_ack = decide_cleanup(OLD, [flush("a:0", 0, order, m, {"a:0": 2, "c:0": 0})])
    assert _payloads(without_ack.transitional) == [b"a1"]
    with_ack = decide_cleanup(OLD, [flush("a:0", 0, order, m, {"a:0": 2, "c:0": 1})])
    assert _payloads(with_ack.transitional) == [b"c1", b"a1"]


def test_unordered_messages_of_survivors_close_the_view_in_sender_order() -> None:
    # EVS-3: never-ordered messages of survivors are delivered, after the ordered ones, sorted.
    m = {("b:0", 1): msg("b1"), ("a:0", 1): msg("a1"), ("a:0", 2): msg("a2"), ("c:0", 1): msg("c1")}
    order = ((1, "a:0", 1, 1),)
    cleanup = decide_cleanup(
        OLD, [flush("a:0", 1, order, m, {"a:0": 1}), flush("b:0", 0, (), m, {})]
    )
    assert [g for g, _, _, _ in cleanup.regular] == [1]
    assert _payloads(cleanup.transitional) == [b"a2", b"b1"]


def test_install_groups_old_views_and_merges_group_state() -> None:
    other = OLD.__class__(2, "c:0")
    reports = {
        "a:0": flush("a:0", 0, (), {}, {}),
        "c:0": flush("c:0", 0, (), {}, {}, old=other, members=("c:0",)),
    }
    install = decide_install(NEW, reports)
    assert install.members == ("a:0", "c:0")
    assert [c.old_view for c in install.cleanups] == [other, OLD]
    assert [c.trans_members for c in install.cleanups] == [("c:0",), ("a:0",)]


def test_a_skip_for_a_missing_ack_cuts_absent_senders_too() -> None:
    # Regression (swarm seed 33): c's message is skipped for lack of c's ordering ack; b (absent)
    # sent later, possibly after delivering c's. Delivering b's but not c's breaks EVS-5.
    m = {("c:0", 1): msg("c1"), ("b:0", 1): msg("b1"), ("a:0", 1): msg("a1")}
    order = ((1, "c:0", 1, 1), (2, "b:0", 1, 1), (3, "a:0", 1, 1))
    cleanup = decide_cleanup(OLD, [flush("a:0", 0, order, m, {"a:0": 3, "b:0": 3, "c:0": 0})])
    assert _payloads(cleanup.transitional) == [b"a1"]


def test_overlapping_decisions_order_survivors_messages_alike() -> None:
    # Review finding (EVS-6.1): the sequencer x ordered b1 before a1, but neither a nor b got
    # that order. Decision A (x, a, b survive) knows it; decision B (a, b only, after they gave
    # up on A) does not. Both must deliver a1 and b1 in the same relative order.
    m = {("a:0", 1): msg("a1"), ("b:0", 1): msg("b1")}
    order = ((1, "b:0", 1, 1), (2, "a:0", 1, 1))
    x_report = flush("x:0", 0, order, m, {"x:0": 2})
    a_report = flush("a:0", 0, (), m, {"a:0": 0})
    b_report = flush("b:0", 0, (), m, {"b:0": 0})
    decision_a = decide_cleanup(OLD, [x_report, a_report, b_report])
    decision_b = decide_cleanup(OLD, [a_report, b_report])
    assert _payloads(decision_a.transitional) == _payloads(decision_b.transitional)
    assert _payloads(decision_b.transitional) == [b"a1", b"b1"]
