"""Live bad-input tests on one shared 3-daemon cluster: malformed and hostile client traffic is
refused precisely and never disturbs the daemon; after every bad step a good client multicasts
and both good members receive it. Each test ends by checking the traces."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgpack
import pytest

from groupcomm.core.service import Service
from groupcomm.localcluster import LocalCluster
from groupcomm.wire.client import ErrorMsg, Reply, Welcome, decode_reply
from groupcomm.wire.stream import parse_endpoint, record
from tests.daemon.live import (
    ROOT,
    LiveClient,
    assert_traces_ok,
    close_all,
    open_client,
    start_cluster,
    wait_all_members,
)

T = 15.0
G = "good"
IDLE_MS = 1500  # [daemon] session_idle_ms: a vanished client is noticed within ~2.5 s
KEEPALIVE = 0.3  # good clients ping well inside the idle timeout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_cluster(Path(tmp_path_factory.mktemp("live-bad")), session_idle_ms=IDLE_MS)
    try:
        yield c
    finally:
        c.stop()


class Good:
    """Two good members of group G (on d1 and d2) that prove the daemon still serves."""

    def __init__(self, a: LiveClient, b: LiveClient) -> None:
        self.a, self.b = a, b
        self.n = 0

    async def roundtrip(self, step: str) -> None:
        self.n += 1
        payload = f"ok-{self.n}-{step}".encode()
        await asyncio.wait_for(self.a.conn.multicast(G, payload, service=Service.AGREED), T)
        for x in (self.a, self.b):
            await x.wait_for(lambda x: payload in x.payloads(G), T, f"roundtrip after {step}")
        assert self.a.payloads(G) == self.b.payloads(G)


@pytest.fixture
async def good(cluster: LocalCluster) -> AsyncIterator[Good]:
    a = await open_client(cluster, "d1", keepalive=KEEPALIVE)
    b = await open_client(cluster, "d2", keepalive=KEEPALIVE)
    await a.conn.join(G)
    await b.conn.join(G)
    await wait_all_members([a, b], G, {a.name, b.name}, T)
    try:
        yield Good(a, b)
        assert not a.conn.errors and not b.conn.errors
        assert a.closed_reason is None and b.closed_reason is None
    finally:
        await close_all([a, b])


class Raw:
    """A raw stream to a daemon's client endpoint speaking (or not) the client protocol."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, endpoint: str) -> Raw:
        kind, address = parse_endpoint(endpoint)
        if kind == "unix":
            return cls(*await asyncio.open_unix_connection(address))
        return cls(*await asyncio.open_connection(*address))

    async def send(self, data: bytes) -> None:
        self.writer.write(record(data))
        await self.writer.drain()

    async def send_msg(self, *items: object) -> None:
        await self.send(msgpack.packb([1, *items], use_bin_type=True))

    async def reply(self, timeout: float = 5.0) -> Reply:
        head = await asyncio.wait_for(self.reader.readexactly(4), timeout)
        data = await asyncio.wait_for(self.reader.readexactly(int.from_bytes(head, "big")), timeout)
        return decode_reply(data)

    def close(self) -> None:
        self.writer.close()


def bad_str() -> bytes:
    """A msgpack str holding invalid UTF-8: fixstr header of length 2, then 0xff 0xfe."""
    return b"\xa2\xff\xfe"


def raw_array(*parts: bytes) -> bytes:
    """A msgpack fixarray of already-encoded parts."""
    assert len(parts) < 16
    return bytes([0x90 | len(parts)]) + b"".join(parts)


def pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


async def test_join_bad_group_names_rejected(cluster: LocalCluster, good: Good) -> None:
    x = await open_client(cluster, "d1", keepalive=KEEPALIVE)
    try:
        empty = await x.conn.join("")
        await x.wait_for(lambda _: len(x.rejections()) >= 1, T, "rejection of ''")
        await good.roundtrip("empty group name")
        long = await x.conn.join("g" * 300)
        await x.wait_for(lambda _: len(x.rejections()) >= 2, T, "rejection of a 300-char name")
        await good.roundtrip("300-char group name")
        r1, r2 = x.rejections()
        assert (r1.req, r1.op, r1.group) == (empty, "join", "")
        assert (r2.req, r2.op, r2.group) == (long, "join", "g" * 300)
        assert r1.reason and r2.reason
        # the refused session is still fine
        await x.conn.join(G)
        await wait_all_members([good.a, good.b, x], G, {good.a.name, good.b.name, x.name}, T)
        await good.roundtrip("after rejections")
        # roundtrip waits for a and b only: x (next to a) may read the message a moment later
        last = good.a.payloads(G)[-1]
        await x.wait_for(lambda c: last in c.payloads(G), T, "the roundtrip at x")
        assert x.payloads(G)[-1] == last
    finally:
        await x.close()
    await good.b.wait_members(G, {good.a.name, good.b.name}, T)
    await assert_traces_ok(cluster)


