"""The Spread front-end's request handling against Spread 5.0.1's daemon (session.c, groups.c),
without sockets: what reaches the session layer, in which order, and what comes back."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from groupcomm.core.commands import Credit
from groupcomm.core.events import Event, LeaveRequested, MulticastRequested, SessionClosed
from groupcomm.daemon import frontends
from groupcomm.daemon.clientlinks import HELLO_WAIT_S
from groupcomm.daemon.readiness import Readiness
from groupcomm.daemon.sessions import Refused, SessionLayer
from groupcomm.daemon.spreadfrontend import SpreadFrontEnd, _Peer
from groupcomm.daemon.spreadmap import spread_name
from groupcomm.wire import spread as sp
from tests.client.harness import ListLog


def frontend(tmp_path: Path, send_window: int = 1 << 20) -> tuple[SpreadFrontEnd, _Peer]:
    layer = SessionLayer("d1", send_window=send_window, slow_consumer_bytes=1 << 22)
    fe = SpreadFrontEnd([f"ipc://{tmp_path}/4803"], layer, ListLog())
    peer = _Peer(1)
    peer.conn = layer.open("me", True, 0, name_checked=True).conn
    peer.alias = "#me#d1"
    fe._peers[1] = peer
    fe._by_conn[peer.conn] = peer
    layer.take_events()
    return fe, peer


def message(mtype: int, groups: tuple[str, ...], body: bytes = b"") -> sp.ClientMessage:
    return sp.ClientMessage(mtype, "#me#d1", groups, 0, b"\0\0\0\0", body, True)


def test_joins_leaves_and_the_disconnect_keep_their_place_behind_held_multicasts(
    tmp_path: Path,
) -> None:
    """session.c queues a session's messages in order: a leave or a disconnect sent after
    multicasts that wait for the send window must not overtake them (the leave went first: the
    sender never got its own messages)."""
    fe, peer = frontend(tmp_path, send_window=100)
    try:
        fe._on_message(peer, message(sp.AGREED_MESS, ("G",), b"a" * 80), 0)  # in flight
        fe._on_message(peer, message(sp.AGREED_MESS, ("G",), b"b" * 80), 0)  # held
        fe._on_message(peer, message(sp.LEAVE_MESS, ("G",)), 0)
        fe._on_message(peer, message(sp.KILL_MESS, ()), 0)
        first = fe.layer.take_events()
        assert [type(e) for e in first] == [MulticastRequested]
        session = fe.layer.sessions[peer.conn]
        session.in_flight = 0  # the core credited the first
        fe._release(peer, 0)
        rest = fe.layer.take_events()
        assert [type(e) for e in rest] == [MulticastRequested, LeaveRequested, SessionClosed]
        assert rest[0].payload == b"b" * 80  # type: ignore[union-attr]
    finally:
        fe.close()


def test_each_destination_once_and_empty_names_skipped(tmp_path: Path) -> None:
    """G_analize_groups: a repeated or empty destination is not refused."""
    fe, peer = frontend(tmp_path)
    try:
        fe._on_message(peer, message(sp.AGREED_MESS, ("G", "H", "G", "")), 0)
        (event,) = fe.layer.take_events()
        assert isinstance(event, MulticastRequested) and event.groups == ("G", "H")
        assert not [n for n in fe.layer.take_notices() if isinstance(n, Refused)]
        fe._on_message(peer, message(sp.AGREED_MESS, ("",)), 0)
        assert fe.layer.take_events() == []  # to no group: to nobody
    finally:
        fe.close()


def test_rejects_as_spread_sends_them(tmp_path: Path) -> None:
    """A refused join reports CAUSED_BY_JOIN as its old type; a refused SELF_DISCARD message
    is not sent back (the reject's only recipient is its sender, whom it excludes)."""
    fe, peer = frontend(tmp_path)
    try:
        fe._on_message(peer, message(sp.JOIN_MESS, ("bad name",)), 0)
        fe._on_message(peer, message(sp.AGREED_MESS | sp.SELF_DISCARD, ("bad name",)), 0)
        refused = [n for n in fe.layer.take_notices() if isinstance(n, Refused)]
        assert len(refused) == 2
        (reject,) = fe._refused(peer, refused[0])
        old_type = int.from_bytes(reject[sp.HEADER_LEN : sp.HEADER_LEN + 4], "little")
        assert old_type & ~sp.ENDIAN_MARKER == sp.CAUSED_BY_JOIN
        assert fe._refused(peer, refused[1]) == []
    finally:
        fe.close()


def test_a_name_of_exactly_32_bytes_is_addressable_by_its_alias(tmp_path: Path) -> None:
    """``spread_name`` aliases every name over 31 bytes; the front-end must remember those of
    32 bytes too, or a client replying to such a sender reaches nobody."""
    fe, _ = frontend(tmp_path)
    try:
        name = "#abcdefghij#" + "d" * 20
        assert len(name) == 32
        fe._remember(name)
        alias = spread_name(name)
        assert alias != name and fe._resolve(alias) == name
    finally:
        fe.close()


def test_the_unix_socket_takes_any_local_user_as_spreads(tmp_path: Path) -> None:
    fe, _ = frontend(tmp_path)
    try:
        mode = stat.S_IMODE(os.stat(tmp_path / "4803").st_mode)
        assert mode == 0o666
    finally:
        fe.close()


def test_other_type_bits_are_ignored() -> None:
    """session.c counts only the service and operation bits: others are ignored, not fatal."""
    msg = message(sp.AGREED_MESS | sp.REG_MEMB_MESS, ("G",))
    assert sp.message_problem(msg, "#me#d1", sp.MAX_MESSAGE_BODY_LEN) == ""


def test_a_connection_that_never_connects_is_closed_after_the_hello_wait(tmp_path: Path) -> None:
    layer = SessionLayer("d1", send_window=1 << 20, slow_consumer_bytes=1 << 22)
    fe = SpreadFrontEnd([f"ipc://{tmp_path}/4803"], layer, ListLog())
    now = [1000.0]
    fe.links.clock = lambda: now[0]
    readiness = Readiness()
    fe.attach(readiness)
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        idle.connect(str(tmp_path / "4803"))
        for _ in range(5):
            readiness.wait(10)
            fe.read(0, 256)
        now[0] += HELLO_WAIT_S + 1
        fe.expire_links()
        assert fe.links.counters["hello_timeouts"] == 1
        idle.settimeout(2)
        assert idle.recv(10) == b""  # closed by the daemon
    finally:
        idle.close()
        fe.close()
        readiness.close()


def test_what_a_client_sent_before_hanging_up_still_goes(tmp_path: Path) -> None:
    """A client floods past its send window, sends KILL and closes its socket (a script that
    sends and exits): every multicast it sent reaches the core, in order, before its session
    ends. The session was closed at the hang-up, with the held multicasts, before."""
    layer = SessionLayer("d1", send_window=100, slow_consumer_bytes=1 << 22)
    fe = SpreadFrontEnd([f"ipc://{tmp_path}/4803"], layer, ListLog())
    readiness = Readiness()
    fe.attach(readiness)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    events: list[Event] = []
    last = 0

    def turn() -> None:
        nonlocal last
        readiness.wait(10)
        fe.read(0, 256)
        got = layer.take_events()
        events.extend(got)
        for e in got:  # the core stamps every multicast at once: credit comes back
            if isinstance(e, MulticastRequested):
                layer.apply(Credit(e.conn, len(e.payload)))
        last = frontends.flush(layer, (fe,), 0, last)

    try:
        client.connect(str(tmp_path / "4803"))
        client.sendall(sp.encode_connect(3, 14, 0, 0, b"me"))
        for _ in range(5):
            turn()
        client.settimeout(2)
        assert client.recv(100)[0] == sp.ACCEPT_SESSION
        bodies = [bytes([65 + i]) * 80 for i in range(5)]  # each one fills most of the window
        flood = b"".join(sp.encode_message(sp.AGREED_MESS, "#me#d1", ("G",), b) for b in bodies)
        client.sendall(flood + sp.encode_message(sp.KILL_MESS, "#me#d1", (), b""))
        client.close()
        for _ in range(40):
            turn()
        sent = [e.payload for e in events if isinstance(e, MulticastRequested)]
        assert sent == bodies
        assert isinstance(events[-1], SessionClosed)
    finally:
        client.close()
        fe.close()
        readiness.close()
