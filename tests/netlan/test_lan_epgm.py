"""Daemons on hosts of a namespace LAN (``groupcomm.netlan``) on the epgm data plane: Data and
Ordered frames really multicast (PGM over UDP to a group), everything else over the TCP mesh.
Clients in the test process over ``ipc://``. One view and one AGREED order with the traffic
counters showing one multicast copy per frame; every service level complete under loss on every
packet and under heavy loss of the multicast traffic (repairs by PGM and by the protocol's NAKs
over TCP); a host unplugged and plugged back (split, merge); a daemon killed mid-stream and
restarted (a late joiner for PGM). Every test ends with the simulator's trace checkers.

Each LAN gets its own multicast group (from its subnet) and each test its own port, so
concurrent runs could not hear each other even on one segment."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from groupcomm import netlan
from groupcomm.client.connection import query_status
from groupcomm.client.events import Message, RegularView, TransitionalView
from groupcomm.core.service import Service
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import (
    LiveClient,
    assert_traces_ok,
    close_all,
    open_client,
    wait_all_members,
    wait_daemons,
)
from tests.netlan_support import require_netns, require_pgm, set_udp_loss

T = 20.0  # bound of every wait for deliveries and views
G = "lan"
SIZE = 500  # payload bytes: data dominates the bytes on the wire
# docs/operations.md, "[epgm]": on a lossy LAN a few lost heartbeats or a TCP retransmission
# timeout must not look like a crash. Every test uses it: on a loaded 2-core machine the defaults
# (40/250 ms) let a daemon starved of CPU for a quarter of a second be suspected, and a view
# change in the middle of a test legitimately loses messages between the two sides.
PROTOCOL = {"heartbeat_ms": 100, "suspect_timeout_ms": 2000}
ORDERED = (Service.AGREED, Service.SAFE)
EVERY_LEVEL = (Service.RELIABLE, Service.FIFO, Service.AGREED, Service.SAFE)


# ------------------------------------------------------------------------------ set-up
def epgm_cluster(lan: netlan.NetLan, workdir: Path, port: int) -> LocalCluster:
    """Daemon ``d<i+1>`` on host ``i``, epgm on group ``239.192.78.<subnet>:<port>``."""
    group = f"239.192.78.{lan.subnet}"
    hosts = {f"d{h.index + 1}": h for h in lan.hosts}
    return LocalCluster.on_hosts(
        workdir,
        hosts,
        protocol=PROTOCOL,
        daemon={"transport": "epgm"},
        extra_toml={
            name: f'[epgm]\ninterface = "{h.ip}"\ngroup = "{group}"\nport = {port}\n'
            for name, h in hosts.items()
        },
    )


@contextlib.asynccontextmanager
async def epgm_lan(
    workdir: Path, hosts: int, port: int
) -> AsyncIterator[tuple[netlan.NetLan, LocalCluster]]:
    """A LAN of ``hosts`` hosts with an epgm daemon on each, in one view of all."""
    require_netns()
    require_pgm()
    with netlan.NetLan(hosts) as lan:
        cluster = epgm_cluster(lan, workdir, port)
        cluster.start()
        try:
            await wait_daemons(cluster, cluster.names, 30.0)
            yield lan, cluster
        finally:
            cluster.stop()


@contextlib.asynccontextmanager
async def members(cluster: LocalCluster, daemons: Sequence[str]) -> AsyncIterator[list[LiveClient]]:
    """One client per daemon, all in group ``G`` and in one view of it."""
    clients: list[LiveClient] = []
    try:
        for d in daemons:
            clients.append(await open_client(cluster, d, "app"))
        for c in clients:
            await c.conn.join(G)
        await wait_all_members(clients, G, {c.name for c in clients}, T)
        yield clients
    finally:
        await close_all(clients)


# ------------------------------------------------------------------------------ traffic
def payload(sender: str, service: Service, seq: int) -> bytes:
    """``d1/AGREED/00007/....``: who sent it, at which level, its place in the sender's stream."""
    return f"{sender}/{service.name}/{seq:05d}/".encode().ljust(SIZE, b".")


