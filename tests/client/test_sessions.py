"""The session layer against a fake core: names, flow control windows, slow consumers."""

from __future__ import annotations

from typing import Any

import pytest

from groupcomm.core.commands import (
    CloseSession,
    Credit,
    DeliverMembership,
    DeliverMessage,
    RejectRequest,
)
from groupcomm.core.events import (
    Event,
    JoinRequested,
    LeaveRequested,
    MulticastRequested,
    SessionClosed,
    SessionOpened,
)
from groupcomm.daemon.sessions import (
    LAGGING_MS,
    SLOW_CONSUMER,
    WINDOW_EXCEEDED,
    Ended,
    Granted,
    OpenRefused,
    Refused,
    SessionLayer,
)
from tests.client.harness import ListLog

Cmd = DeliverMessage | DeliverMembership | RejectRequest | CloseSession | Credit


class FakeCore:
    """Stamps every multicast at once (Credit) and delivers it to ``members``."""

    def __init__(self, members: list[str]) -> None:
        self.members = members
        self.seen: list[Event] = []

    def handle(self, events: list[Event]) -> list[Cmd]:
        out: list[Cmd] = []
        for e in events:
            self.seen.append(e)
            if isinstance(e, MulticastRequested):
                out.append(Credit(conn=e.conn, payload_bytes=len(e.payload)))
                out.extend(
                    DeliverMessage(
                        conn=m,
                        sender=e.conn,
                        groups=e.groups,
                        service=e.service,
                        msg_type=e.msg_type,
                        payload=e.payload,
                        mid="m",
                        conf="R1.d1",
                        n=1,
                    )
                    for m in self.members
                )
        return out


def layer(**kw: Any) -> SessionLayer:
    args: dict[str, Any] = {
        "send_window": 1000,
        "slow_consumer_bytes": 5000,
        "idle_timeout_ms": 1000,
    }
    args.update(kw)
    return SessionLayer("d1", log=ListLog(), **args)


def test_names() -> None:
    s = layer()
    assert s.open("alice", True, 0).conn == "#alice#d1"
    assert s.open("", True, 0).conn == "#r1#d1"
    assert s.open("", True, 0).conn == "#r2#d1"
    with pytest.raises(OpenRefused, match="in use"):
        s.open("alice", True, 0)
    for bad in ("a" * 21, "a b", "é", "#x"):
        with pytest.raises(OpenRefused, match=r"1\.\.20"):
            s.open(bad, True, 0)
    assert s.open("a" * 20, True, 0).conn == f"#{'a' * 20}#d1"
    assert s.take_events() == [
        SessionOpened(conn=c) for c in ("#alice#d1", "#r1#d1", "#r2#d1", f"#{'a' * 20}#d1")
    ]
    assert s.counters["refused"] == 5


def test_send_window_and_credit() -> None:
    s = layer()
    conn = s.open("a", True, 0).conn
    s.take_events()
    s.multicast(conn, 1, ("g",), 0x10, 0, b"x" * 600, 1)
    s.multicast(conn, 2, ("g",), 0x10, 0, b"x" * 600, 1)  # 1200 > 1000: refused
    assert s.take_notices() == [
        Refused(conn, 2, "mcast", None, WINDOW_EXCEEDED),
        Granted(conn, 600),  # the refused bytes go back to the client
    ]
    events = s.take_events()
    assert len(events) == 1 and s.sessions[conn].in_flight == 600
    s.apply(Credit(conn=conn, payload_bytes=600))
    assert s.take_notices() == [Granted(conn, 600)] and s.sessions[conn].in_flight == 0
    s.multicast(conn, 3, ("g",), 0x10, 0, b"x" * 5000, 2)  # larger than the window, alone: ok
    assert s.sessions[conn].in_flight == 5000 and s.take_notices() == []


