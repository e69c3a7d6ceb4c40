"""Property-based fuzzing of a live cluster's ports (issue 13): well-formed but hostile input on
the peer port and on a client port of real daemon processes. Whatever arrives, no daemon
crashes, the cluster settles back into one view of its three daemons, good clients keep
exchanging messages, and the merged traces pass every checker of the simulator.

The cluster is open (no keys: with keys nothing unauthenticated gets past TLS, see
``test_live_attacks.py``) and configures a fourth daemon, ``d4``, that never runs: the fuzzer
speaks as ``d4`` on the peer port, so its frames pass the hello and meet the core. Frames carry
real view ids and tokens of the cluster, future incarnations and epochs, huge sequence numbers,
and claims of other origins (refused, AUTH-1).

A longer run: ``HYPOTHESIS_PROFILE=long python -m pytest tests/daemon/test_live_port_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupcomm.client.connection import query_status
from groupcomm.config import load_config
from groupcomm.core.frames import Data, Frame, Install, Leave, Msg, Nak, Ordered, Propose, Status
from groupcomm.core.ids import ViewId
from groupcomm.core.service import Kind, Service
from groupcomm.localcluster import LocalCluster
from groupcomm.wire.client import (
    AccessReq,
    AdminReq,
    Bye,
    Consumed,
    Hello,
    JoinReq,
    LeaveReq,
    McastBatchReq,
    McastReq,
    Ping,
    Request,
    StatusReq,
    encode,
)
from groupcomm.wire.peer import MAX_UINT, PROTOCOL_VERSION, encode_frame
from groupcomm.wire.stream import parse_endpoint, record
from tests.daemon.live import (
    NAMES,
    assert_traces_ok,
    close_all,
    open_client,
    wait_all_members,
    wait_daemons,
)
from tests.wire import test_edge_fuzz  # noqa: F401  (registers and loads the profile)

T = 20.0
G = "fuzzed"
SETTLE_S = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(Path(tmp_path_factory.mktemp("live-fuzz")), NAMES, absent=("d4",))
    c.start()
    try:
        asyncio.run(wait_daemons(c, NAMES, 20.0))
        yield c
    finally:
        c.stop()


def live_tokens(cluster: LocalCluster) -> tuple[list[str], list[ViewId]]:
    async def ask() -> tuple[list[str], list[ViewId]]:
        tokens: list[str] = []
        views: list[ViewId] = []
        for n in NAMES:
            status = await query_status(cluster.endpoints[n], 2.0)
            tokens.append(str(status["daemon"]))
            epoch, _, coord = str(status["view"]).partition(".")
            if epoch.isdigit():
                views.append(ViewId(int(epoch), coord))
        return tokens, views

    return asyncio.run(ask())


def frames(tokens: list[str], views: list[ViewId]) -> st.SearchStrategy[list[Frame]]:
    """Hostile frames: the cluster's real view ids and tokens next to future ones, ``d4``'s own
    tokens and other daemons' (refused by origin), sequence numbers up to the codec's limit."""
    d4 = [f"d4:{i}" for i in (1, 2**40, MAX_UINT)]
    future = [f"{t.rpartition(':')[0]}:{MAX_UINT}" for t in tokens]
    senders = st.sampled_from([*d4, *d4, *tokens, *future])
    ints = st.one_of(st.integers(0, 8), st.integers(0, MAX_UINT), st.just(MAX_UINT))
    coords = st.sampled_from([*tokens, *d4, *future])
    real = st.sampled_from(views) if views else st.nothing()
    view = st.one_of(
        real,
        st.builds(ViewId, ints, coords),
        real.map(lambda v: ViewId(v.epoch + 1, "d4:1")),  # the next epoch, claimed by d4
    )
    member_sets = st.lists(st.sampled_from([*tokens, *d4]), min_size=1, max_size=5).map(
        lambda m: tuple(sorted(set(m)))
    )
    msg = st.builds(
        Msg,
        kind=st.sampled_from(list(Kind)),
        conn=st.sampled_from(["#evil#d4", "#c#d1", "x"]),
        service=st.sampled_from([int(s) for s in Service]),
        groups=st.just((G,)),
        msg_type=st.integers(0, 3),
        payload=st.just(b"FORGED"),
    )
    status = st.builds(
        Status,
        view=view,
        sender=senders,
        max_epoch=ints,
        proposal=st.none() | view,
        sent_seq=ints,
        ordered_upto=ints,
        ord_known=ints,
        aru=ints,
        stable=ints,
    )
    data = st.builds(
        Data, view=view, sender=senders, first_seq=ints, msgs=st.lists(msg, max_size=3).map(tuple)
    )
    ordered = st.builds(
        Ordered,
        view=view,
        first_gseq=ints,
        ranges=st.lists(st.tuples(senders, ints, st.integers(0, 9)), max_size=3).map(tuple),
    )
    nak = st.builds(
        Nak,
        view=view,
        sender=senders,
        data=st.lists(st.tuples(senders, ints, ints), max_size=3).map(tuple),
        order_from=ints,
        order_to=ints,
    )
    propose = st.builds(Propose, view=view, members=member_sets)
    install = st.builds(
        Install, view=view, members=member_sets, cleanups=st.just(()), groups=st.just(())
    )
    leave = st.builds(Leave, view=view, sender=senders)
    frame = st.one_of(status, data, ordered, nak, propose, install, leave)
    return st.lists(frame, min_size=1, max_size=12)


def requests() -> st.SearchStrategy[list[Request]]:
    """Well-formed client requests with hostile values, after a ``hello`` or without one."""
    ints = st.one_of(st.integers(0, 8), st.integers(0, 2**63 - 1))
    names = st.sampled_from(["", G, "#c#d1", "#x#d9", "a" * 200, "g\x00", "é"])
    groups = st.lists(names, min_size=0, max_size=4).map(tuple)
    services = st.one_of(st.sampled_from([int(s) for s in Service]), st.integers(0, 2**16))
    payload = st.one_of(st.binary(max_size=64), st.just(b"\0" * ((1 << 20) + 1)))
    req = st.one_of(
        st.builds(Hello, names, st.booleans(), st.sampled_from(["", "nope-token"])),
        st.builds(JoinReq, ints, names),
        st.builds(LeaveReq, ints, names),
        st.builds(McastReq, ints, groups, services, st.integers(0, 2**16), payload),
        st.builds(
            McastBatchReq,
            ints,
            groups,
            services,
            st.integers(0, 2**16),
            st.lists(st.binary(max_size=16), max_size=4).map(tuple),
        ),
        st.builds(Consumed, st.integers(0, 2**63 - 1)),
        st.builds(StatusReq, ints),
        # no "partition": the harness's uid is an admin, and partitioning is its right
        st.builds(AdminReq, ints, st.sampled_from(["heal", "x"]), groups),
        st.builds(AccessReq, ints, st.sampled_from(["join", "send", "x"]), groups),
        st.just(Bye()),
        st.just(Ping()),
    )
    return st.lists(req, min_size=1, max_size=10)


def send_and_close(sock: socket.socket, data: bytes) -> None:
    with sock, contextlib.suppress(OSError):
        sock.sendall(data)
        sock.settimeout(0.05)
        while sock.recv(65536):  # whatever the daemon answers, until it goes quiet
            pass


async def good_roundtrip(cluster: LocalCluster, step: str) -> None:
    a = await open_client(cluster, "d1")
    b = await open_client(cluster, "d2")
    try:
        for c in (a, b):
            await c.conn.join(G)
        await wait_all_members([a, b], G, [a.name, b.name], T)
        payload = f"good-after-{step}".encode()
        await asyncio.wait_for(a.conn.multicast(G, payload), T)
        for c in (a, b):
            await c.wait_for(lambda c: payload in c.payloads(G), T, f"roundtrip after {step}")
            assert b"FORGED" not in c.payloads(G)
    finally:
        await close_all([a, b])


def test_hostile_frames_on_the_peer_port(cluster: LocalCluster) -> None:
    tokens, views = live_tokens(cluster)
    d1 = load_config(cluster.workdir / "d1.toml")
    settings_: dict[str, Any] = {
        **dict(d1.protocol.fingerprint()),
        "data_plane": "tcp-links",
        "frame_version": PROTOCOL_VERSION,
    }
    hello = record(b"H" + json.dumps({"name": "d4", "settings": settings_}).encode())
    targets = [load_config(cluster.workdir / f"{n}.toml").me.data_port for n in NAMES]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(batch=frames(tokens, views), target=st.sampled_from(targets))
    def attack(batch: list[Frame], target: int) -> None:
        sock = socket.create_connection(("127.0.0.1", target), timeout=5)
        send_and_close(sock, hello + b"".join(record(b"F" + encode_frame(f)) for f in batch))

    attack()
    assert all(cluster.procs[n].poll() is None for n in NAMES), "a daemon died"
    asyncio.run(wait_daemons(cluster, NAMES, SETTLE_S))
    asyncio.run(good_roundtrip(cluster, "peer fuzz"))


def test_hostile_requests_on_a_client_port(cluster: LocalCluster) -> None:
    kind, path = parse_endpoint(cluster.endpoints["d3"])
    assert kind == "unix"

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(batch=requests())
    def attack(batch: list[Request]) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        send_and_close(sock, b"".join(record(encode(r)) for r in batch))

    attack()
    assert all(cluster.procs[n].poll() is None for n in NAMES), "a daemon died"
    asyncio.run(wait_daemons(cluster, NAMES, SETTLE_S))
    asyncio.run(good_roundtrip(cluster, "client fuzz"))


def test_the_traces_hold_every_property(cluster: LocalCluster) -> None:
    cluster.mark_stable()
    asyncio.run(assert_traces_ok(cluster))
