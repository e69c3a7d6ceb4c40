"""Per-view message state: sequencing, the regular-view delivery rules, repair, freeing."""

from __future__ import annotations

from groupcomm.core.epoch import Epoch
from groupcomm.core.frames import Data, Nak, Ordered, Status, origin
from groupcomm.core.ids import ViewId
from groupcomm.core.service import Service
from tests.core.helpers import msg

VIEW = ViewId(1, "a:0")
MEMBERS = ("a:0", "b:0")


def _status(
    sender: str, ord_known: int, aru: int, stable: int, sent_seq: int = 0, view: ViewId = VIEW
) -> Status:
    return Status(
        view=view,
        sender=sender,
        max_epoch=1,
        proposal=None,
        sent_seq=sent_seq,
        ordered_upto=0,
        ord_known=ord_known,
        aru=aru,
        stable=stable,
    )


def _pair() -> tuple[Epoch, Epoch]:
    return Epoch(VIEW, MEMBERS, "a:0"), Epoch(VIEW, MEMBERS, "b:0")


def test_sequencer_orders_contiguous_runs_and_members_follow() -> None:
    seq, member = _pair()
    data = member.stamp([msg("b1"), msg("b2")])
    seq.on_data(data)
    ordered = seq.sequence()
    assert ordered == Ordered(view=VIEW, first_gseq=1, ranges=(("b:0", 1, 2),))
    member.on_ordered(ordered)
    assert member.ord_known == 2 and member.aru == 2


def test_agreed_waits_for_the_senders_ordering_ack() -> None:
    seq, member = _pair()
    seq.on_data(member.stamp([msg("b1")]))
    ordered = seq.sequence()
    assert ordered is not None
    assert list(seq.deliverable()) == []  # b has not acknowledged the order yet
    seq.on_status(_status("b:0", 1, 0, 0))
    assert [m.payload for _, _, _, m in seq.deliverable()] == [b"b1"]


def test_safe_waits_until_every_member_knows_it_is_stable() -> None:
    seq, member = _pair()
    seq.stamp([msg("a1", Service.SAFE)])
    ordered = seq.sequence()
    assert ordered is not None
    member.on_data(Data(view=VIEW, sender="a:0", first_seq=1, msgs=(msg("a1", Service.SAFE),)))
    member.on_ordered(ordered)
    seq.on_status(_status("b:0", 1, 1, 0))  # b holds it; b does not yet know a holds it
    assert seq.stable() == 1
    assert list(seq.deliverable()) == []  # EVS-7.1: b's knowledge is still missing
    seq.on_status(_status("b:0", 1, 1, 1))
    assert [m.payload for _, _, _, m in seq.deliverable()] == [b"a1"]


def test_nak_repairs_a_lost_data_frame_and_ordering() -> None:
    seq, member = _pair()
    lost = member.stamp([msg("b1")])
    member.stamp([msg("b2")])
    seq.on_status(_status("b:0", 0, 0, 0, sent_seq=2))
    assert seq.missing() is None  # one tick's grace: the data may still be on its way
    nak = seq.missing()
    assert nak is not None and nak.data == (("b:0", 1, 2),)
    for frame in member.repair(nak):
        assert isinstance(frame, Data)
        seq.on_data(frame)
    assert seq.contig["b:0"] == 2 and lost.msgs[0] in seq.recv["b:0"].values()


def test_a_nak_is_answered_only_for_what_the_daemon_speaks_for() -> None:
    """AUTH-1: a member holding another sender's data, or ordering it did not decide, does not
    relay it (a link refuses frames whose origin is not the authenticated peer)."""
    view = ViewId(1, "a:0")
    members = ("a:0", "b:0", "c:0")
    a, b, c = (Epoch(view, members, m) for m in members)
    data = b.stamp([msg("b1")])
    a.on_data(data)
    c.on_data(data)
    ordered = a.sequence()
    assert ordered is not None
    c.on_ordered(ordered)
    nak = Nak(view=view, sender="a:0", data=(("b:0", 1, 1),), order_from=1, order_to=1)
    assert c.repair(nak) == []  # c holds b's message and the ordering, but speaks for neither
    assert b.repair(nak) == [Data(view=view, sender="b:0", first_seq=1, msgs=data.msgs)]
    assert a.repair(nak) == [ordered]  # the sequencer answers the ordering gap
    assert {origin(f) for e in (a, b) for f in e.repair(nak)} == {"a", "b"}


def test_garbage_is_freed_once_stable_and_delivered() -> None:
    seq, _ = _pair()
    seq.stamp([msg("a1")])
    seq.sequence()
    assert [m.payload for _, _, _, m in seq.deliverable()] == [b"a1"]
    seq.collect_garbage()
    assert seq.recv["a:0"]  # b has not acknowledged: still retained for repair
    seq.on_status(_status("b:0", 1, 1, 0))
    seq.collect_garbage()
    assert seq.recv["a:0"] == {} and seq.own_stable == 1 and seq.in_flight() == 0


def test_a_member_reporting_stability_lets_others_free() -> None:
    # c's acks never reach a, but b reports that everyone (c included) holds gseq 1: a may free
    # it instead of retaining everything until c is suspected (review finding, bounded memory).
    view = ViewId(1, "a:0")
    a = Epoch(view, ("a:0", "b:0", "c:0"), "a:0")
    a.stamp([msg("a1")])
    a.sequence()
    a.on_status(_status("b:0", 1, 1, 1, view=view))
    assert [m.payload for _, _, _, m in a.deliverable()] == [b"a1"]
    a.collect_garbage()
    assert a.recv["a:0"] == {} and a.stable() == 0