def _batch_vs_singles(
    payloads: tuple[bytes, ...], groups: tuple[str, ...] = ("g",), in_flight: int = 0
) -> None:
    """``multicast_batch`` leaves exactly what one ``multicast`` per payload leaves."""
    results = []
    for batched in (True, False):
        s = layer(max_message_bytes=700)
        conn = s.open("a", True, 0).conn
        s.take_events()
        s.sessions[conn].in_flight = in_flight
        if batched:
            s.multicast_batch(conn, 10, groups, 0x10, 0, payloads, 1)
        else:
            for i, p in enumerate(payloads):
                s.multicast(conn, 10 + i, groups, 0x10, 0, p, 1)
        session = s.sessions[conn]
        results.append((s.take_events(), s.take_notices(), session.in_flight, list(session.turn)))
    assert results[0] == results[1]


def test_a_batch_is_exactly_its_multicasts() -> None:
    _batch_vs_singles((b"a" * 100, b"b" * 200, b"c" * 300))  # all accepted at once
    _batch_vs_singles((b"a" * 600, b"b" * 600))  # the second exceeds the window: refused
    _batch_vs_singles((b"a" * 100,), in_flight=950)
    _batch_vs_singles((b"a" * 800, b"b"))  # one above max_message_bytes: refused alone
    _batch_vs_singles((b"a", b"b"), groups=("g", "g"))  # bad destinations: both refused
    _batch_vs_singles(())


def test_invalid_multicast_and_group_ops_are_refused_by_request() -> None:
    s = layer()
    conn = s.open("a", True, 0).conn
    s.take_events()
    s.multicast(conn, 1, ("g",), 0x30, 0, b"ab", 0)
    s.multicast(conn, 2, ("g", "g"), 0x10, 0, b"", 0)
    s.join(conn, 3, "#p#d1", 0)
    s.leave(conn, 4, "bad group", 0)
    s.join(conn, 5, "ok", 0)
    notices = s.take_notices()
    assert [(n.req, n.op) for n in notices if isinstance(n, Refused)] == [
        (1, "mcast"),
        (2, "mcast"),
        (3, "join"),
        (4, "leave"),
    ]
    assert Granted(conn, 2) in notices
    assert s.take_events() == [JoinRequested(conn=conn, group="ok")]


def test_core_reject_names_the_request_and_returns_the_window() -> None:
    s = layer()
    conn = s.open("a", True, 0).conn
    s.multicast(conn, 9, ("g",), 0x10, 0, b"abc", 0)
    s.join(conn, 10, "g", 0)
    s.apply(RejectRequest(conn=conn, op="multicast", group=None, reason="core says no"))
    s.apply(RejectRequest(conn=conn, op="join", group="g", reason="nope"))
    assert s.take_notices() == [
        Refused(conn, 9, "mcast", None, "core says no"),
        Granted(conn, 3),
        Refused(conn, 10, "join", "g", "nope"),
    ]
    assert s.sessions[conn].in_flight == 0


def remote_message(conn: str, payload: bytes) -> DeliverMessage:
    """A message some other daemon's client sent, delivered to local ``conn``."""
    return DeliverMessage(
        conn=conn,
        sender="#r#d2",
        groups=("g",),
        service=0x10,
        msg_type=0,
        payload=payload,
        mid="m",
        conf="R1.d1",
        n=1,
    )


def test_slow_consumer_is_closed_and_fed_to_the_core() -> None:
    s = layer()
    slow = s.open("slow", True, 0).conn
    fast = s.open("fast", True, 0).conn
    s.take_events()
    for i in range(12):
        for conn in (slow, fast):
            s.apply(remote_message(conn, b"x" * 500))
        s.consumed(fast, 500, i)  # fast keeps up, slow never consumes
        notices = s.take_notices()
        if slow not in s.sessions:
            break
    assert i == 10  # 11 x 500 > 5000
    assert Ended(slow, SLOW_CONSUMER) in notices
    assert not any(isinstance(n, DeliverMessage) and n.conn == slow for n in notices)
    assert s.take_events() == [SessionClosed(conn=slow)]
    assert s.counters["slow_consumers"] == 1 and fast in s.sessions
    log = s.log
    assert isinstance(log, ListLog) and any(e == "slow_consumer" for _, e, _ in log.records)
    # commands for the closed session are ignored
    s.apply(Credit(conn=slow, payload_bytes=10))
    assert s.take_notices() == []


