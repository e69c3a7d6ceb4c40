"""Large messages end to end (SVC-FRAG, protocol/services.md section 7): a 3-daemon cluster with
``[protocol] max_message_bytes = 64 MiB`` carries 1, 16 and 64 MiB messages at AGREED and SAFE
and a FIFO one; every member delivers every message whole, with the same content, in the same
order; the traces pass the simulator's checkers."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from groupcomm.client.connection import Connection
from groupcomm.client.events import Message
from groupcomm.core.service import Service
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import NAMES, assert_traces_ok, open_client, wait_daemons

MIB = 1 << 20
T = 120.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(
        Path(tmp_path_factory.mktemp("live-large")), NAMES, protocol={"max_message_bytes": 64 * MIB}
    )
    c.start()
    try:
        asyncio.run(wait_daemons(c, NAMES, 20.0))
        c.mark_stable()
        yield c
    finally:
        c.stop()


def _payload(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


async def _collect(conn: Connection, want: int, got: list[tuple[str, int, str]]) -> None:
    """Record (sender, size, sha256) of every message until ``want`` arrived; keep no payload."""
    while len(got) < want:
        for e in await conn.receive_many(timeout=T):
            if isinstance(e, Message):
                got.append((e.sender, len(e.payload), hashlib.sha256(e.payload).hexdigest()))


async def test_large_messages_arrive_whole_and_in_one_order(cluster: LocalCluster) -> None:
    live = [await open_client(cluster, d) for d in NAMES]
    for lc in live:
        lc._task.cancel()  # read directly: this test keeps hashes, not 200 MB of payloads
    a, b, c = (lc.conn for lc in live)
    try:
        for x in (a, b, c):
            await x.join("big")
        await asyncio.sleep(1.0)  # the joins are ordered before the first message
        plan: list[tuple[Connection, Service, list[int]]] = [
            (a, Service.AGREED, [1, 16, 64]),
            (b, Service.SAFE, [1, 16, 64]),
            (c, Service.FIFO, [16, 1]),
        ]
        expected: dict[str, list[tuple[int, str]]] = {}
        for i, (conn, _, sizes) in enumerate(plan):
            expected[conn.private_name] = [
                (s * MIB, hashlib.sha256(_payload(s * MIB, 10 * i + s)).hexdigest()) for s in sizes
            ]
        want = sum(len(v) for v in expected.values())
        got: list[list[tuple[str, int, str]]] = [[], [], []]
        readers = [asyncio.create_task(_collect(x, want, got[i])) for i, x in enumerate((a, b, c))]

        async def send(i: int) -> None:
            conn, service, sizes = plan[i]
            for s in sizes:
                await conn.multicast("big", _payload(s * MIB, 10 * i + s), service)

        await asyncio.wait_for(asyncio.gather(*(send(i) for i in range(3))), T)
        await asyncio.wait_for(asyncio.gather(*readers), T)
        assert got[0] == got[1] == got[2]  # one order, same content, at every member
        for sender, msgs in expected.items():  # each sender's messages whole, in send order
            assert [(n, h) for s, n, h in got[0] if s == sender] == msgs
        with pytest.raises(ValueError, match="exceeds the daemon's limit"):
            await a.multicast("big", b"x" * (64 * MIB + 1))
        for x in (a, b, c):  # nothing is left half-assembled (a view change may have cut one)
            messages = (await x.status())["messages"]
            assert isinstance(messages, dict)
            assert messages["fragments_buffered"] == 0 and messages["fragments_dropped"] >= 0
    finally:
        for x in (a, b, c):
            await x.close()
    await assert_traces_ok(cluster)
