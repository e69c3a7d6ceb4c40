"""Property tests of the decoders at the daemon's edges (issue 13): the client protocol
(``decode_request``/``decode_reply``), the record stream (``RecordReader``) and the TCP links'
hello (``TcpTransport._on_hello``, fed bytes only). Random and mutated valid input may only
raise the documented ``WireError`` (or be refused by name), never anything else.
(``decode_frame`` has its own: test_peer_fuzz.py; hostile but well-formed peer frames fed to
the core: tests/core/test_hostile_frames.py.)

A few seconds in all. A longer run:

    HYPOTHESIS_PROFILE=long python -m pytest tests/wire/test_edge_fuzz.py \\
        tests/core/test_hostile_frames.py tests/wire/test_peer_fuzz.py
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupcomm.config import DaemonConfig, PeerConfig
from groupcomm.daemon.tcplinks import KIND_HELLO, TcpTransport, _Inbound
from groupcomm.localcluster import free_ports
from groupcomm.wire.client import (
    AdminReq,
    Bye,
    Closed,
    Consumed,
    CreditGrant,
    Delivered,
    ErrorMsg,
    FormatsReq,
    Hello,
    JoinReq,
    McastBatchReq,
    McastReq,
    Msgs,
    Ping,
    Pong,
    RejectMsg,
    Reply,
    Request,
    StatusReply,
    StatusReq,
    ViewMsg,
    Views,
    ViewSet,
    Welcome,
    decode_reply,
    decode_request,
    encode,
)
from groupcomm.wire.errors import WireError
from groupcomm.wire.stream import RecordReader, RecordTooLarge, record

settings.register_profile(
    "edge", max_examples=80, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "edge"))

REQUESTS: list[Request] = [
    Hello("alice", True),
    JoinReq(1, "g"),
    McastReq(2, ("g", "h"), 0x10, 7, b"payload"),
    McastBatchReq(3, ("g",), 0x10, 0, (b"a", b"bc")),
    Consumed(100),
    StatusReq(4),
    AdminReq(5, "partition", ("d2",)),
    Bye(),
    Ping(),
    FormatsReq(("viewset",)),
]
VIEW = ViewMsg("g", "regular", "1.d1", ("#a#d1",), "JOIN", (("#a#d1",),), ("#a#d1",))
REPLIES: list[Reply] = [
    Welcome("#a#d1", "d1", 1 << 20, 8 << 20),
    CreditGrant(10),
    Msgs((Delivered("#a#d1", ("g",), 0x10, 0, b"x", "m1"),)),
    VIEW,
    Views((VIEW, VIEW)),
    ViewSet("regular", ("#a#d1",), "NETWORK", (("#a#d1",),), (), ("g", "h"), ("R2/g/1", "R2/h/1")),
    RejectMsg(1, "join", "g", "no"),
    StatusReply(1, {"a": [1, {"b": None}]}),
    ErrorMsg("malformed", "x"),
    Closed("slow consumer"),
    Pong(),
]


def decodes_or_wire_error(data: bytes) -> None:
    for decode in (decode_request, decode_reply):
        with contextlib.suppress(WireError):
            decode(data)


def mutate(data: bytes, draw: Any) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        what = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(out) - 1)))
        if what == "flip" and out:
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif what == "cut":
            del out[pos:]
        elif what == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif out:
            del out[pos]
    return bytes(out)


@given(st.binary(max_size=256))
def test_client_decoders_random_bytes(data: bytes) -> None:
    decodes_or_wire_error(data)


@given(st.sampled_from([encode(m) for m in [*REQUESTS, *REPLIES]]), st.data())
def test_client_decoders_mutated_valid_messages(data: bytes, draw: st.DataObject) -> None:
    decodes_or_wire_error(mutate(data, draw.draw))


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
_REQUEST_OPS = [
    *("hello", "join", "leave", "mcast", "mcastb", "consumed", "status", "admin", "formats"),
]
_REPLY_OPS = [
    *("welcome", "credit", "msgs", "view", "views", "viewset", "reject", "error", "closed"),
    "pong",
]
_ops = st.sampled_from([*_REQUEST_OPS, "bye", "ping", *_REPLY_OPS])


@given(_ops, st.lists(_values, max_size=8))
def test_client_decoders_random_fields_behind_a_valid_envelope(op: str, fields: list[Any]) -> None:
    decodes_or_wire_error(msgpack.packb([1, op, *fields], use_bin_type=True))


@given(
    st.lists(st.binary(max_size=40), max_size=6),
    st.lists(st.integers(1, 64), min_size=1, max_size=20),
)
def test_record_reader_splits_anywhere(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(record(b) for b in bodies)
    reader = RecordReader(64)
    got: list[bytes] = []
    pos = 0
    for cut in cuts * (len(stream) // 1 + 1):
        if pos >= len(stream):
            break
        got.extend(reader.feed(stream[pos : pos + cut]))
        pos += cut
    got.extend(reader.feed(stream[pos:]))
    assert got == bodies and reader.pending() == 0


@given(st.lists(st.binary(max_size=64), max_size=8), st.integers(1, 32))
def test_record_reader_random_bytes(chunks: list[bytes], limit: int) -> None:
    reader = RecordReader(limit)
    try:
        for chunk in chunks:
            for rec in reader.feed(chunk):
                assert len(rec) <= limit
    except RecordTooLarge:
        return  # the stream is unusable now: the link is closed
    assert reader.pending() <= limit + 4  # at most one incomplete record is held


# ------------------------------------------------------------------------- the TCP hello

_transport: TcpTransport | None = None


def transport() -> TcpTransport:
    global _transport
    if _transport is None:
        ports = free_ports(4)
        peers = (
            PeerConfig(name="d1", data_port=ports[0], control_port=ports[1]),
            PeerConfig(name="d2", data_port=ports[2], control_port=ports[3]),
        )
        _transport = TcpTransport(DaemonConfig(name="d1", peers=peers, client_endpoints=()))
    return _transport


def hello_of(t: TcpTransport, name: object, settings_: object) -> bytes:
    return KIND_HELLO + json.dumps({"name": name, "settings": settings_}).encode()


def feed_hello(rec: bytes) -> None:
    t = transport()
    a, b = socket.socketpair()
    try:
        conn = _Inbound(a, 0.0, None)
        t._in[a.fileno()] = conn
        t._on_hello(conn, rec)  # True (accepted or refused by settings) or False (closed)
    finally:
        t._in.pop(a.fileno(), None)
        a.close()
        b.close()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


@given(st.binary(max_size=128))
def test_tcp_hello_random_bytes(data: bytes) -> None:
    feed_hello(data)
    feed_hello(KIND_HELLO + data)


@given(_json, _json)
def test_tcp_hello_random_json(name: object, settings_: object) -> None:
    feed_hello(hello_of(transport(), name, settings_))
    feed_hello(KIND_HELLO + json.dumps({"name": "d2", "settings": settings_}).encode())


@given(st.data())
def test_tcp_hello_mutated_valid(draw: st.DataObject) -> None:
    t = transport()
    feed_hello(mutate(hello_of(t, "d2", t.settings), draw.draw))
