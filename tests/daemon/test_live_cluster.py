"""Live, non-destructive tests on one shared 3-daemon cluster (real processes on loopback):
membership, ordering and addressing end to end through the asyncio client. Each test ends by
checking the daemons' traces with the simulator's checkers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from groupcomm.client.events import RegularView, TransitionalView
from groupcomm.core.service import Service
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import (
    LiveClient,
    assert_traces_ok,
    close_all,
    open_client,
    start_cluster,
    view_key,
    wait_all_members,
)

T = 15.0  # bound of every wait


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_cluster(Path(tmp_path_factory.mktemp("live-cluster")))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
async def trio(cluster: LocalCluster) -> AsyncIterator[list[LiveClient]]:
    """One client per daemon (a on d1, b on d2, c on d3)."""
    clients = [await open_client(cluster, d) for d in ("d1", "d2", "d3")]
    try:
        yield clients
    finally:
        await close_all(clients)


def view_tokens(x: LiveClient, group: str) -> list[tuple[str, object]]:
    """The views of ``group`` at ``x`` in delivery order: ("R", (gid, members, cause)) for a
    regular view, ("T", gid) for a transitional one."""
    out: list[tuple[str, object]] = []
    for e in x.events:
        if isinstance(e, RegularView) and e.group == group:
            out.append(("R", view_key(e)))
        elif isinstance(e, TransitionalView) and e.group == group:
            out.append(("T", e.gid))
    return out


async def join_all(clients: list[LiveClient], group: str) -> None:
    for c in clients:
        await c.conn.join(group)
    await wait_all_members(clients, group, {c.name for c in clients}, T)


async def test_joins_and_leaves_give_identical_views(
    cluster: LocalCluster, trio: list[LiveClient]
) -> None:
    a, b, c = trio
    g = "views"
    for i, joiner in enumerate(trio):
        await joiner.conn.join(g)
        await wait_all_members(trio[: i + 1], g, {x.name for x in trio[: i + 1]}, T)
    await c.conn.leave(g)
    await c.wait_for(lambda _: c.self_left(g), T, "SelfLeave")
    await wait_all_members([a, b], g, {a.name, b.name}, T)
    await b.conn.leave(g)
    await b.wait_for(lambda _: b.self_left(g), T, "SelfLeave")
    await a.wait_members(g, {a.name}, T)

    full = [view_key(v) for v in a.views(g)]
    assert len({gid for gid, _, _ in full}) == len(full), "every view has its own gid"
    assert [cause for _, _, cause in full] == ["JOIN", "JOIN", "JOIN", "LEAVE", "LEAVE"]
    assert [set(m) for _, m, _ in full] == [
        {a.name},
        {a.name, b.name},
        {a.name, b.name, c.name},
        {a.name, b.name},
        {a.name},
    ]
    for x in (b, c):
        mine = [view_key(v) for v in x.views(g)]
        assert mine == [k for k in full if x.name in k[1]], f"{x.name} saw other views"
    # a leave is announced to the others by a transitional view, then the LEAVE view
    seq = {x.name: view_tokens(x, g) for x in trio}
    assert [t[0] for t in seq[a.name]] == ["R", "R", "R", "T", "R", "T", "R"]
    assert seq[b.name] == seq[a.name][1:5]
    assert seq[c.name] == seq[a.name][2:3]
    await a.conn.leave(g)
    await a.wait_for(lambda _: a.self_left(g), T, "SelfLeave")
    await assert_traces_ok(cluster)


async def test_concurrent_agreed_one_order(cluster: LocalCluster, trio: list[LiveClient]) -> None:
    g = "agreed"
    await join_all(trio, g)
    n = 30
    await asyncio.gather(
        *(
            c.conn.multicast(g, f"{c.daemon}-{i}".encode(), service=Service.AGREED)
            for i in range(n)
            for c in trio
        )
    )
    await asyncio.gather(
        *(c.wait_for(lambda c: len(c.messages(g)) >= 3 * n, T, "all messages") for c in trio)
    )
    first = trio[0].payloads(g)
    assert len(first) == 3 * n and len(set(first)) == 3 * n
    for c in trio[1:]:
        assert c.payloads(g) == first
    assert all(m.service_level == Service.AGREED for m in trio[0].messages(g))
    for d in ("d1", "d2", "d3"):  # each sender's own messages stay in send order
        assert [p for p in first if p.startswith(d.encode())] == [
            f"{d}-{i}".encode() for i in range(n)
        ]
    await assert_traces_ok(cluster)


async def test_fifo_across_groups_and_safe(cluster: LocalCluster, trio: list[LiveClient]) -> None:
    a, b, c = trio
    g1, g2, gs = "fifo-1", "fifo-2", "safe"
    await b.conn.join(g1)
    await b.conn.join(g2)
    await c.conn.join(g1)
    await b.wait_members(g1, {b.name, c.name}, T)  # c's join confirmed to b
    await b.wait_members(g2, {b.name}, T)
    await c.wait_members(g1, {b.name, c.name}, T)
    n = 40
    sent = [f"f{i}".encode() for i in range(n)]
    for i, payload in enumerate(sent):  # a is in neither group: open groups
        await a.conn.multicast(g1 if i % 2 == 0 else g2, payload, service=Service.FIFO)
    await b.wait_for(lambda _: len(b.messages()) >= n, T, "FIFO messages")
    assert b.payloads() == sent  # in send order across both groups
    assert all(m.service_level == Service.FIFO and m.sender == a.name for m in b.messages())
    await c.wait_for(lambda _: len(c.messages(g1)) >= n // 2, T, "g1 messages")
    assert c.payloads(g1) == sent[0::2]

    await join_all(trio, gs)
    safe = [(x, f"safe-{x.daemon}-{i}".encode()) for i in range(10) for x in trio]
    await asyncio.gather(*(x.conn.multicast(gs, p, service=Service.SAFE) for x, p in safe))
    for x in trio:
        await x.wait_for(lambda x: len(x.messages(gs)) >= len(safe), T, "SAFE messages")
    want = {p for _, p in safe}
    for x in trio:
        assert set(x.payloads(gs)) == want and len(x.payloads(gs)) == len(want)
        assert all(m.service_level == Service.SAFE for m in x.messages(gs))
        assert x.payloads(gs) == a.payloads(gs)
    await assert_traces_ok(cluster)


async def test_self_discard(cluster: LocalCluster, trio: list[LiveClient]) -> None:
    a, b, c = trio
    g = "discard"
    await join_all(trio, g)
    await a.conn.multicast(g, b"discarded", self_discard=True)
    await a.conn.multicast(g, b"marker")
    for x in trio:
        await x.wait_for(lambda x: b"marker" in x.payloads(g), T, "marker")
    assert a.payloads(g) == [b"marker"]
    for x in (b, c):
        assert x.payloads(g) == [b"discarded", b"marker"]
        assert x.messages(g)[0].self_discard and x.messages(g)[0].sender == a.name
    await assert_traces_ok(cluster)


async def test_multi_group_send_delivered_once(
    cluster: LocalCluster, trio: list[LiveClient]
) -> None:
    a, b, c = trio
    g1, g2 = "multi-1", "multi-2"
    await a.conn.join(g1)
    await a.conn.join(g2)
    await b.conn.join(g1)
    await c.conn.join(g2)
    await wait_all_members([a, b], g1, {a.name, b.name}, T)
    await wait_all_members([a, c], g2, {a.name, c.name}, T)
    await b.conn.multicast([g1, g2], b"both")
    await b.conn.multicast([g1, g2], b"marker")
    for x in trio:
        await x.wait_for(lambda x: b"marker" in x.payloads(), T, "marker")
    for x in trio:
        got = [m for m in x.messages() if m.payload == b"both"]
        assert len(got) == 1, f"{x.name} got {len(got)} copies"
        assert set(got[0].groups) == {g1, g2}
        assert got[0].sender == b.name
    await assert_traces_ok(cluster)


async def test_private_name_send(cluster: LocalCluster, trio: list[LiveClient]) -> None:
    a, b, c = trio
    g = "private"
    await join_all(trio, g)
    assert b.name.startswith("#") and b.name.endswith("#d2")
    await a.conn.multicast(b.name, b"for b only")
    await a.conn.multicast(g, b"marker")
    for x in trio:
        await x.wait_for(lambda x: b"marker" in x.payloads(), T, "marker")
    assert b.payloads() == [b"for b only", b"marker"]
    assert b.messages()[0].groups == (b.name,) and b.messages()[0].sender == a.name
    assert a.payloads() == [b"marker"]
    assert c.payloads() == [b"marker"]
    await assert_traces_ok(cluster)
