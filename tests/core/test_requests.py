"""Bad client requests are rejected with a reason and change nothing (issue: bad input)."""

from __future__ import annotations

import pytest

from groupcomm.core.commands import DeliverMembership, DeliverMessage, RejectRequest
from groupcomm.core.config import CoreConfig
from groupcomm.core.events import (
    Event,
    JoinRequested,
    LeaveRequested,
    MulticastRequested,
    SessionClosed,
    SessionOpened,
    Started,
)
from groupcomm.core.node import Node
from groupcomm.core.service import SELF_DISCARD, Service

CONN = "#c1#d1"
AGREED = int(Service.AGREED)


def _node() -> Node:
    node = Node(CoreConfig(name="d1", incarnation=0, peers=("d1",), max_message_bytes=1000))
    node.handle(0, Started())
    node.handle(0, SessionOpened(conn=CONN))
    node.handle(0, JoinRequested(conn=CONN, group="g"))
    return node


def _mc(
    groups: tuple[str, ...],
    service: int = AGREED,
    payload: bytes = b"x",
    msg_type: int = 0,
    conn: str = CONN,
) -> MulticastRequested:
    return MulticastRequested(
        conn=conn, groups=groups, service=service, msg_type=msg_type, payload=payload
    )


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_mc(()), "no destination"),
        (_mc(tuple(f"g{i}" for i in range(101))), "more than 100"),
        (_mc(("g", "g")), "duplicate"),
        (_mc(("",)), "empty"),
        (_mc(("a b",)), "whitespace"),
        (_mc(("x" * 200,)), "longer than"),
        (_mc(("g",), service=0), "invalid service"),
        (_mc(("g",), service=AGREED | int(Service.SAFE)), "invalid service"),
        (_mc(("g",), service=0x80 | AGREED), "invalid service"),
        (_mc(("g",), payload=b"x" * 1001), "exceeds"),
        (_mc(("g",), msg_type=70000), "msg_type"),
        (_mc(("g",), conn="#nobody#d1"), "no such session"),
        (JoinRequested(conn=CONN, group="#c1#d1"), "private"),
        (JoinRequested(conn=CONN, group="bad\x00name"), "control"),
        (LeaveRequested(conn="#ghost#d1", group="g"), "no such session"),
        (SessionOpened(conn="no-hash"), "malformed"),
        (SessionOpened(conn=CONN), "in use"),
    ],
)
def test_bad_request_is_rejected_and_the_node_keeps_serving(event: Event, reason: str) -> None:
    node = _node()
    out = node.handle(1, event)
    rejects = [c for c in out if isinstance(c, RejectRequest)]
    assert len(rejects) == 1 and reason in rejects[0].reason
    # Still serving: a valid multicast is delivered (single daemon view).
    out = node.handle(2, _mc(("g",), payload=b"ok"))
    assert [c.payload for c in out if isinstance(c, DeliverMessage)] == [b"ok"]


def test_self_discard_and_private_names() -> None:
    node = _node()
    node.handle(1, SessionOpened(conn="#c2#d1"))
    out = node.handle(2, _mc(("g", "#c2#d1"), service=AGREED | SELF_DISCARD, payload=b"p"))
    got = [(c.conn, c.payload) for c in out if isinstance(c, DeliverMessage)]
    assert got == [("#c2#d1", b"p")]  # sender discarded its own copy; c2 got it once


def test_closing_a_connection_removes_it_from_its_groups() -> None:
    # Review finding: a DISCONNECT names no group and must still be applied.
    node = _node()
    node.handle(1, SessionOpened(conn="#c2#d1"))
    node.handle(1, JoinRequested(conn="#c2#d1", group="g"))
    out = node.handle(2, SessionClosed(conn=CONN))
    views = [c for c in out if isinstance(c, DeliverMembership)]
    assert [(v.conn, v.kind, v.cause, v.members) for v in views] == [
        ("#c2#d1", "transitional", "", ("#c2#d1",)),
        ("#c2#d1", "regular", "DISCONNECT", ("#c2#d1",)),
    ]
    assert node.groups.members("g") == ["#c2#d1"]