def test_membership_filter_idle_expiry_and_close_session() -> None:
    s = layer()
    quiet = s.open("quiet", False, 0).conn
    chatty = s.open("chatty", True, 0).conn
    view = DeliverMembership(
        conn=quiet,
        group="g",
        kind="regular",
        gid="x",
        members=(quiet,),
        cause="JOIN",
        vs_sets=(),
        changed=(),
    )
    s.apply(view)
    assert s.take_notices() == []  # no membership wanted
    s.touch(chatty, 900)
    assert s.expire(1500) == [quiet]
    assert [e for e in s.take_events() if isinstance(e, SessionClosed)] == [
        SessionClosed(conn=quiet)
    ]
    s.apply(CloseSession(conn=chatty, reason="policy"))
    assert s.take_notices() == [
        Ended(quiet, "client vanished (idle timeout)"),
        Ended(chatty, "policy"),
    ]
    assert s.sessions == {}


def test_a_turn_visits_only_the_sessions_that_acted() -> None:
    """Each request of a turn is remembered in its session's ``turn`` (a core refusal names it)
    and forgotten when the turn ends, for every session that acted and for none other: the
    turn's bookkeeping does not loop over every session (hundreds on a log feed)."""
    s = layer()
    sessions = [s.open(f"c{i}", True, 0) for i in range(5)]
    s.take_events()
    s.take_notices()
    s.multicast(sessions[1].conn, 7, ("g",), 0x10, 0, b"x", 0)
    s.join(sessions[3].conn, 8, "g", 0)
    s.multicast(sessions[3].conn, 9, ("g",), 0x10, 0, b"yy", 0)
    assert list(sessions[1].turn) == [("mcast", None, 7, 1)]
    assert list(sessions[3].turn) == [("join", "g", 8, 0), ("mcast", None, 9, 2)]
    s.take_notices()
    assert [list(x.turn) for x in sessions] == [[]] * 5
    s.multicast(sessions[1].conn, 10, ("g",), 0x10, 0, b"z", 0)
    assert list(sessions[1].turn) == [("mcast", None, 10, 1)]  # the next turn's only


def _lagging_consumer(**settings: int) -> tuple[SessionLayer, str, str]:
    """A layer with a local consumer ``slow`` 3000 bytes behind (past half of the 5000-byte
    limit, so it lags) and a local ``sender``: (layer, slow, sender)."""
    s = layer(send_window=2000, idle_timeout_ms=100_000, **settings)
    slow = s.open("slow", True, 0).conn
    sender = s.open("sender", True, 0).conn
    core = FakeCore([slow])
    core.handle(s.take_events())
    for cmd in core.handle([]):
        s.apply(cmd)
    for _ in range(6):  # 3000 > 2500 behind
        s.apply(remote_message(slow, b"x" * 500))
    s.take_notices()
    return s, slow, sender


def test_local_senders_wait_while_a_local_consumer_lags() -> None:
    """Past half the slow-consumer limit, local multicasts are parked (in order, counted in the
    send window) until the consumer catches up; one that stays behind is closed."""
    s, slow, sender = _lagging_consumer()
    for req in (1, 2, 3):
        s.multicast(sender, req, ("g",), 0x10, 0, b"y" * 500, 10)
    assert s.take_events() == [] and s.counters["parked"] == 3
    # The window still applies to what is parked: 3 x 500 held, 600 more would exceed 2000.
    s.multicast(sender, 4, ("g",), 0x10, 0, b"z" * 600, 10)
    assert Refused(sender, 4, "mcast", None, WINDOW_EXCEEDED) in s.take_notices()
    s.consumed(slow, 1000, 20)  # caught up to 2000 behind: below the limit again
    s.release_parked()
    events = s.take_events()
    assert [e.payload for e in events if isinstance(e, MulticastRequested)] == [b"y" * 500] * 3
    # Behind again, and for good: closed after LAGGING_MS of expire() checks.
    for _ in range(2):
        s.apply(remote_message(slow, b"x" * 500))
    s.multicast(sender, 5, ("g",), 0x10, 0, b"w", 30)
    assert s.take_events() == []
    s.expire(1_000)
    assert slow in s.sessions
    s.expire(1_000 + LAGGING_MS)
    assert slow not in s.sessions and Ended(slow, SLOW_CONSUMER) in s.take_notices()
    s.release_parked()
    assert [e.payload for e in s.take_events() if isinstance(e, MulticastRequested)] == [b"w"]


