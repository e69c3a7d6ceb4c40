"""Spread clients (the independent ``spclient``, both byte orders) and native clients on a real
3-daemon cluster with ``[spread]`` enabled: the handshake variants and reject codes, one total
order and the same views for both kinds of client, AGREED and SAFE traffic, SELF_DISCARD,
several groups, bad input closing only its own session, a partition and a merge; the merged
traces are checked by every simulator checker (``assert_traces_ok``)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from groupcomm.localcluster import LocalCluster, free_ports
from tests.daemon.live import (
    NAMES,
    LiveClient,
    assert_traces_ok,
    close_all,
    open_client,
    wait_all_members,
    wait_daemons,
)
from tests.spread.spclient import (
    AGREED,
    REG_MEMB,
    REJECT,
    SAFE,
    SELF_DISCARD,
    TRANSITION,
    Received,
    Rejected,
    SpClient,
)

G = "G"
T = 30.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    ports = free_ports(len(NAMES))
    extra = {
        name: f'[spread]\nenabled = true\nport = {port}\nunix_socket = "{tmp_path}/sp-{name}"\n'
        for name, port in zip(NAMES, ports, strict=True)
    }
    c = LocalCluster(tmp_path, NAMES, extra_toml=extra)
    c.start()
    try:
        asyncio.run(wait_daemons(c, NAMES, 20.0))
        yield c
    finally:
        c.stop()


def sock(cluster: LocalCluster, name: str) -> str:
    return f"{cluster.workdir}/sp-{name}"


def last_is(seen: list[Received], members: set[str]) -> Callable[[], bool]:
    """``seen`` has a regular view and the last one lists exactly ``members``."""
    return lambda: bool(views(seen)) and set(views(seen)[-1].groups) == members


async def until(client: SpClient, seen: list[Received], done: Callable[[], bool]) -> None:
    """Receive into ``seen`` until ``done()`` (the socket timeout bounds a broken test)."""
    while not done():
        seen.append(await asyncio.to_thread(client.receive))


def views(seen: list[Received]) -> list[Received]:
    return [m for m in seen if m.type & REG_MEMB]


def data(seen: list[Received]) -> list[bytes]:
    return [m.body for m in seen if not m.is_membership]


async def test_handshakes_and_rejects(cluster: LocalCluster) -> None:
    path = sock(cluster, "d1")
    for version in ((5, 0, 1), (4, 4, 0), (3, 15, 6), (3, 14, 0), (3, 1, 0)):
        c = await asyncio.to_thread(SpClient, path, f"v{version[1]}", version=version)
        assert c.private_name == f"#v{version[1]}#d1"
        assert len(c.daemon_version) == (3 if version >= (3, 15, 0) else 2)
        c.disconnect()
    split = await asyncio.to_thread(SpClient, path, "split", split=True)
    for name, version, code in (
        ("old", (3, 0, 9), -7),  # REJECT_VERSION
        ("has space", (5, 0, 1), -5),  # REJECT_ILLEGAL_NAME (length 9, a space)
        ("elevenchars", (5, 0, 1), -5),
        ("split", (5, 0, 1), -6),  # REJECT_NOT_UNIQUE
    ):
        with pytest.raises(Rejected) as e:
            await asyncio.to_thread(SpClient, path, name, version=version)
        assert e.value.code == code, name
    # the split session was not disturbed by any of that
    split.join(G)
    got = await asyncio.to_thread(split.receive)
    assert got.type & REG_MEMB and got.groups == ["#split#d1"]
    split.disconnect()
    await assert_traces_ok(cluster)


async def test_spread_and_native_share_order_views_and_partitions(
    cluster: LocalCluster,
) -> None:
    le = await asyncio.to_thread(SpClient, sock(cluster, "d1"), "le")
    be = await asyncio.to_thread(SpClient, sock(cluster, "d2"), "be", little_endian=False)
    native: LiveClient = await open_client(cluster, "d3", "nat")
    everyone = {"#le#d1", "#be#d2", "#nat#d3"}
    seen: dict[str, list[Received]] = {"le": [], "be": []}
    le.join(G)
    be.join(G)
    await native.conn.join(G)
    await wait_all_members([native], G, everyone, T)
    for c, key in ((le, "le"), (be, "be")):
        await until(
            c,
            seen[key],
            last_is(seen[key], everyone),
        )
    # one group id and member list for all; a lightweight view has one vs-set: the changed one
    last = [views(seen[k])[-1] for k in ("le", "be")]
    assert last[0].groups == last[1].groups == sorted(everyone)
    assert last[0].membership()[0] == last[1].membership()[0]

    # AGREED and SAFE from all three, one order everywhere; SELF_DISCARD; two groups
    le.multicast(AGREED, [G], b"le-1", mess_type=-2)
    be.multicast(SAFE, [G], b"be-1", mess_type=7)
    await native.conn.multicast(G, b"nat-1")
    le.multicast(SAFE | SELF_DISCARD, [G, "H"], b"le-2")
    want = {b"le-1", b"be-1", b"nat-1", b"le-2"}
    await until(be, seen["be"], lambda: want <= set(data(seen["be"])))
    await until(le, seen["le"], lambda: {b"le-1", b"be-1", b"nat-1"} <= set(data(seen["le"])))
    await native.wait_for(lambda x: want <= set(x.payloads(G)), T, "all four")
    order = [p for p in native.payloads(G) if p in want]
    assert [p for p in data(seen["be"]) if p in want] == order
    assert [p for p in data(seen["le"]) if p in want] == [p for p in order if p != b"le-2"]
    by_body = {m.body: m for m in seen["be"]}
    assert by_body[b"le-1"].mess_type == -2 and by_body[b"be-1"].mess_type == 7
    assert by_body[b"le-1"].sender == "#le#d1" and by_body[b"le-1"].type == AGREED
    assert by_body[b"le-2"].groups == [G, "H"] and by_body[b"le-2"].type == SAFE | SELF_DISCARD
    nat = {m.payload: m for m in native.messages(G)}
    assert nat[b"be-1"].sender == "#be#d2" and nat[b"be-1"].msg_type == 7

    # bad input closes only its own session: a wrong private name in the header
    bad = await asyncio.to_thread(SpClient, sock(cluster, "d1"), "bad")
    bad.join(G)
    bad.send_raw(
        struct.pack(
            "<I32siIi", AGREED | 0x80000080, b"#nobody#d1".ljust(32, b"\0"), 1, 0x80000080, 1
        )
        + G.encode().ljust(32, b"\0")
        + b"x"
    )
    assert await asyncio.to_thread(bad.closed)

    # a refused multicast comes back as REJECT_MESS: old_type, and the sender's private group
    # added to the groups (Spread 5.0.1 message.c Message_add_oldtype_to_reject)
    le.multicast(AGREED, ["no such group"], b"refused")
    await until(le, seen["le"], lambda: any(m.body == b"refused" for m in seen["le"]))
    (rej,) = [m for m in seen["le"] if m.body == b"refused"]
    assert rej.type & 0x00400000 and rej.old_type == AGREED
    assert rej.groups == ["no such group", "#le#d1"] and rej.sender == "#le#d1"

    # partition d3 away, traffic on each side, heal: NETWORK views with vs-sets
    ok, text = await native.conn.admin("partition", "d1", "d2")
    assert ok, text
    pair = {"#le#d1", "#be#d2"}
    for c, key in ((le, "le"), (be, "be")):
        await until(c, seen[key], last_is(seen[key], pair))
        kinds = [m.type for m in seen[key] if m.is_membership]
        assert TRANSITION in kinds
    le.multicast(AGREED, [G], b"left")
    await native.conn.multicast(G, b"right")
    await until(be, seen["be"], lambda: b"left" in data(seen["be"]))
    ok, text = await native.conn.admin("heal")
    assert ok, text
    cluster.mark_stable()
    for c, key in ((le, "le"), (be, "be")):
        await until(c, seen[key], last_is(seen[key], everyone))
        merged = views(seen[key])[-1]
        assert merged.type == REG_MEMB | 0x800
        _gid, sets, mine = merged.membership()
        assert sorted(map(sorted, sets)) == [["#be#d2", "#le#d1"], ["#nat#d3"]]
        assert sets[mine] == ["#be#d2", "#le#d1"]
    assert b"right" not in data(seen["be"]) and b"left" not in native.payloads(G)
    assert not any(m.type & REJECT and m.body != b"refused" for m in seen["le"] + seen["be"])
    # a leave inside one daemon view: the lightweight regular view alone, no TRANSITION_MESS
    # before it (Spread 5.0.1 sends none; libspread 5.0.1's spuser showed the extra one)
    mark = len(seen["le"])
    be.leave(G)
    await until(le, seen["le"], last_is(seen["le"], everyone - {"#be#d2"}))
    assert [m.type for m in seen["le"][mark:] if m.is_membership] == [REG_MEMB | 0x200]
    le.disconnect()
    be.disconnect()
    await close_all([native])
    await assert_traces_ok(cluster)


async def test_a_reading_spread_client_is_never_a_slow_consumer(cluster: LocalCluster) -> None:
    """Spread clients send no ``consumed`` reports: what is written to their socket counts as
    consumed. A reader that takes three times ``slow_consumer_bytes`` (8 MiB) in a burst stays
    open and gets everything, in order."""
    reader = await asyncio.to_thread(SpClient, sock(cluster, "d2"), "reader", membership=False)
    reader.join(G)
    sender: LiveClient = await open_client(cluster, "d1", "sender")
    await sender.conn.join(G)
    await wait_all_members([sender], G, {"#reader#d2", "#sender#d1"}, T)
    chunk = 100_000
    count = 3 * (8 << 20) // chunk
    seen: list[Received] = []
    reading = asyncio.create_task(until(reader, seen, lambda: len(seen) == count))
    for i in range(count):
        await sender.conn.multicast(G, i.to_bytes(4, "big") + bytes(chunk - 4))
    await reading
    assert [int.from_bytes(m.body[:4], "big") for m in seen] == list(range(count))
    reader.disconnect()
    await close_all([sender])
    await assert_traces_ok(cluster)
