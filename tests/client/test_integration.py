"""The native front-end + a real single-daemon core + the asyncio client, in one process."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import msgpack
import pytest

from groupcomm.client import (
    Connection,
    ConnectionClosed,
    Message,
    RegularView,
    Rejected,
    SelfLeave,
    Service,
    SessionRefused,
    connect,
    query_status,
)
from groupcomm.client.events import Event
from groupcomm.wire.client import ErrorMsg, Hello, Reply, decode_reply, encode
from groupcomm.wire.stream import record
from tests.client.harness import mini_daemon

T = 10.0  # every test is bounded
E = TypeVar("E", bound=Event)


async def next_of(conn: Connection, kind: type[E], timeout: float = 5.0) -> E:
    """The next event of type ``kind`` (others are skipped)."""
    while True:
        event = await conn.receive(timeout)
        if isinstance(event, kind):
            return event


async def joined(conn: Connection, group: str, members: int = 1) -> RegularView:
    await conn.join(group)
    while True:
        view = await next_of(conn, RegularView)
        assert isinstance(view, RegularView)
        if view.group == group and len(view.members) >= members:
            return view


async def test_join_multicast_and_receive_own_message() -> None:
    async def body() -> None:
        async with mini_daemon() as d, connect(d.endpoint, name="alice") as a:
            assert a.private_name == "#alice#d1"
            await a.join("chat")
            view = await next_of(a, RegularView)
            assert view == RegularView(
                "chat", view.gid, ("#alice#d1",), "JOIN", (("#alice#d1",),), ("#alice#d1",), 0
            )
            await a.multicast("chat", b"hello", Service.AGREED, msg_type=7)
            msg = await a.receive(5)
            assert isinstance(msg, Message)
            assert (msg.sender, msg.groups, msg.payload, msg.msg_type) == (
                "#alice#d1",
                ("chat",),
                b"hello",
                7,
            )
            assert msg.service_level is Service.AGREED and not msg.self_discard
            await a.multicast_obj("chat", {"n": 1})
            obj = await next_of(a, Message)
            assert isinstance(obj, Message) and obj.unpack() == {"n": 1}
            info = await a.status()
            assert info["daemon"] == "d1" and info["sessions"] == ["#alice#d1"]
            assert await a.admin("heal") == (True, "queued")
            assert d.fe.admin_requests() == [("heal", [])]
            await a.leave("chat")
            assert await next_of(a, SelfLeave) == SelfLeave("chat")

    await asyncio.wait_for(body(), T)


async def test_multi_group_delivered_once_and_private_name() -> None:
    async def body() -> None:
        async with mini_daemon() as d, connect(d.endpoint, "a") as a, connect(d.endpoint) as b:
            assert b.private_name.startswith("#r") and b.private_name.endswith("#d1")
            await joined(a, "g1")
            await joined(a, "g2")
            await a.multicast(["g1", "g2"], b"both")
            await a.multicast(b.private_name, b"just you")
            await a.multicast("g1", b"after")
            got = [await next_of(a, Message) for _ in range(2)]
            assert [m.payload for m in got] == [b"both", b"after"]
            priv = await next_of(b, Message)
            assert isinstance(priv, Message)
            assert (priv.payload, priv.groups, priv.sender) == (
                b"just you",
                (b.private_name,),
                "#a#d1",
            )

    await asyncio.wait_for(body(), T)


async def test_self_discard_and_rejects() -> None:
    async def body() -> None:
        async with mini_daemon() as d, connect(d.endpoint, "a") as a, connect(d.endpoint, "b") as b:
            await joined(a, "g")
            await joined(b, "g", members=2)
            await a.multicast("g", b"not to me", self_discard=True)
            await a.multicast("g", b"to all")
            m1 = await next_of(a, Message)
            assert isinstance(m1, Message) and m1.payload == b"to all"
            got = [await next_of(b, Message) for _ in range(2)]
            assert [m.payload for m in got] == [b"not to me", b"to all"]
            assert got[0].self_discard
            req = await a.join("#x#d1")
            rej = await next_of(a, Rejected)
            assert rej == Rejected(req, "join", "#x#d1", "private names cannot be joined or left")
            req = await a.multicast("g", b"x", service=Service.AGREED | Service.SAFE)  # type: ignore[arg-type]
            rej = await next_of(a, Rejected)
            assert isinstance(rej, Rejected) and rej.req == req and rej.op == "mcast"
            await a.multicast("g", b"still fine")  # the rejected bytes came back
            m2 = await next_of(a, Message)
            assert isinstance(m2, Message) and m2.payload == b"still fine"
            with pytest.raises(SessionRefused, match="in use"):
                await connect(d.endpoint, "a", timeout=2).open()
            with pytest.raises(SessionRefused, match=r"1\.\.20"):
                await connect(d.endpoint, "bad name!", timeout=2).open()

    await asyncio.wait_for(body(), T)


async def test_send_window_waits_for_credit() -> None:
    async def body() -> None:
        async with mini_daemon(send_window=2000) as d, connect(d.endpoint, "a") as a:
            await joined(a, "g")
            for i in range(40):
                await a.multicast("g", bytes([i]) * 700)
            got = [await next_of(a, Message) for _ in range(40)]
            assert [m.payload[0] for m in got] == list(range(40))
            assert d.fe.layer.sessions["#a#d1"].in_flight == 0
            assert d.fe.layer.counters["refused"] == 0

    await asyncio.wait_for(body(), T)


async def test_multicast_many_is_many_multicasts() -> None:
    """A batch keeps order, request ids, flow control and per-message refusals."""

    async def body() -> None:
        async with mini_daemon(send_window=2000) as d, connect(d.endpoint, "a") as a:
            await joined(a, "g")
            payloads = [bytes([i]) * 300 for i in range(50)]
            reqs = await a.multicast_many("g", payloads)
            assert len(reqs) == 50 and reqs == list(range(reqs[0], reqs[0] + 50))
            got: list[Message] = []
            while len(got) < 50:
                got.extend(e for e in await a.receive_many(timeout=5) if isinstance(e, Message))
            assert [m.payload for m in got] == payloads
            # A bad service refuses every message of the batch by its own request id, and the
            # bytes come back to the window.
            bad = await a.multicast_many("g", [b"x", b"y"], Service.AGREED | Service.SAFE)  # type: ignore[arg-type]
            refused = [await next_of(a, Rejected) for _ in bad]
            assert [r.req for r in refused] == bad
            await a.multicast_many("g", [b"after"])
            assert (await next_of(a, Message)).payload == b"after"
            assert d.fe.layer.sessions["#a#d1"].in_flight == 0

    await asyncio.wait_for(body(), T)


async def test_receive_many_returns_everything_that_arrived_in_order() -> None:
    async def body() -> None:
        async with mini_daemon() as d, connect(d.endpoint, "a") as a:
            await joined(a, "g")
            for i in range(20):
                await a.multicast("g", b"%d" % i)
            await a.drain(5)
            got: list[bytes] = []
            while len(got) < 20:
                batch = await a.receive_many(limit=7, timeout=5)
                assert 1 <= len(batch) <= 7
                got.extend(e.payload for e in batch if isinstance(e, Message))
            assert got == [b"%d" % i for i in range(20)]
            with pytest.raises(TimeoutError):
                await a.receive_many(timeout=0.05)

    await asyncio.wait_for(body(), T)


async def test_two_receivers_waiting_at_once_each_get_their_own_events() -> None:
    """Two tasks wait on one connection: a batch wakes both, one takes it, the other waits on
    for the next (it neither fails nor returns empty-handed); a timeout ends only its own
    wait, and the connection's end wakes every waiter."""

    async def body() -> None:
        async with mini_daemon() as d, connect(d.endpoint, "a") as a:
            await joined(a, "g")
            first = asyncio.create_task(a.receive_many(timeout=5))
            second = asyncio.create_task(a.receive_many(timeout=5))
            late = asyncio.create_task(a.receive_many(timeout=0.05))
            await asyncio.sleep(0.01)
            with pytest.raises(TimeoutError):
                await late
            await a.multicast("g", b"one")
            done, pending = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
            assert len(done) == 1 and len(pending) == 1
            assert [e.payload for e in done.pop().result() if isinstance(e, Message)] == [b"one"]
            await a.multicast("g", b"two")
            rest = await pending.pop()
            assert [e.payload for e in rest if isinstance(e, Message)] == [b"two"]
            waiting = asyncio.create_task(a.receive_many())
            await asyncio.sleep(0.01)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(waiting, 5)

    await asyncio.wait_for(body(), T)


