"""A lagging local client holds the daemon's deliveries until it catches up (BacklogChanged)."""

from __future__ import annotations

from groupcomm.core.commands import DeliverMessage
from groupcomm.core.config import CoreConfig
from groupcomm.core.events import (
    BacklogChanged,
    JoinRequested,
    MulticastRequested,
    SessionOpened,
    Started,
)
from groupcomm.core.node import Node
from groupcomm.core.service import Service

CONN = "#c1#d1"


def _node() -> Node:
    node = Node(CoreConfig(name="d1", incarnation=0, peers=("d1",)))
    node.handle(0, Started())
    node.handle(0, SessionOpened(conn=CONN))
    node.handle(0, JoinRequested(conn=CONN, group="g"))
    return node


def _send(node: Node, payload: bytes) -> list[bytes]:
    event = MulticastRequested(
        conn=CONN, groups=("g",), service=int(Service.AGREED), msg_type=0, payload=payload
    )
    return [c.payload for c in node.handle(1, event) if isinstance(c, DeliverMessage)]


def test_held_node_delivers_nothing_then_everything_in_order() -> None:
    node = _node()
    assert _send(node, b"m1") == [b"m1"]
    node.handle(2, BacklogChanged(lagging=True))
    assert _send(node, b"m2") == []
    assert _send(node, b"m3") == []
    released = node.handle(3, BacklogChanged(lagging=False))
    assert [c.payload for c in released if isinstance(c, DeliverMessage)] == [b"m2", b"m3"]
    assert _send(node, b"m4") == [b"m4"]