def parse(p: bytes) -> tuple[str, Service, int]:
    sender, service, seq = p.decode().split("/")[:3]
    return sender, Service[service], int(seq)


async def send(
    x: LiveClient, count: int, services: Sequence[Service], start: int = 0
) -> list[bytes]:
    """``count`` rounds of one message per level in ``services``, one at a time, in order."""
    sent: list[bytes] = []
    for _ in range(count):
        for service in services:
            p = payload(x.daemon, service, start + len(sent))
            await x.conn.multicast(G, p, service=service)
            sent.append(p)
    return sent


async def wait_delivered(clients: Iterable[LiveClient], want: Iterable[bytes]) -> None:
    """Until every client has delivered every payload of ``want``; on timeout, what is missing
    and the membership notices (a view change explains a loss, a stable view does not)."""
    need = set(want)

    async def one(x: LiveClient) -> None:
        try:
            await x.wait_for(lambda x: need <= set(x.payloads(G)), T, f"{len(need)} messages")
        except TimeoutError:
            missing = sorted(need - set(x.payloads(G)))
            views = [(type(v).__name__, getattr(v, "members", ())) for v in changes(x)]
            raise AssertionError(
                f"{x.name}: {len(missing)} of {len(need)} not delivered in {T} s, e.g. "
                f"{[m[:16] for m in missing[:3]]}; membership notices: {views}"
            ) from None

    await asyncio.gather(*(one(x) for x in clients))


def ordered(payloads: Iterable[bytes]) -> list[bytes]:
    """The AGREED and SAFE messages, in the order given."""
    return [p for p in payloads if parse(p)[1] in ORDERED]


def assert_fifo(x: LiveClient) -> None:
    """Each sender's FIFO-or-higher messages were delivered at ``x`` in the order sent, once."""
    got = x.payloads(G)
    assert len(got) == len(set(got)), f"{x.name}: duplicates"
    last: dict[str, int] = {}
    for p in got:
        sender, service, seq = parse(p)
        if service >= Service.FIFO:
            assert seq > last.get(sender, -1), f"{x.name}: {p[:20]!r} out of FIFO order"
            last[sender] = seq


def changes(x: LiveClient) -> list[RegularView | TransitionalView]:
    return [e for e in x.events if isinstance(e, RegularView | TransitionalView) and e.group == G]


def after_view(x: LiveClient, gid: str) -> list[bytes]:
    """What ``x`` delivered after installing the regular view ``gid``."""
    events = x.events
    start = next(
        i
        for i, e in enumerate(events)
        if isinstance(e, RegularView) and e.group == G and e.gid == gid
    )
    return [e.payload for e in events[start:] if isinstance(e, Message) and G in e.groups]


# ------------------------------------------------------------------------------ status
async def status(cluster: LocalCluster, name: str) -> dict[str, Any]:
    return dict(await query_status(cluster.endpoints[name], 2.0))


def figures(s: Mapping[str, Any]) -> dict[str, int]:
    """The repair and byte counters of one status reply."""
    messages, transport = s["messages"], s["transport"]
    assert isinstance(messages, dict) and isinstance(transport, dict)
    return {
        "retransmitted": int(messages["retransmitted"]),
        "naks": int(messages["naks"]),
        "bytes_fanout": int(transport["bytes_fanout"]),
        "bytes_mesh": int(transport["bytes_mesh"]),
    }


async def totals(cluster: LocalCluster) -> dict[str, int]:
    """``figures`` summed over every daemon of the cluster."""
    out: dict[str, int] = {}
    for name in cluster.names:
        for key, value in figures(await status(cluster, name)).items():
            out[key] = out.get(key, 0) + value
    return out