async def test_malformed_bytes_get_error_and_daemon_keeps_working() -> None:
    async def body() -> None:
        async with mini_daemon() as d, connect(d.endpoint, "good") as good:
            await joined(good, "g")
            path = d.endpoint[len("ipc://") :]
            reader, writer = await asyncio.open_unix_connection(path)

            async def ask(data: bytes) -> Reply:
                writer.write(record(data))
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(4), 5), "big")
                return decode_reply(await asyncio.wait_for(reader.readexactly(size), 5))

            try:
                for junk in (b"\xc1", b"", msgpack.packb([2, "hello", "x", True]), b"\x93\x01"):
                    reply = await ask(junk)
                    assert isinstance(reply, ErrorMsg) and reply.code == "malformed"
                reply = await ask(msgpack.packb([1, "join", 1, "g"]))  # no session yet
                assert reply == ErrorMsg("no_session", "send hello first")
                await ask(encode(Hello("raw", True)))
                reply = await ask(encode(Hello("raw", True)))
                assert isinstance(reply, ErrorMsg) and reply.code == "protocol"
                # A length beyond any request: only this link is closed, saying why.
                writer.write(b"\xff\xff\xff\xff")
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(4), 5), "big")
                why = decode_reply(await asyncio.wait_for(reader.readexactly(size), 5))
                assert isinstance(why, ErrorMsg) and why.code == "fatal"
                assert await asyncio.wait_for(reader.read(), 5) == b""
            finally:
                writer.close()
            assert d.fe.counters["malformed"] == 4
            await good.multicast("g", b"still here")
            m = await next_of(good, Message)
            assert isinstance(m, Message) and m.payload == b"still here"
            info = await query_status(d.endpoint)
            frontend = info["frontend"]
            assert isinstance(frontend, dict) and frontend["malformed"] == 4

    await asyncio.wait_for(body(), T)


