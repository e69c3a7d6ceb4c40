"""What a stranger can make the native front-end do before hello: a flood of status and access
requests is answered only up to the per-turn bounds (``frontend.QUERIES_PER_LINK_TURN`` /
``QUERIES_PER_TURN``; one 256 KiB write holds 18,000 of them, each building a reply from the
daemon's state), and a connection that opens no session is closed after ``HELLO_WAIT_S``."""

from __future__ import annotations

import socket
from pathlib import Path

from groupcomm.daemon.clientlinks import HELLO_WAIT_S
from groupcomm.daemon.frontend import QUERIES_PER_LINK_TURN, NativeFrontEnd
from groupcomm.daemon.readiness import Readiness
from groupcomm.wire.client import (
    AccessReply,
    AccessReq,
    Hello,
    Reply,
    StatusReply,
    StatusReq,
    decode_reply,
)
from groupcomm.wire.client import encode as encode_request
from groupcomm.wire.stream import RecordReader, record
from tests.client.harness import ListLog


def test_status_and_access_requests_beyond_the_turns_bound_are_dropped(tmp_path: Path) -> None:
    path = str(tmp_path / "d.sock")
    fe = NativeFrontEnd([f"ipc://{path}"], "d1", 1 << 20, 1 << 20, ListLog())
    readiness = Readiness()
    fe.attach(readiness)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
        flood = b"".join(record(encode_request(StatusReq(i))) for i in range(100))
        flood += b"".join(record(encode_request(AccessReq(i, "join", ("g",)))) for i in range(50))
        client.sendall(flood)
        for _ in range(10):
            readiness.wait(10)
            fe.read(0, 256)
            fe.flush_output()
        client.settimeout(2)
        reader = RecordReader(1 << 24)
        replies: list[Reply] = []
        while len(replies) < QUERIES_PER_LINK_TURN:
            replies += [decode_reply(r) for r in reader.feed(client.recv(1 << 16))]
        assert len(replies) == QUERIES_PER_LINK_TURN
        assert all(isinstance(r, StatusReply) for r in replies)
        assert fe.counters["queries_dropped"] == 150 - QUERIES_PER_LINK_TURN
        # the next turn answers again
        client.sendall(record(encode_request(AccessReq(7, "join", ("g",)))))
        for _ in range(5):
            readiness.wait(10)
            fe.read(0, 256)
            fe.flush_output()
        reply = decode_reply(reader.feed(client.recv(1 << 16))[0])
        assert isinstance(reply, AccessReply) and reply.req == 7
    finally:
        client.close()
        fe.close()
        readiness.close()


def test_a_connection_that_opens_no_session_is_closed_after_the_hello_wait(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "d.sock")
    fe = NativeFrontEnd([f"ipc://{path}"], "d1", 1 << 20, 1 << 20, ListLog())
    now = [1000.0]
    fe.links.clock = lambda: now[0]
    readiness = Readiness()
    fe.attach(readiness)
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    member = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        idle.connect(path)
        member.connect(path)
        member.sendall(record(encode_request(Hello("m", True))))
        for _ in range(5):
            readiness.wait(10)
            fe.read(0, 256)
            fe.flush_output()
        assert len(fe._by_link) == 1
        now[0] += HELLO_WAIT_S - 1
        fe.expire_links()
        assert fe.links.counters["hello_timeouts"] == 0
        now[0] += 2
        fe.expire_links()
        assert fe.links.counters["hello_timeouts"] == 1
        idle.settimeout(2)
        assert idle.recv(10) == b""  # closed by the daemon
        assert len(fe._by_link) == 1  # the session's connection stays
    finally:
        idle.close()
        member.close()
        fe.close()
        readiness.close()