def growth(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


def traffic(lan: netlan.NetLan) -> list[netlan.Traffic]:
    return [lan.traffic(h.index) for h in lan.hosts]


def delta(after: list[netlan.Traffic], before: list[netlan.Traffic]) -> list[netlan.Traffic]:
    return [a - b for a, b in zip(after, before, strict=True)]


def report(what: str, **values: object) -> None:
    """Figures for the log (``pytest -s``); nothing asserts on them here."""
    print(f"[{what}] " + " ".join(f"{k}={v}" for k, v in values.items()))


# ------------------------------------------------------------------------------ tests
async def test_three_daemons_multicast_one_agreed_order(tmp_path: Path) -> None:
    async with epgm_lan(tmp_path, 3, 7401) as (lan, cluster), members(cluster, cluster.names) as xs:
        for name in cluster.names:
            plane = (await status(cluster, name))["transport"]["data_plane"]
            assert isinstance(plane, str) and plane.startswith("epgm "), (name, plane)
        views = [len(changes(x)) for x in xs]
        counted, before = await totals(cluster), traffic(lan)
        n = 150
        sent = await asyncio.gather(*(send(x, n, (Service.AGREED,)) for x in xs))
        everything = [p for s in sent for p in s]
        await wait_delivered(xs, everything)
        got = [x.payloads(G) for x in xs]
        assert sorted(got[0]) == sorted(everything)
        assert got[1] == got[0] and got[2] == got[0], "AGREED order differs between clients"
        for x, seen in zip(xs, views, strict=True):
            assert_fifo(x)
            assert len(changes(x)) == seen, f"{x.name}: the view changed"

        used = delta(traffic(lan), before)
        counted = growth(await totals(cluster), counted)
        mine = n * SIZE  # payload bytes each daemon's client sent
        for i, t in enumerate(used):
            # one multicast copy of its own data at least; the others' data came in by multicast
            assert t["out.mcast"].bytes >= mine, (i, t)
            assert t["in.mcast"].bytes >= 2 * mine, (i, t)
        tcp = sum(t["out.tcp"].bytes for t in used)
        mcast = sum(t["out.mcast"].bytes for t in used)
        report("lossless-3", mcast_out=mcast, tcp_out=tcp, payload=3 * mine, **counted)
        # On the TCP data plane every payload byte would leave twice over TCP (two peers):
        # 2 * 3 * mine. Here, with nothing lost, TCP only carries heartbeats, ordering acks and
        # TCP's own ACKs: no data is repaired (retransmitted) over it.
        assert tcp < mcast / 2, (tcp, mcast, counted)
        await assert_traces_ok(cluster)


async def test_five_daemons_one_copy_per_frame(tmp_path: Path) -> None:
    async with epgm_lan(tmp_path, 5, 7402) as (lan, cluster), members(cluster, cluster.names) as xs:
        assert len(xs) == 5 and all(len(x.members(G) or ()) == 5 for x in xs)
        counted, before = await totals(cluster), traffic(lan)
        n = 100
        sent = await asyncio.gather(*(send(x, n, (Service.AGREED,)) for x in xs))
        everything = [p for s in sent for p in s]
        await wait_delivered(xs, everything)
        first = xs[0].payloads(G)
        assert sorted(first) == sorted(everything)
        for x in xs[1:]:
            assert x.payloads(G) == first, f"{x.name}: another AGREED order"

        used = delta(traffic(lan), before)
        payload_bytes = len(everything) * SIZE
        out = sum(t["out.mcast"].bytes for t in used)
        # One copy of each frame leaves its sender: the multicast bytes are the payload plus
        # framing, PGM/UDP/IP headers and the small Ordered frames, far below what N-1 = 4
        # copies would be. Every host hears every other host's copy.
        assert payload_bytes <= out < 2 * payload_bytes, (out, payload_bytes)
        for i, t in enumerate(used):
            assert t["out.mcast"].bytes >= n * SIZE, (i, t)
            assert t["in.mcast"].bytes >= 4 * n * SIZE, (i, t)
        report(
            "lossless-5",
            payload=payload_bytes,
            mcast_out=out,
            mcast_in=sum(t["in.mcast"].bytes for t in used),
            tcp_out=sum(t["out.tcp"].bytes for t in used),
            **growth(await totals(cluster), counted),
        )
        await assert_traces_ok(cluster)


@pytest.mark.parametrize(
    ("kind", "port"),
    [("every packet 5%", 7403), ("udp 20%", 7404)],
)
async def test_every_level_complete_under_loss(tmp_path: Path, kind: str, port: int) -> None:
    async with (
        epgm_lan(tmp_path, 3, port) as (lan, cluster),
        members(cluster, cluster.names) as xs,
    ):
        views = [len(changes(x)) for x in xs]
        counted = await totals(cluster)
        before = traffic(lan)
        for h in lan.hosts:
            if kind == "udp 20%":
                set_udp_loss(lan, h.index, 20)
            else:
                lan.set_loss(h.index, 5, direction="in")
        n = 50  # rounds: 200 messages per sender, 600 in all
        sent = await asyncio.gather(*(send(x, n, EVERY_LEVEL) for x in xs))
        everything = [p for s in sent for p in s]
        await wait_delivered(xs, everything)
        used = delta(traffic(lan), before)  # before clear_loss: it deletes the drop counters
        for h in lan.hosts:
            lan.clear_loss(h.index)

        first = ordered(xs[0].payloads(G))
        for x, seen in zip(xs, views, strict=True):
            assert sorted(x.payloads(G)) == sorted(everything), f"{x.name}: lost or extra"
            assert_fifo(x)
            assert ordered(x.payloads(G)) == first, f"{x.name}: another AGREED/SAFE order"
            assert len(changes(x)) == seen, f"{x.name}: the view changed"

        repair = growth(await totals(cluster), counted)
        drops = [t["drop.loss"].packets for t in used]
        pgm_naks = [t["out.udp"].packets for t in used]  # PGM NAKs are unicast UDP
        report(kind, drops=drops, pgm_nak_packets=pgm_naks, **repair)
        # The run was really lossy at every host, so what got through was repaired: by PGM
        # (NAKs in unicast UDP, repairs multicast) or by the protocol (NAKs over TCP).
        assert all(d > 0 for d in drops), drops
        assert sum(pgm_naks) + repair["naks"] > 0, (pgm_naks, repair)
        await assert_traces_ok(cluster)


def assert_split(x: LiveClient, view_members: set[str]) -> None:
    """``x``'s last two membership notices: a transitional view, then a NETWORK regular view
    of ``view_members``."""
    seen = changes(x)
    assert len(seen) >= 2 and isinstance(seen[-2], TransitionalView), f"{x.name}: {seen[-2:]}"
    last = seen[-1]
    assert isinstance(last, RegularView) and last.cause == "NETWORK", f"{x.name}: {last}"
    assert set(last.members) == view_members


async def test_unplugged_host_splits_off_and_merges_back(tmp_path: Path) -> None:
    async with epgm_lan(tmp_path, 3, 7405) as (lan, cluster), members(cluster, cluster.names) as xs:
        a, b, c = xs
        n = 40
        sent = await asyncio.gather(*(send(x, n, (Service.AGREED,)) for x in xs))
        await wait_delivered(xs, [p for s in sent for p in s])

        lan.link_down(2)  # d3's host loses its cable
        await wait_all_members([a, b], G, {a.name, b.name}, T)
        await c.wait_members(G, {c.name}, T)
        for x in (a, b):
            assert_split(x, {a.name, b.name})
        assert_split(c, {c.name})
        split = [a.views(G)[-1].gid, c.views(G)[-1].gid]
        # the majority side goes on over multicast; d3 alone delivers its own
        apart = await asyncio.gather(*(send(x, n, (Service.AGREED,), start=n) for x in xs))
        await wait_delivered([a, b], apart[0] + apart[1])
        await wait_delivered([c], apart[2])
        assert after_view(a, split[0]) == after_view(b, split[0])
        assert not set(apart[0] + apart[1]) & set(c.payloads(G))
        assert not set(apart[2]) & set(a.payloads(G) + b.payloads(G))

        lan.link_up(2)
        cluster.mark_stable()  # the last fault is over
        await wait_all_members(xs, G, {x.name for x in xs}, T)
        merged = [x.views(G)[-1] for x in xs]
        assert len({(v.gid, v.members) for v in merged}) == 1, merged
        assert merged[0].cause == "NETWORK"
        after = await asyncio.gather(*(send(x, n, (Service.AGREED,), start=2 * n) for x in xs))
        await wait_delivered(xs, [p for s in after for p in s])
        tails = [after_view(x, merged[0].gid) for x in xs]
        assert tails[0] == tails[1] == tails[2], "another AGREED order after the merge"
        assert sorted(tails[0]) == sorted(p for s in after for p in s)
        for x in xs:
            assert_fifo(x)
        await assert_traces_ok(cluster)


async def stream(x: LiveClient, stop: asyncio.Event, sent: list[bytes]) -> None:
    """AGREED messages from ``x``, one every 10 ms, appended to ``sent``, until ``stop``."""
    while not stop.is_set():
        sent += await send(x, 1, (Service.AGREED,), start=len(sent))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.01)


