"""ZmqTransport in-process: PUB/SUB and the control mesh carry frames; garbage, unknown peers and
mismatched protocol settings are counted and refused, never fatal; block/heal drop traffic."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq
from structlog.testing import capture_logs

from groupcomm.config import DaemonConfig, parse_config
from groupcomm.core.frames import Frame, Leave, Status
from groupcomm.core.ids import ViewId
from groupcomm.daemon.transport import ZmqTransport, settings_diff
from groupcomm.wire.peer import encode_frame

VIEW = ViewId(0, "d1:1")


def status(sender: str = "d1:1", seq: int = 0) -> Status:
    return Status(
        view=ViewId(0, sender),
        sender=sender,
        max_epoch=0,
        proposal=None,
        sent_seq=seq,
        ordered_upto=0,
        ord_known=0,
        aru=0,
        stable=0,
    )


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def configs(
    names: list[str], protocol: dict[str, dict[str, int]] | None = None
) -> list[DaemonConfig]:
    ports = free_ports(2 * len(names))
    peers = [
        {
            "name": n,
            "host": "127.0.0.1",
            "data_port": ports[2 * i],
            "control_port": ports[2 * i + 1],
        }
        for i, n in enumerate(names)
    ]
    protocol = protocol or {}
    return [
        parse_config(
            {
                "daemon": {"name": n, "client_endpoints": []},
                "peers": peers,
                "protocol": protocol.get(n, {}),
            },
            "test.toml",
        )
        for n in names
    ]


def poll_until(
    cond: Callable[[], bool], step: Callable[[], None] | None = None, timeout: float = 5.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    c: zmq.Context[Any] = zmq.Context()
    yield c
    c.destroy(linger=0)


def make(cfg: DaemonConfig, ctx: zmq.Context[Any]) -> ZmqTransport:
    return ZmqTransport(cfg, context=ctx)


def test_pub_sub_and_control_mesh(ctx: zmq.Context[Any]) -> None:
    c1, c2, c3 = configs(["d1", "d2", "d3"])
    t1, t2, t3 = make(c1, ctx), make(c2, ctx), make(c3, ctx)
    got: dict[str, list[Frame]] = {"d2": [], "d3": []}

    def pump() -> None:
        got["d2"] += t2.receive(100)
        got["d3"] += t3.receive(100)

    # To every other peer: one PUB send (resend until the SUB connections are up).
    def broadcast() -> None:
        t1.send(("d2", "d3"), status(seq=1))
        pump()

    poll_until(lambda: bool(got["d2"]) and bool(got["d3"]), broadcast)
    assert got["d2"][0] == status(seq=1) and got["d3"][0] == status(seq=1)
    assert t1.stats()["peers"]["d2"]["frames_out"] >= 1

    # To one peer only: the DEALER -> ROUTER mesh; d3 must not see it.
    got = {"d2": [], "d3": []}
    leave = Leave(view=VIEW, sender="d1:1")

    def targeted() -> None:
        t1.send(("d2",), leave)
        pump()

    poll_until(lambda: leave in got["d2"], targeted)
    assert leave not in got["d3"]
    assert t2.stats()["peers"]["d1"]["frames_in"] >= 2
    for t in (t1, t2, t3):
        t.close()


def test_a_frame_of_another_origin_is_refused(ctx: zmq.Context[Any]) -> None:
    """AUTH-1 on the ZeroMQ planes: d1 may not send d3's frames (counted, not delivered)."""
    c1, c2 = configs(["d1", "d2"])
    t1, t2 = make(c1, ctx), make(c2, ctx)
    got: list[Frame] = []
    forged = Leave(view=VIEW, sender="d3:1")
    own = Leave(view=VIEW, sender="d1:1")

    def step() -> None:
        t1.send(("d2",), forged)
        t1.send(("d2",), own)
        got.extend(t2.receive(100))

    poll_until(lambda: own in got, step)
    assert forged not in got
    assert t2.counters["frames_forged"] >= 1 and t2.stats()["peers"]["d1"]["forged"] >= 1
    for t in (t1, t2):
        t.close()


