"""The client's event queue: replies go in as whole batches, ``receive``/``receive_many`` hand
them out in order, up to ``limit``, and count the payload bytes they hand out as consumed.

No daemon: replies are fed to the connection as its reader would feed them."""

from __future__ import annotations

import pytest

from groupcomm.client import Connection, ConnectionClosed, Message, RegularView
from groupcomm.client.events import Event
from groupcomm.wire.client import Msgs, ViewMsg

T = 5.0


def msgs(*payloads: bytes) -> Msgs:
    return Msgs(
        tuple(
            ("#s#d1", ("g",), 0x10, 0, p, f"m{i}", "R1.d1", i + 1) for i, p in enumerate(payloads)
        )
    )


def view(members: tuple[str, ...]) -> ViewMsg:
    return ViewMsg("g", "regular", "R1.d1/1", members, "JOIN", (members,), members[-1:])


def payloads(events: list[Event]) -> list[bytes]:
    return [e.payload for e in events if isinstance(e, Message)]


async def test_events_come_out_in_arrival_order_within_the_limit() -> None:
    conn = Connection("ipc:///nonexistent", "q")
    conn._on_reply(msgs(b"a", b"bb", b"ccc"))
    conn._on_reply(view(("#q#d1",)))
    conn._on_reply(msgs(b"dddd", b"eeeee"))

    first = await conn.receive_many(2, T)
    assert payloads(first) == [b"a", b"bb"] and len(first) == 2
    assert conn._unreported == 3
    second = await conn.receive_many(10, T)  # the rest of a batch, then whole ones
    assert [type(e) for e in second] == [Message, RegularView, Message, Message]
    assert payloads(second) == [b"ccc", b"dddd", b"eeeee"]
    assert conn._unreported == 15  # every payload byte handed out, none twice
    with pytest.raises(TimeoutError):
        await conn.receive_many(10, 0.01)


async def test_receive_takes_one_event_at_a_time_from_a_batch() -> None:
    conn = Connection("ipc:///nonexistent", "q")
    batch = [bytes([i]) * (i + 1) for i in range(50)]
    conn._on_reply(msgs(*batch))
    got = [await conn.receive(T) for _ in range(50)]
    assert payloads(got) == batch
    assert conn._unreported == sum(map(len, batch))
    assert not conn._batches and conn._offset == 0


async def test_events_queued_before_the_end_are_still_delivered() -> None:
    conn = Connection("ipc:///nonexistent", "q")
    conn._on_reply(msgs(b"x", b"y"))
    conn._end(ConnectionClosed("slow consumer"))
    assert payloads(await conn.receive_many(1, T)) == [b"x"]
    assert payloads(await conn.receive_many(5, T)) == [b"y"]
    for _ in range(2):  # and then the end, every time
        with pytest.raises(ConnectionClosed, match="slow consumer"):
            await conn.receive_many(5, T)


async def test_an_empty_msgs_reply_is_not_an_event() -> None:
    conn = Connection("ipc:///nonexistent", "q")
    conn._on_reply(Msgs(()))
    with pytest.raises(TimeoutError):
        await conn.receive_many(10, 0.01)
    conn._on_reply(msgs(b"z"))
    assert payloads(await conn.receive_many(10, T)) == [b"z"]
