"""The session layer's replays and slow-consumer policies (protocol/retention.md sections 3
and 5: RET-SEAM, RET-DROP), against hand-made core commands."""

from __future__ import annotations

from typing import Any

import pytest

from groupcomm.core.commands import RECORD, DeliverMembership, DeliverMessage
from groupcomm.daemon.replay import Gap
from groupcomm.daemon.retention import Retention
from groupcomm.daemon.sessions import (
    SLOW_CONSUMER,
    Ended,
    Notice,
    OpenRefused,
    Refused,
    SessionLayer,
)
from groupcomm.retainconfig import RetainRule
from tests.client.harness import ListLog

LIMIT = 1000  # slow_consumer_bytes: a session is behind past 500 unconsumed


def layer(retained: bool = True, **kw: Any) -> SessionLayer:
    rules = (RetainRule("logs*", max_bytes=100_000),) if retained else ()
    return SessionLayer(
        "d1",
        send_window=1000,
        slow_consumer_bytes=LIMIT,
        log=ListLog(),
        retention=Retention(rules, lambda: 5_000_000) if retained else None,
        **kw,
    )


def deliver(s: SessionLayer, conns: list[str], n: int, size: int = 100) -> None:
    """Message ``n`` of group ``logs``: the core's record, then one per local member."""
    for conn in [RECORD, *conns]:
        s.apply(
            DeliverMessage(
                conn, "#p#d2", ("logs",), 0x10, 0, bytes([n % 256]) * size, f"d2:1|1.d2|{n}",
                "R1.d2", n,
            )
        )  # fmt: skip


def join_view(conn: str, members: tuple[str, ...]) -> DeliverMembership:
    return DeliverMembership(
        conn=conn, group="logs", kind="regular", gid="R1.d2/1", members=members,
        cause="JOIN", vs_sets=(members,), changed=(members[-1],),
    )  # fmt: skip


def pumped(s: SessionLayer) -> list[Notice]:
    s.pump()
    return s.take_notices()


def ns(notices: list[Notice]) -> list[int | str]:
    out: list[int | str] = []
    for x in notices:
        if isinstance(x, DeliverMessage):
            out.append(x.n)
        elif isinstance(x, DeliverMembership):
            out.append("view")
        elif isinstance(x, Gap):
            out.append(f"gap:{x.reason}:{x.count}")
    return out


def test_join_since_replays_then_the_view_then_the_live_stream() -> None:
    s = layer()
    old = s.open("old", True, 0).conn
    deliver(s, [], 1)
    deliver(s, [], 2)
    position = "R1.d2#1#d2:1|1.d2|1"  # the consumer had message 1
    new = s.open("new", True, 0).conn
    s.join(new, 7, "logs", 0, since=position)
    deliver(s, [], 3)  # ordered before the join: replayed
    s.apply(join_view(new, (new,)))
    deliver(s, [new], 4)  # the live stream
    s.take_notices()  # nothing was sent yet: pump decides
    assert ns(pumped(s)) == [2, 3, "view", 4]
    deliver(s, [new], 5)
    assert ns(pumped(s)) == [5]  # caught up: live messages pass directly again
    assert s.counters["replays"] == 1 and s.counters["replayed"] == 2
    assert old in s.sessions


def test_a_replay_is_paced_by_what_the_client_consumed() -> None:
    s = layer()
    for n in range(1, 21):
        deliver(s, [], n)  # 2,000 bytes retained
    c = s.open("c", True, 0).conn
    s.join(c, 1, "logs", 0, since="earliest")
    s.apply(join_view(c, (c,)))
    first = ns(pumped(s))
    assert first == [1, 2, 3, 4, 5, 6]  # up to half the limit given and unconsumed
    assert ns(pumped(s)) == []
    s.consumed(c, 600, 1)
    assert ns(pumped(s)) == [7, 8, 9, 10, 11, 12]
    s.consumed(c, 600, 2)
    assert ns(pumped(s)) == [13, 14, 15, 16, 17, 18]
    s.consumed(c, 600, 3)
    assert ns(pumped(s)) == [19, 20, "view"]


def test_join_since_is_refused_with_reasons() -> None:
    s = layer()
    c = s.open("c", True, 0).conn
    s.join(c, 1, "other", 0, since="earliest")
    s.join(c, 2, "logs", 0, since="not-a-position")
    s.join(c, 3, "logs", 0, since=-5.0)
    notices = s.take_notices()
    reasons = [n.reason for n in notices if isinstance(n, Refused)]
    assert "not retained" in reasons[0] and "no [[retain]] rule" in reasons[0]
    assert "not a position" in reasons[1]
    assert "seconds since 1970" in reasons[2]
    s.join(c, 4, "logs", 0, since="earliest")
    s.join(c, 5, "logs", 0, since="earliest")
    refused = [n for n in s.take_notices() if isinstance(n, Refused)]
    assert len(refused) == 1 and "already a member" in refused[0].reason
    plain = layer(retained=False)
    d = plain.open("d", True, 0).conn
    plain.join(d, 1, "logs", 0, since="earliest")
    assert isinstance(plain.take_notices()[0], Refused)


def test_drop_policy_replaces_the_oldest_waiting_messages_by_exact_gaps() -> None:
    s = layer(retained=False)
    c = s.open("c", True, 0, policy="drop").conn
    for n in range(1, 21):
        deliver(s, [c], n)
    got = pumped(s)
    # 6 x 100 bytes given (past half of 1,000 it waits); of the 14 waiting at most 500 bytes
    # stay, each counted as its payload and 128 bytes of its own (it is not retained): 2.
    assert ns(got) == [1, 2, 3, 4, 5, 6]
    assert not s.lagging()  # a drop session never holds the senders
    s.consumed(c, 600, 1)
    later = pumped(s)
    gap = later[0]
    assert isinstance(gap, Gap) and gap.reason == "dropped" and gap.count == 12
    assert gap.first.startswith("R1.d2#7#") and gap.last.startswith("R1.d2#18#")
    assert ns(later[1:]) == [19, 20]
    assert s.counters["dropped"] == 12


def test_drop_keeps_views_in_place() -> None:
    s = layer(retained=False)
    c = s.open("c", True, 0, policy="drop").conn
    for n in range(1, 8):
        deliver(s, [c], n)
    s.apply(join_view(c, (c, "#x#d2")))
    for n in range(8, 20):
        deliver(s, [c], n)
    s.consumed(c, 10_000, 1)
    got = ns(pumped(s)) + ns(pumped(s))
    assert "view" in got
    view_at = got.index("view")
    assert all(isinstance(x, str) or x < 8 for x in got[:view_at])  # nothing later before it


def test_disconnect_policy_never_holds_and_closes_past_the_limit() -> None:
    s = layer(retained=False)
    c = s.open("c", True, 0, policy="disconnect").conn
    for n in range(1, 10):
        deliver(s, [c], n)
        assert not s.lagging()
    deliver(s, [c], 10)
    deliver(s, [c], 11)  # 1,100 unconsumed
    assert c not in s.sessions
    assert Ended(c, SLOW_CONSUMER) in s.take_notices()


def test_block_policy_holds_the_senders_as_before() -> None:
    s = layer(retained=False)
    c = s.open("c", True, 0).conn
    for n in range(1, 7):
        deliver(s, [c], n)
    assert s.lagging()


def test_unknown_policy_is_refused() -> None:
    s = layer()
    with pytest.raises(OpenRefused, match="policy must be one of block, drop, disconnect"):
        s.open("c", True, 0, policy="sometimes")