async def test_daemon_killed_mid_stream_rejoins(tmp_path: Path) -> None:
    async with (
        epgm_lan(tmp_path, 3, 7406) as (_, cluster),
        members(cluster, cluster.names) as xs,
        contextlib.AsyncExitStack() as later,
    ):
        a, b, _ = xs
        start = len(changes(a)), len(changes(b))
        stop = asyncio.Event()
        sent: tuple[list[bytes], list[bytes]] = ([], [])
        senders = [
            asyncio.create_task(stream(x, stop, s)) for x, s in zip((a, b), sent, strict=True)
        ]
        try:
            await a.wait_for(lambda x: len(x.payloads(G)) >= 50, T, "the stream")
            cluster.kill9("d3")
            await wait_all_members([a, b], G, {a.name, b.name}, T)  # d3 left
            for x in (a, b):
                assert_split(x, {a.name, b.name})
            await wait_daemons(cluster, ("d1", "d2"), T)
            k = len(a.payloads(G))
            await a.wait_for(lambda x: len(x.payloads(G)) >= k + 50, T, "the stream without d3")

            cluster.restart("d3")
            await wait_daemons(cluster, cluster.names, 30.0)  # merged back at the daemon level
            cluster.mark_stable()  # the last fault is over
            c2 = await open_client(cluster, "d3", "app2")
            later.push_async_callback(c2.close)
            await c2.conn.join(G)
            await wait_all_members([a, b, c2], G, {a.name, b.name, c2.name}, T)
            joined = a.views(G)[-1]
            assert b.views(G)[-1].gid == c2.views(G)[-1].gid == joined.gid
            # the restarted daemon joined PGM mid-stream: it must still get the stream
            await c2.wait_for(lambda x: len(x.payloads(G)) >= 50, T, "the stream at d3")
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*senders), T)

        # The survivors stayed together (every view since the start has both), so nothing
        # either of them sent may be missing at the other, and their order is one.
        for x, y, first in ((a, b, start[0]), (b, a, start[1])):
            views = [v for v in changes(x)[first:] if isinstance(v, RegularView)]
            assert all(y.name in v.members for v in views), f"{x.name}: split from {y.name}"
        survivors = sent[0] + sent[1]
        await wait_delivered([a, b], survivors)
        assert a.payloads(G) == b.payloads(G), "another AGREED order at the survivors"
        for x in (a, b):
            assert sorted(x.payloads(G)) == sorted(survivors), f"{x.name}: lost or extra"
            assert_fifo(x)
        # d3's new client gets everything delivered in the view it joined, in the same order
        tail = after_view(a, joined.gid)
        await c2.wait_for(lambda x: len(after_view(x, joined.gid)) >= len(tail), T, "the tail")
        assert after_view(c2, joined.gid) == tail == after_view(b, joined.gid)
        assert c2.payloads(G) == tail
        report("restart", survivors_sent=len(survivors), after_rejoin=len(tail))
        await assert_traces_ok(cluster)