async def test_raw_garbage_and_invalid_utf8(cluster: LocalCluster, good: Good) -> None:
    raw = await Raw.open(cluster.endpoints["d1"])
    try:
        for junk in (b"\x00\xffgarbage\xc1", b"\xc1", pack(7), pack([9, "hello", "x", True])):
            await raw.send(junk)
            reply = await raw.reply()
            assert isinstance(reply, ErrorMsg) and reply.code == "malformed", reply
            await good.roundtrip(f"garbage {junk[:8]!r}")
        # a record longer than any request: that link (only) is closed, with one line saying why
        cut = await Raw.open(cluster.endpoints["d1"])
        cut.writer.write(b"\xff\xff\xff\xff")
        said = await asyncio.wait_for(cut.reader.read(), T)  # everything until the end
        assert int.from_bytes(said[:4], "big") == len(said) - 4
        why = decode_reply(said[4:])
        assert isinstance(why, ErrorMsg) and why.code == "fatal" and "larger than" in why.text
        cut.close()
        await good.roundtrip("oversized record")

        # hello whose name is a msgpack str with invalid UTF-8
        await raw.send(raw_array(pack(1), pack("hello"), bad_str(), pack(True)))
        reply = await raw.reply()
        assert isinstance(reply, ErrorMsg) and reply.code == "malformed", reply
        assert "utf" in reply.text.lower() or "unicode" in reply.text.lower(), reply.text
        await good.roundtrip("invalid utf-8 hello")

        # a real session, then a join whose group is invalid UTF-8
        await raw.send_msg("hello", "rawbad", True)
        assert isinstance(await raw.reply(), Welcome)
        await raw.send(raw_array(pack(1), pack("join"), pack(1), bad_str()))
        reply = await raw.reply()
        assert isinstance(reply, ErrorMsg) and reply.code == "malformed", reply
        await good.roundtrip("invalid utf-8 join")
        await raw.send_msg("bye")
    finally:
        raw.close()
    await assert_traces_ok(cluster)


async def test_requests_before_hello(cluster: LocalCluster, good: Good) -> None:
    raw = await Raw.open(cluster.endpoints["d2"])
    try:
        await raw.send_msg("join", 1, G)
        reply = await raw.reply()
        assert isinstance(reply, ErrorMsg) and reply.code == "no_session", reply
        await good.roundtrip("join before hello")
        await raw.send_msg("mcast", 2, [G], int(Service.AGREED), 0, b"sneaky")
        reply = await raw.reply()
        assert isinstance(reply, ErrorMsg) and reply.code == "no_session", reply
        await good.roundtrip("mcast before hello")
        await raw.send_msg("leave", 3, G)
        reply = await raw.reply()
        assert isinstance(reply, ErrorMsg) and reply.code == "no_session", reply
        await good.roundtrip("leave before hello")
    finally:
        raw.close()
    assert all(p != b"sneaky" for p in good.a.payloads() + good.b.payloads())
    await assert_traces_ok(cluster)


async def test_oversized_multicast_rejected(cluster: LocalCluster, good: Good) -> None:
    x = await open_client(cluster, "d1", keepalive=KEEPALIVE)
    try:
        await x.conn.join(G)
        await wait_all_members([good.a, good.b, x], G, {good.a.name, good.b.name, x.name}, T)
        await asyncio.wait_for(x.conn.multicast(G, b"small-1"), T)
        req = await asyncio.wait_for(x.conn.multicast(G, b"\x00" * ((1 << 20) + 1)), T)
        await x.wait_for(lambda _: bool(x.rejections()), 5, "rejection of the oversized message")
        # a refused message must give its send window back, or this waits forever
        await asyncio.wait_for(x.conn.multicast(G, b"small-2"), T)
        (rej,) = x.rejections()
        assert (rej.req, rej.op) == (req, "mcast")
        assert "exceeds" in rej.reason and str(1 << 20) in rej.reason, rej.reason
        for y in (good.a, good.b, x):
            await y.wait_for(lambda y: b"small-2" in y.payloads(G), T, "small-2")
            small = [p for p in y.payloads(G) if p.startswith(b"small")]
            assert small == [b"small-1", b"small-2"]
            assert all(len(p) <= 1 << 20 for p in y.payloads())
        await good.roundtrip("oversized")
        await x.conn.drain(5)  # the refused bytes did not stay counted in the send window
    finally:
        await x.close()
    await assert_traces_ok(cluster)


SENDER = textwrap.dedent(
    """
    import asyncio, sys
    from groupcomm.client import connect

    async def main() -> None:
        conn = await connect(sys.argv[1], name="victim", timeout=5).open()
        await conn.join(sys.argv[2])
        while True:
            ev = await conn.receive(5)
            if getattr(ev, "members", None) and conn.private_name in ev.members:
                break
        print("joined", flush=True)
        i = 0
        while True:
            await conn.multicast(sys.argv[2], b"v-%d" % i)
            i += 1
            if i % 20 == 0:
                await asyncio.sleep(0.005)

    asyncio.run(main())
    """
)


async def test_client_killed_mid_send(cluster: LocalCluster, good: Good) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SENDER, cluster.endpoints["d1"], G],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    victim = "#victim#d1"
    try:
        everyone = {good.a.name, good.b.name, victim}
        await wait_all_members([good.a, good.b], G, everyone, T)
        await good.b.wait_for(
            lambda _: sum(p.startswith(b"v-") for p in good.b.payloads(G)) >= 50,
            T,
            "victim's messages",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        assert proc.stderr is not None and proc.stdout is not None
        err = proc.stderr.read().decode()
        proc.stderr.close()
        proc.stdout.close()
    assert "Traceback" not in err, err
    await wait_all_members([good.a, good.b], G, {good.a.name, good.b.name}, T)
    for y in (good.a, good.b):
        view = y.views(G)[-1]
        assert view.cause == "DISCONNECT" and view.changed == (victim,), view
    await good.roundtrip("client killed")
    got = [[p for p in y.payloads(G) if p.startswith(b"v-")] for y in (good.a, good.b)]
    assert got[0] == got[1]  # every message of the victim delivered anywhere, delivered alike
    assert got[0] == [b"v-%d" % i for i in range(len(got[0]))]  # a gapless prefix, in order
    assert len(got[0]) >= 50
    assert good.a.payloads(G) == good.b.payloads(G)
    await assert_traces_ok(cluster)
