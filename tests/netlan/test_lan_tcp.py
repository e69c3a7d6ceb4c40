"""Three daemons on three hosts of a namespace LAN (``groupcomm.netlan``) on the TCP data plane,
clients in the test process over ``ipc://``: one view, one AGREED order, traffic that really
crossed the LAN, and a partition made by the network (a host unplugged), not by fault injection,
followed by the merge. Traces checked by the simulator's checkers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from groupcomm import netlan
from groupcomm.core.service import Service
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import (
    NAMES,
    LiveClient,
    assert_traces_ok,
    close_all,
    open_client,
    wait_all_members,
    wait_daemons,
)
from tests.netlan_support import require_netns

T = 15.0
G = "lan"


@pytest.fixture
def lan() -> Iterator[netlan.NetLan]:
    require_netns()
    with netlan.NetLan(len(NAMES)) as lan:
        yield lan


@pytest.fixture
def cluster(lan: netlan.NetLan, tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster.on_hosts(tmp_path, dict(zip(NAMES, lan.hosts, strict=True)))
    c.start()
    try:
        asyncio.run(wait_daemons(c, NAMES, 20.0))
        yield c
    finally:
        c.stop()


@pytest.fixture
async def trio(cluster: LocalCluster) -> AsyncIterator[list[LiveClient]]:
    clients = [await open_client(cluster, d, "app") for d in NAMES]
    for c in clients:
        await c.conn.join(G)
    await wait_all_members(clients, G, {c.name for c in clients}, T)
    try:
        yield clients
    finally:
        await close_all(clients)


async def test_agreed_order_over_the_lan_then_unplug_and_merge(
    lan: netlan.NetLan, cluster: LocalCluster, trio: list[LiveClient]
) -> None:
    a, b, c = trio
    for name, host in zip(NAMES, lan.hosts, strict=True):
        assert f'host = "{host.ip}"' in (cluster.workdir / f"{name}.toml").read_text()
    before = [lan.traffic(i) for i in range(3)]
    n = 20
    await asyncio.gather(
        *(
            x.conn.multicast(G, f"{x.daemon}-{i}".encode(), service=Service.AGREED)
            for i in range(n)
            for x in trio
        )
    )
    await asyncio.gather(
        *(x.wait_for(lambda x: len(x.messages(G)) >= 3 * n, T, "all messages") for x in trio)
    )
    first = a.payloads(G)
    assert len(set(first)) == 3 * n
    assert b.payloads(G) == first and c.payloads(G) == first
    for i in range(3):  # the daemons talked over the LAN (TCP), not over loopback
        delta = lan.traffic(i) - before[i]
        assert delta["out.tcp"].bytes > n * 10 and delta["in.tcp"].bytes > n * 10, (i, delta)

    lan.link_down(2)  # d3's host loses its cable
    await wait_all_members([a, b], G, {a.name, b.name}, T)
    await c.wait_members(G, {c.name}, T)
    await a.conn.multicast(G, b"while apart", service=Service.AGREED)
    await b.wait_for(lambda _: b"while apart" in b.payloads(G), T, "message while apart")

    lan.link_up(2)
    cluster.mark_stable()  # the last fault is over
    await wait_all_members(trio, G, {a.name, b.name, c.name}, T)
    merged = [x.views(G)[-1] for x in trio]
    assert len({(v.gid, v.members) for v in merged}) == 1
    assert b"while apart" not in c.payloads(G)
    await c.conn.multicast(G, b"merged", service=Service.AGREED)
    for x in trio:
        await x.wait_for(lambda x: b"merged" in x.payloads(G), T, "message after merge")
    await assert_traces_ok(cluster)