def test_a_join_or_leave_waits_behind_parked_multicasts() -> None:
    """A client's requests take effect in the order sent: a leave after multicasts parked for a
    lagging local consumer is parked behind them (it went to the core first: the sender left
    before its own messages were sent)."""
    s, slow, sender = _lagging_consumer()
    s.multicast(sender, 1, ("g",), 0x10, 0, b"y", 10)
    s.leave(sender, 2, "g", 10)
    s.join(sender, 3, "h", 10)
    assert s.take_events() == []
    s.consumed(slow, 1000, 20)
    s.release_parked()
    events = s.take_events()
    assert [type(e) for e in events] == [MulticastRequested, LeaveRequested, JoinRequested]
    assert [(op, req) for op, _, req, _ in s.sessions[sender].turn] == [
        ("mcast", 1),
        ("leave", 2),
        ("join", 3),
    ]
    s.leave(sender, 4, "h", 30)  # nothing parked any more: straight to the core
    assert [type(e) for e in s.take_events()] == [LeaveRequested]


def test_a_consumer_that_consumes_nothing_stops_holding_the_senders() -> None:
    """A lagging session that consumes nothing for ``slow_consumer_ms`` (one that never reads)
    no longer holds the senders: parked multicasts go on, deliveries go on until the byte limit
    closes it. A ``consumed`` report makes a lagging session hold again (issue 13)."""
    s, slow, sender = _lagging_consumer(slow_consumer_ms=250)
    s.multicast(sender, 1, ("g",), 0x10, 0, b"y", 10)
    assert s.take_events() == []  # parked: the consumer holds the senders
    s.check_lagging(100)  # first seen behind
    s.check_lagging(349)
    assert s.lagging()
    s.check_lagging(350)  # 250 ms without consuming anything
    assert not s.lagging() and s.behind() and s.counters["stalled"] == 1
    s.release_parked()
    assert [e.payload for e in s.take_events() if isinstance(e, MulticastRequested)] == [b"y"]
    s.consumed(slow, 100, 400)  # progress: holding again, still behind
    assert s.lagging()
    s.check_lagging(600)
    assert s.lagging()
    s.check_lagging(650)
    assert not s.lagging()
    for _ in range(5):  # past slow_consumer_bytes (5000): closed by the byte limit
        s.apply(remote_message(slow, b"x" * 500))
    assert slow not in s.sessions and Ended(slow, SLOW_CONSUMER) in s.take_notices()
    assert not s.behind()


def test_a_consumer_reading_a_large_delivery_keeps_holding_the_senders() -> None:
    """A client that takes bytes off its socket but has not yet reported a whole (large)
    message consumed is reading (``reading``, from the front-end): it does not count as one
    that consumes nothing, and ``unconsumed`` is unchanged."""
    s = layer(send_window=2000, idle_timeout_ms=100_000, slow_consumer_ms=250)
    slow = s.open("slow", True, 0).conn
    core = FakeCore([slow])
    core.handle(s.take_events())
    for cmd in core.handle([]):
        s.apply(cmd)
    for _ in range(6):  # 3000 > 2500 behind
        s.apply(remote_message(slow, b"x" * 500))
    s.take_notices()
    assert s.behind_sessions() == [slow]
    s.check_lagging(100)  # first seen behind
    for now in (300, 500, 700):  # its socket keeps taking bytes: progress, every turn
        s.reading(slow, now)
        s.check_lagging(now + 100)
        assert s.lagging() and s.counters["stalled"] == 0
    assert s.sessions[slow].unconsumed == 3000
    s.check_lagging(950)  # 250 ms with neither a report nor a byte read
    assert not s.lagging() and s.counters["stalled"] == 1
    s.reading(slow, 960)  # reading again: holding again
    assert s.lagging()
