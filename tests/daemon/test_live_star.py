"""Live daemons in a star view (``[protocol] star_members = 2``, protocol/membership.md section
2): every service level under traffic, a partition of one daemon and the heal, checked against
every property on the daemons' merged traces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from groupcomm.client import Service
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import (
    NAMES,
    LiveClient,
    assert_traces_ok,
    close_all,
    open_client,
    start_cluster,
    wait_all_members,
)

T = 15.0
G = "star"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start_cluster(tmp_path, faults=True, protocol={"star_members": 2})
    try:
        yield c
    finally:
        c.stop()


async def test_a_star_view_orders_survives_a_partition_and_merges(cluster: LocalCluster) -> None:
    trio = [await open_client(cluster, d, "app") for d in NAMES]
    try:
        for c in trio:
            await c.conn.join(G)
        everyone = {c.name for c in trio}
        await wait_all_members(trio, G, everyone, T)
        levels = (Service.RELIABLE, Service.FIFO, Service.CAUSAL, Service.AGREED, Service.SAFE)
        for i in range(40):
            for c in trio:
                await c.conn.multicast(G, f"{c.name} {i}".encode(), service=levels[i % 5])
        want = 40 * len(trio)
        for c in trio:
            await c.wait_for(lambda x: len(x.payloads(G)) >= want, T, "every message")

        # AGREED and SAFE: one total order everywhere
        def total(x: LiveClient) -> list[bytes]:
            return [p for p in x.payloads(G) if int(p.split()[-1]) % 5 >= 3]

        assert total(trio[0]) == total(trio[1]) == total(trio[2])
        assert len(total(trio[0])) == 16 * len(trio)

        ok, text = await trio[2].conn.admin("partition", "d1", "d2")  # d3 alone
        assert ok, text
        await wait_all_members(trio[:2], G, {trio[0].name, trio[1].name}, T)
        await trio[2].wait_members(G, {trio[2].name}, T)
        await trio[0].conn.multicast(G, b"left side", service=Service.SAFE)
        await trio[1].wait_for(lambda x: b"left side" in x.payloads(G), T, "left side SAFE")
        ok, text = await trio[2].conn.admin("heal")
        assert ok, text
        cluster.mark_stable()
        await wait_all_members(trio, G, everyone, T)
    finally:
        await close_all(trio)
    await assert_traces_ok(cluster)
