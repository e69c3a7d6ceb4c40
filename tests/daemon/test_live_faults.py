"""Live fault tests, each on a fresh 3-daemon cluster: kill -9 and restart of a daemon, kill -9
for good, and a partition by fault injection followed by a heal. Each test marks the trace
``stable`` after its last fault and ends by checking the traces, liveness (L1-L3) included; the
kill -9 tests also check how the crash appears in the trace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from groupcomm.client.events import RegularView, TransitionalView
from groupcomm.core.service import Service
from groupcomm.localcluster import LocalCluster
from groupcomm.wire.client import Reply
from sim.checkers import check_all
from sim.checkers.liveness import check_l1
from sim.trace import Trace
from tests.daemon.live import (
    NAMES,
    LiveClient,
    assert_traces_ok,
    close_all,
    open_client,
    start_cluster,
    wait_all_members,
    wait_daemons,
)

T = 15.0
G = "faults"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start_cluster(tmp_path, faults=True)
    try:
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


def with_live(trace: Trace, live: list[str]) -> Trace:
    """``trace`` with its ``end`` listing ``live`` instead."""
    end = trace.end
    assert end is not None
    return Trace([replace(e, live=tuple(live)) if e is end else e for e in trace.events])


def assert_l1_rejects_bad_ends(trace: Trace, crashed: str) -> None:
    """The live trace passed; the same trace with a wrong ``end.live`` fails L1."""
    assert trace.end is not None
    live = list(trace.end.live)
    bad = {
        "a crashed incarnation listed live": [*live, crashed],
        "a daemon outside the final configuration": [*live, "d9:1"],
        "a live daemon left out": live[1:],
    }
    for what, wrong in bad.items():
        found = check_l1(with_live(trace, wrong))
        assert found and all(v.prop == "L1" for v in found), what
        assert any(v.prop == "L1" for v in check_all(with_live(trace, wrong))), what


def trace_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def last_change(x: LiveClient) -> tuple[bool, RegularView]:
    """(a transitional view came right before the last regular view, that view)."""
    seen = [e for e in x.events if isinstance(e, RegularView | TransitionalView) and e.group == G]
    last = seen[-1]
    assert isinstance(last, RegularView)
    return len(seen) >= 2 and isinstance(seen[-2], TransitionalView), last


@pytest.mark.parametrize(
    "new_name",
    [
        "app2",
        "app",  # the same private name again: a new connection in the trace model
    ],
)
async def test_kill9_then_restart_and_merge(
    cluster: LocalCluster, trio: list[LiveClient], new_name: str
) -> None:
    a, b, c = trio
    await a.conn.multicast(G, b"before")
    for x in trio:
        await x.wait_for(lambda x: b"before" in x.payloads(G), T, "before")

    cluster.kill9("d3")
    await wait_all_members([a, b], G, {a.name, b.name}, T)
    for x in (a, b):
        transitional, view = last_change(x)
        assert transitional, f"{x.name}: no transitional view before the NETWORK view"
        assert view.cause == "NETWORK" and c.name not in view.members
    await a.conn.multicast(G, b"without d3")
    await b.wait_for(lambda _: b"without d3" in b.payloads(G), T, "message after the crash")

    cluster.restart("d3")
    await wait_daemons(cluster, NAMES, 20.0)
    cluster.mark_stable()  # the last fault is over
    c2 = await open_client(cluster, "d3", new_name)
    try:
        assert c2.name == f"#{new_name}#d3"
        await c2.conn.join(G)
        everyone = {a.name, b.name, c2.name}
        await wait_all_members([a, b, c2], G, everyone, T)
        for x in (a, b, c2):
            assert x.views(G)[-1].members == a.views(G)[-1].members
        await c2.conn.multicast(G, b"back")
        for x in (a, b, c2):
            await x.wait_for(lambda x: b"back" in x.payloads(G), T, "message after restart")
    finally:
        await c2.close()
    trace = await assert_traces_ok(cluster)

    # The restarted daemon recorded the crash of the incarnation it replaces, before its own
    # first event, in the file both incarnations append to.
    old, new = [d for d in trace.daemons if d.startswith("d3:")]
    assert set(trace.crashes) == {old}
    assert trace.end is not None and new in trace.end.live and old not in trace.end.live
    lines = trace_lines(cluster.trace_path("d3"))
    at = [i for i, e in enumerate(lines) if e["ev"] == "crash"]
    assert len(at) == 1 and lines[at[0]]["d"] == old
    assert {e["d"] for e in lines[: at[0]] if "d" in e} == {old}
    assert lines[at[0] + 1]["d"] == new and lines[at[0] + 1]["ev"] == "install"
    assert {e["d"] for e in lines[at[0] + 1 :] if "d" in e} == {new}
    # L1-L3 were judged on this trace: a wrong end.live is caught
    assert_l1_rejects_bad_ends(trace, old)


async def test_kill9_for_good(cluster: LocalCluster, trio: list[LiveClient]) -> None:
    """A daemon killed and not restarted: the harness records its crash (no restart will), and
    ``end`` lists only the two survivors, whose final configuration L1 checks."""
    a, b, _ = trio
    cluster.kill9("d3")
    await wait_all_members([a, b], G, {a.name, b.name}, T)
    cluster.mark_stable()
    await a.conn.multicast(G, b"after the crash")
    for x in (a, b):
        await x.wait_for(lambda x: b"after the crash" in x.payloads(G), T, "after the crash")
    trace = await assert_traces_ok(cluster)
    (gone,) = [d for d in trace.daemons if d.startswith("d3:")]
    assert set(trace.crashes) == {gone}
    assert trace.end is not None and len(trace.end.live) == 2 and gone not in trace.end.live
    assert trace.stable is not None and trace.crashes[gone].idx < trace.stable.idx
    last = trace_lines(cluster.trace_path("d3"))[-1]
    assert last == {"ev": "crash", "d": gone, "t": trace.crashes[gone].t}
    assert_l1_rejects_bad_ends(trace, gone)


async def test_partition_and_heal(cluster: LocalCluster, trio: list[LiveClient]) -> None:
    a, b, c = trio
    ok, text = await c.conn.admin("partition", "d1", "d2")
    assert ok, text
    await wait_all_members([a, b], G, {a.name, b.name}, T)
    await c.wait_members(G, {c.name}, T)
    for x in trio:
        transitional, view = last_change(x)
        assert transitional and view.cause == "NETWORK"

    await a.conn.multicast(G, b"left side")
    await c.conn.multicast(G, b"right side")
    await b.wait_for(lambda _: b"left side" in b.payloads(G), T, "left side traffic")
    await a.wait_for(lambda _: b"left side" in a.payloads(G), T, "left side traffic")
    await c.wait_for(lambda _: b"right side" in c.payloads(G), T, "right side traffic")

    ok, text = await c.conn.admin("heal")
    assert ok, text
    cluster.mark_stable()
    everyone = {a.name, b.name, c.name}
    await wait_all_members(trio, G, everyone, T)
    merged = [x.views(G)[-1] for x in trio]
    for view in merged:
        assert view.cause == "NETWORK"
        assert len(view.vs_sets) == 2
        assert {frozenset(s) for s in view.vs_sets} == {
            frozenset({a.name, b.name}),
            frozenset({c.name}),
        }
        assert (view.gid, view.members) == (merged[0].gid, merged[0].members)
    # each side kept its own traffic: nothing crossed the partition, nothing was replayed
    for x in (a, b):
        assert b"right side" not in x.payloads(G)
    assert b"left side" not in c.payloads(G)
    await a.conn.multicast(G, b"after heal")
    for x in trio:
        await x.wait_for(lambda x: b"after heal" in x.payloads(G), T, "message after heal")
    await assert_traces_ok(cluster)


async def test_early_delivery_around_views_and_a_partition(
    cluster: LocalCluster, trio: list[LiveClient]
) -> None:
    """RELIABLE and FIFO delivered on receipt (protocol/ordering.md section 8.1) while a member
    leaves and rejoins and the network splits and heals under the traffic: the live traces hold
    every property, GV-VS, SVC-FIFO and RET-POS (early messages without an ordinal) included."""
    a, b, c = trio
    levels = (Service.FIFO, Service.RELIABLE, Service.FIFO, Service.AGREED)

    async def burst(x: LiveClient, tag: str, count: int = 40) -> None:
        for i in range(count):
            await x.conn.multicast(G, f"{tag}{i}".encode(), service=levels[i % len(levels)])

    await burst(a, "a")
    await b.conn.leave(G)  # group views while early messages are in flight
    await burst(c, "c")
    await b.conn.join(G)
    await burst(a, "a2-")
    await wait_all_members(trio, G, {a.name, b.name, c.name}, T)
    ok, text = await c.conn.admin("partition", "d1", "d2")
    assert ok, text
    await burst(a, "left")
    await burst(c, "right")
    await wait_all_members([a, b], G, {a.name, b.name}, T)
    ok, text = await c.conn.admin("heal")
    assert ok, text
    cluster.mark_stable()
    await wait_all_members(trio, G, {a.name, b.name, c.name}, T)
    await burst(b, "after")
    for x in trio:
        await x.wait_for(lambda x: b"after39" in x.payloads(G), T, "the last message")
    trace = await assert_traces_ok(cluster)
    early = [e for dels in trace.delivers.values() for e in dels if e.n == 0]
    assert early and {e.svc for e in early} <= {"RELIABLE", "FIFO"}


MANY = [f"many{i:02d}" for i in range(40)]


def reply_kinds(x: LiveClient) -> list[str]:
    """The names of the reply records ``x`` gets from now on."""
    seen: list[str] = []
    real = x.conn._on_reply

    def spy(reply: Reply) -> None:
        seen.append(type(reply).__name__)
        real(reply)

    x.conn._on_reply = spy  # type: ignore[method-assign]
    return seen


async def test_partition_and_heal_over_many_groups(
    cluster: LocalCluster, trio: list[LiveClient]
) -> None:
    # Issue 11: a view change over many groups reaches the clients as ``viewset`` records
    # (protocol/client.md); every group must still get its own transitional and NETWORK view,
    # the same at every member that moves together.
    a, b, c = trio
    for x in trio:
        for g in MANY:
            await x.conn.join(g)
    for g in MANY:
        await wait_all_members(trio, g, {x.name for x in trio}, T)
    kinds = [reply_kinds(x) for x in trio]
    ok, text = await c.conn.admin("partition", "d1", "d2")
    assert ok, text
    for g in MANY:
        await wait_all_members([a, b], g, {a.name, b.name}, T)
        await c.wait_members(g, {c.name}, T)
    for g in MANY:
        for x in trio:
            transitional = x.transitionals(g)[-1]
            view = x.views(g)[-1]
            assert view.cause == "NETWORK" and transitional.gid.endswith(f"> {view.gid}")
        assert a.views(g)[-1] == replace(b.views(g)[-1], index=a.views(g)[-1].index)
    # Each daemon's 40 transitional and 40 regular views (41 with the fixture's group).
    for seen in kinds:
        assert seen.count("ViewSet") >= 2, seen

    ok, text = await c.conn.admin("heal")
    assert ok, text
    cluster.mark_stable()
    everyone = {x.name for x in trio}
    for g in MANY:
        await wait_all_members(trio, g, everyone, T)
        merged = [x.views(g)[-1] for x in trio]
        assert len({(v.gid, v.members, v.vs_sets) for v in merged}) == 1, g
        assert {frozenset(s) for s in merged[0].vs_sets} == {
            frozenset({a.name, b.name}),
            frozenset({c.name}),
        }
    await assert_traces_ok(cluster)