async def test_a_flood_of_malformed_requests_logs_one_line_with_a_count() -> None:
    async def body() -> None:
        async with mini_daemon() as d:
            clock = [0.0]
            d.fe.warnings.clock = lambda: clock[0]
            path = d.endpoint[len("ipc://") :]
            reader, writer = await asyncio.open_unix_connection(path)
            try:
                for _ in range(3):
                    for _ in range(50):
                        writer.write(record(b"\xc1"))
                    for _ in range(50):  # every one still gets its error reply
                        size = int.from_bytes(await reader.readexactly(4), "big")
                        reply = decode_reply(await reader.readexactly(size))
                        assert isinstance(reply, ErrorMsg) and reply.code == "malformed"
                    clock[0] += 30.0  # half the interval
            finally:
                writer.close()
            logged = [kw for _, ev, kw in d.log.records if ev == "client_malformed"]
            assert d.fe.counters["malformed"] == 150
            assert [kw["suppressed"] for kw in logged] == [0, 99]

    await asyncio.wait_for(body(), T)


async def test_slow_consumer_is_closed_and_group_sees_disconnect() -> None:
    async def body() -> None:
        # lazy holds back reader's sends once 4000 B behind, and is closed 300 ms later.
        async with mini_daemon(slow_consumer_bytes=8000, lagging_ms=300) as d:
            async with connect(d.endpoint, "reader") as r, connect(d.endpoint, "lazy") as lazy:
                await joined(lazy, "g")
                await joined(r, "g", members=2)
                # lazy never reads from now on; reader sends and keeps reading
                seen: list[Event] = []
                for _ in range(20):
                    await r.multicast("g", b"x" * 1000)
                    while not isinstance(event := await r.receive(5), Message):
                        seen.append(event)
                views = [v for v in seen if isinstance(v, RegularView)]
                assert len(views) == 1
                view = views[0]
                assert view.cause == "DISCONNECT"
                assert view.changed == ("#lazy#d1",) and view.members == ("#reader#d1",)
                with pytest.raises(ConnectionClosed, match="slow consumer"):
                    async for _ in lazy:
                        pass
            assert d.fe.layer.counters["slow_consumers"] == 1
            assert any(e == "slow_consumer" for _, e, _ in d.log.records)

    await asyncio.wait_for(body(), T)


async def test_bye_and_idle_timeout_close_sessions() -> None:
    async def body() -> None:
        async with (
            mini_daemon(idle_timeout_ms=300) as d,
            connect(d.endpoint, "w", keepalive=0.05) as w,
        ):
            await joined(w, "g")
            async with connect(d.endpoint, "b") as b:
                await joined(b, "g")
            view = await next_of(w, RegularView)
            while isinstance(view, RegularView) and view.cause != "DISCONNECT":
                view = await next_of(w, RegularView)
            assert isinstance(view, RegularView) and view.changed == ("#b#d1",)
            # a silent client (no keepalive) vanishes after the idle timeout
            async with connect(d.endpoint, "mute", keepalive=60) as mute:
                await joined(mute, "g")
                view = await next_of(w, RegularView)
                while isinstance(view, RegularView) and view.cause != "DISCONNECT":
                    view = await next_of(w, RegularView)
                assert isinstance(view, RegularView) and view.changed == ("#mute#d1",)
                assert "#w#d1" in d.fe.layer.sessions  # w's keepalives kept it open
                assert "#mute#d1" not in d.fe.layer.sessions

    await asyncio.wait_for(body(), T)