def test_held_epoch_acknowledges_only_what_it_delivered() -> None:
    """A lagging local client (Node: BacklogChanged) holds our receipt ack at what we delivered,
    so the sender's messages stay unstable and its window fills (ordering.md section 7)."""
    seq, member = _pair()
    member.hold(True)
    seq.stamp([msg("a1"), msg("a2")])
    ordered = seq.sequence()
    assert ordered is not None
    member.on_data(Data(view=VIEW, sender="a:0", first_seq=1, msgs=(msg("a1"), msg("a2"))))
    member.on_ordered(ordered)
    assert member.aru == 2  # it holds both ...
    report = member.status(1, None)
    assert report.aru == 0  # ... but acknowledges neither: nothing was delivered
    seq.on_status(report)
    assert seq.stable() == 0 and seq.own_unstable_bytes == 4
    member.hold(False)
    assert member.status_urgent  # the sender waits for exactly this report
    report = member.status(1, None)
    assert report.aru == 2
    seq.on_status(report)
    assert seq.stable() == 2


def test_held_epoch_acknowledges_what_it_delivered_before() -> None:
    seq, member = _pair()
    seq.stamp([msg("a1")])
    ordered = seq.sequence()
    assert ordered is not None
    member.on_data(Data(view=VIEW, sender="a:0", first_seq=1, msgs=(msg("a1"),)))
    member.on_ordered(ordered)
    member.on_status(_status("a:0", 1, 1, 0))
    assert [m.payload for _, _, _, m in member.deliverable()] == [b"a1"]
    member.hold(True)
    seq.stamp([msg("a2")])
    ordered = seq.sequence()
    assert ordered is not None
    member.on_data(Data(view=VIEW, sender="a:0", first_seq=2, msgs=(msg("a2"),)))
    member.on_ordered(ordered)
    assert member.aru == 2 and member.status(1, None).aru == 1  # never below an earlier ack


def test_a_safe_message_makes_only_the_reports_that_newly_cover_it_urgent() -> None:
    """ordering.md section 4: our aru reaching a SAFE message, then our stable reaching it, are
    the only reports SAFE needs at once; other advances wait (N^2 frames per SAFE message
    otherwise)."""
    seq, member = _pair()
    member.stamp([msg("b1")])
    seq.stamp([msg("a1", Service.SAFE), msg("a2")])
    assert not member.safe_report_due()
    member.on_data(Data(view=VIEW, sender="a:0", first_seq=1, msgs=(msg("a1", Service.SAFE),)))
    member.on_ordered(Ordered(view=VIEW, first_gseq=1, ranges=(("a:0", 1, 1),)))
    assert member.aru == 1 and member.safe_report_due()  # our aru newly covers the SAFE gseq 1
    assert member.status(1, None).aru == 1
    assert not member.safe_report_due()  # reported; nothing new for SAFE until stability
    member.on_data(Data(view=VIEW, sender="a:0", first_seq=2, msgs=(msg("a2"),)))
    member.on_ordered(Ordered(view=VIEW, first_gseq=2, ranges=(("a:0", 2, 1),)))
    assert member.aru == 2 and not member.safe_report_due()  # an AGREED advance can wait
    member.on_status(_status("a:0", 2, 2, 0))
    assert member.stable() == 2 and member.safe_report_due()  # our stable newly covers it
    member.status(1, None)
    assert not member.safe_report_due() and not member.safe_pending


def test_a_held_receipt_ack_is_urgent_for_safe_only_once_it_covers_the_message() -> None:
    seq, member = _pair()
    seq.stamp([msg("a1"), msg("a2", Service.SAFE)])
    member.hold(True)
    member.on_data(
        Data(view=VIEW, sender="a:0", first_seq=1, msgs=(msg("a1"), msg("a2", Service.SAFE)))
    )
    member.on_ordered(Ordered(view=VIEW, first_gseq=1, ranges=(("a:0", 1, 2),)))
    assert member.aru == 2 and member.ack_aru["b:0"] == 0
    assert not member.safe_report_due()  # held: we acknowledge nothing, so nothing to report
    member.delivered = 1
    member.hold(False)
    assert member.ack_aru["b:0"] == 2 and member.safe_report_due()


def test_alone_in_its_view_a_daemon_keeps_no_safe_reports() -> None:
    """Nobody waits for its reports: it does not track them at all."""
    alone = Epoch(ViewId(1, "a:0"), ("a:0",), "a:0")
    for i in range(50):
        alone.stamp([msg(f"s{i}", Service.SAFE)])
        ordered = alone.sequence()
        assert ordered is not None
        assert [m.payload for _, _, _, m in alone.deliverable()] == [f"s{i}".encode()]
        alone.collect_garbage()
    assert alone.aru == 50 and not alone.safe_pending and not alone.safe_report_due()


def test_one_message_ordered_twice_is_delivered_and_freed_once() -> None:
    """A buggy or hostile coordinator orders one message at two gseqs (protocol/ordering.md
    section 10: the daemon keeps running): it is delivered once, and freeing both entries
    does not fail on the second (it raised KeyError out of the pump)."""
    _, member = _pair()
    member.stamp([msg("b1")])
    member.on_ordered(Ordered(view=VIEW, first_gseq=1, ranges=(("b:0", 1, 1), ("b:0", 1, 1))))
    assert [m.payload for _, _, _, m in member.deliverable()] == [b"b1"]
    assert member.delivered == 2
    member.on_status(_status("a:0", 2, 2, 2))
    member.collect_garbage()
    assert member.recv["b:0"] == {} and member.gc_upto == 2
