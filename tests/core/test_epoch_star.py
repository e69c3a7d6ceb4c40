"""Star views at the epoch level (protocol/ordering.md section 4): a member takes stability, the
safe point and the senders' ordering acks from its coordinator's relays, and the coordinator
publishes them."""

from __future__ import annotations

from groupcomm.core.epoch import Epoch
from groupcomm.core.frames import Data, Ordered, Status
from groupcomm.core.ids import ViewId
from groupcomm.core.service import Service
from tests.core.helpers import msg

VIEW = ViewId(1, "a:0")
MEMBERS = ("a:0", "b:0", "c:0")


def _trio() -> tuple[Epoch, Epoch, Epoch]:
    return tuple(Epoch(VIEW, MEMBERS, m, star=True) for m in MEMBERS)  # type: ignore[return-value]


def _data(sender: str, text: str, service: Service = Service.AGREED, seq: int = 1) -> Data:
    return Data(view=VIEW, sender=sender, first_seq=seq, msgs=(msg(text, service),))


def test_only_the_members_are_star_members() -> None:
    coord, b, _ = _trio()
    assert coord.star and not coord.star_member and b.star_member
    assert not Epoch(VIEW, ("a:0",), "a:0", star=True).star  # alone: nobody to report to
    assert not Epoch(VIEW, MEMBERS, "b:0").star_member  # all-to-all


def _ordered_everywhere(coord: Epoch, b: Epoch, c: Epoch, service: Service) -> Ordered:
    """c sends one message; the coordinator orders it; everyone holds data and order."""
    data = c.stamp([msg("c1", service)])
    coord.on_data(data)
    b.on_data(data)
    ordered = coord.sequence()
    assert ordered is not None
    b.on_ordered(ordered)
    c.on_ordered(ordered)
    return ordered


def test_a_member_delivers_on_the_coordinators_relayed_ack() -> None:
    coord, b, c = _trio()
    _ordered_everywhere(coord, b, c, Service.AGREED)
    assert c.ord_ack_due  # c's rule-2 ack goes to every member ...
    assert list(b.deliverable()) == []
    # ... but b lost it. The coordinator heard it (c's reports all reach it) and relays it.
    coord.on_status(c.status(0, None))
    relay = coord.status(0, None)
    assert relay.acked == 1
    b.on_status(relay)
    assert b.ack_ord["c:0"] == 0  # nothing heard from c itself
    assert [m.payload for _, _, _, m in b.deliverable()] == [b"c1"]


def test_no_relay_without_the_senders_ack() -> None:
    coord, b, c = _trio()
    _ordered_everywhere(coord, b, c, Service.AGREED)
    relay = coord.status(0, None)  # c has not acknowledged the order
    assert relay.acked == 0
    b.on_status(relay)
    assert list(b.deliverable()) == []


def test_safe_is_delivered_on_the_coordinators_safe_point() -> None:
    coord, b, c = _trio()
    _ordered_everywhere(coord, b, c, Service.SAFE)
    # The members report their aru to the coordinator; its stable is relayed back.
    for member in (b, c):
        assert member.safe_report_due()  # aru newly covers a SAFE message
        coord.on_status(member.status(0, None))
    assert coord.stable() == 1 and coord.safe_report_due()
    relay = coord.status(0, None)
    assert relay.stable == 1 and relay.safe == 0
    for member in (b, c):
        member.on_status(relay)
        assert member.stable() == 1  # from the relay: b never heard c's aru
        assert member.safe_point() == 0
        assert [m.payload for _, _, _, m in member.deliverable()] == []
        assert member.safe_report_due()  # its stable newly covers the SAFE message
        coord.on_status(member.status(0, None))
    # Every member knows it stable: the coordinator's safe point covers it, and publishing it
    # is urgent, though its own reports already covered the message.
    assert coord.safe_point() == 1 and coord.safe_report_due()
    relay = coord.status(0, None)
    assert relay.safe == 1 and not coord.safe_report_due()
    b.on_status(relay)
    assert b.safe_point() == 1
    assert [m.payload for _, _, _, m in b.deliverable()] == [b"c1"]


def test_a_members_flush_reports_the_acks_its_stable_implies() -> None:
    # Swarm seed 119 (--star, EVS-7.1): a member that knows a gseq stable only from the
    # coordinator knows that every member's ord_known reached it, and its Flush must say so.
    coord, b, c = _trio()
    _ordered_everywhere(coord, b, c, Service.SAFE)
    for member in (b, c):
        coord.on_status(member.status(0, None))
    b.on_status(coord.status(0, None))
    assert b.ack_ord["c:0"] == 0 and b.ack_stable["b:0"] == 1
    assert dict(b.ack_report()) == {"a:0": 1, "b:0": 1, "c:0": 1}


def test_the_relays_come_only_from_the_coordinator() -> None:
    _, b, _ = _trio()
    forged = Status(
        view=VIEW,
        sender="c:0",
        max_epoch=1,
        proposal=None,
        sent_seq=0,
        ordered_upto=0,
        ord_known=0,
        aru=0,
        stable=5,
        acked=5,
        safe=5,
    )
    b.on_status(forged)
    assert b.coord_acked == 0 and b.coord_safe == 0 and b.stable() == 0
