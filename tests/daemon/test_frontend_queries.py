"""A stranger's flood of status and access requests is answered only up to the per-turn bounds
(``frontend.QUERIES_PER_LINK_TURN`` / ``QUERIES_PER_TURN``): one 256 KiB write holds 18,000
of them, each building a reply from the daemon's state, before any hello."""

from __future__ import annotations

import socket
from pathlib import Path

from groupcomm.daemon.frontend import QUERIES_PER_LINK_TURN, NativeFrontEnd
from groupcomm.daemon.readiness import Readiness
from groupcomm.wire.client import (
    AccessReply,
    AccessReq,
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