def test_garbage_is_counted_not_fatal(ctx: zmq.Context[Any]) -> None:
    _, c2 = configs(["d1", "d2"])
    t2 = make(c2, ctx)
    raw: zmq.Socket[bytes] = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(c2.me.control_endpoint)
    fp = t2.fp  # the same settings and data plane as d1
    good = [b"F", b"d1", fp, encode_frame(status())]
    with capture_logs() as logs:
        for parts in (
            [b"junk"],
            [b"F", b"d1", fp],  # too short for a frame
            [b"X", b"d1", fp, b"x"],  # unknown kind
            [b"F", b"d1", fp, b"\xc1\xc1garbage"],  # not msgpack
            [b"F", b"d1", fp, b"\x92\x01\x63"],  # unknown frame tag
            [b"F", b"\xff\xfe", fp, b"x"],  # undecodable sender name
            [b"F", b"zz", fp, encode_frame(status())],  # unknown peer
            [b"H", b"d1", b"{not json"],  # bad hello
            good,
        ):
            raw.send_multipart(parts)
        frames: list[Frame] = []
        poll_until(lambda: bool(frames), lambda: frames.extend(t2.receive(100)))
    assert frames == [status()]
    stats = t2.stats()
    assert stats["frames_bad"] == 6
    assert stats["frames_unknown"] == 2
    assert stats["peers"]["d1"]["bad"] == 4
    events = [e["event"] for e in logs]
    assert "peer_bad" in events and "peer_unknown" in events
    assert events.count("peer_bad") == 1  # at most once per peer per minute
    raw.close()
    t2.close()


def test_fingerprint_mismatch_is_refused_naming_the_setting(ctx: zmq.Context[Any]) -> None:
    c1, c2 = configs(["d1", "d2"], {"d2": {"suspect_timeout_ms": 500}})
    with capture_logs() as logs:
        t1, t2 = make(c1, ctx), make(c2, ctx)
        received: list[Frame] = []

        def step() -> None:
            t1.send(("d2",), status())
            t1.tick()
            t2.tick()
            received.extend(t2.receive(100))
            t1.receive(100)

        poll_until(lambda: t2.stats()["peers"]["d1"]["hellos"] > 0, step)
        poll_until(lambda: t1.stats()["peers"]["d2"]["hellos"] > 0, step)
    assert received == []
    assert t2.stats()["frames_refused"] > 0
    refused = [e for e in logs if e["event"] == "peer_refused"]
    messages = sorted(e["msg"] for e in refused)
    assert messages == [
        "refusing d1: suspect_timeout_ms 500 here, 1000 there",
        "refusing d2: suspect_timeout_ms 1000 here, 500 there",
    ]
    assert all(e["log_level"] == "error" for e in refused)
    t1.close()
    t2.close()


def test_block_and_heal(ctx: zmq.Context[Any]) -> None:
    c1, c2 = configs(["d1", "d2"])
    t1, t2 = make(c1, ctx), make(c2, ctx)
    got: list[Frame] = []

    def step() -> None:
        t1.send(("d2",), status())
        got.extend(t2.receive(100))

    poll_until(lambda: bool(got), step)
    with capture_logs():
        assert t1.block(["d2", "nobody"]) == ["d2"]
    time.sleep(0.1)  # frames sent before the block may still be in flight
    t2.receive(1000)
    got.clear()
    for _ in range(20):
        step()
        time.sleep(0.005)
    assert got == []
    assert t1.stats()["peers"]["d2"]["dropped_out"] >= 20
    # Blocking at the receiver drops what arrives, too.
    with capture_logs():
        t1.heal()
        t2.block(["d1"])
    for _ in range(20):
        step()
        time.sleep(0.005)
    assert got == []
    assert t2.stats()["peers"]["d1"]["dropped_in"] > 0
    with capture_logs():
        t2.heal()
    poll_until(lambda: bool(got), step)
    t1.close()
    t2.close()


def test_settings_diff() -> None:
    assert settings_diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == (
        "b 2 here, 3 there; c missing here, 4 there"
    )


def test_port_in_use_raises(ctx: zmq.Context[Any]) -> None:
    (c1,) = configs(["d1"])
    t1 = make(c1, ctx)
    with pytest.raises(zmq.ZMQError):
        make(c1, ctx)
    t1.close()
