"""TcpTransport in-process: links carry frames in order; strangers, garbage, oversized records and
mismatched settings are refused and counted, never fatal; block/heal drop traffic; a restarted
peer is reconnected."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

from structlog.testing import capture_logs

from groupcomm.config import DaemonConfig
from groupcomm.core.frames import Data, Frame, Status
from groupcomm.core.ids import ViewId
from groupcomm.daemon.readiness import Readiness
from groupcomm.daemon.tcplinks import KIND_HELLO, MAX_INBOUND_PER_PEER, TcpTransport
from groupcomm.wire.peer import encode_frame
from groupcomm.wire.stream import record
from tests.core.helpers import msg
from tests.daemon.test_transport import configs, status


class Node:
    """A transport with its own readiness set, pumped by hand."""

    def __init__(self, cfg: DaemonConfig) -> None:
        self.cfg = cfg
        self.readiness = Readiness()
        self.t = TcpTransport(cfg)
        self.t.attach(self.readiness)
        self.got: list[Frame] = []

    def pump(self) -> None:
        self.readiness.wait(0)
        self.got += self.t.receive(1000)
        self.t.flush()
        self.t.tick()

    def close(self) -> None:
        self.t.close()
        self.readiness.close()


def run_until(nodes: list[Node], cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for n in nodes:
            n.pump()
        if cond():
            return
        time.sleep(0.002)
    raise AssertionError("timed out")


def links_up(nodes: list[Node]) -> bool:
    return all(len(n.t.stats()["links_up"]) == len(nodes) - 1 for n in nodes)


def test_frames_arrive_in_order_on_every_link() -> None:
    nodes = [Node(c) for c in configs(["d1", "d2", "d3"])]
    try:
        run_until(nodes, lambda: links_up(nodes))
        for seq in range(1, 501):
            nodes[0].t.send(("d2", "d3"), status(seq=seq))
            if seq % 100 == 0:
                nodes[0].t.flush()
        run_until(nodes, lambda: len(nodes[1].got) == 500 and len(nodes[2].got) == 500)
        for n in nodes[1:]:
            assert [f.sent_seq for f in n.got if isinstance(f, Status)] == list(range(1, 501))
        stats = nodes[0].t.stats()
        assert stats["frames_sent"] == 1000 and stats["writes"] < 1000  # batched per flush
    finally:
        for n in nodes:
            n.close()


def connect_raw(cfg: DaemonConfig) -> socket.socket:
    s = socket.create_connection((cfg.me.host, cfg.me.data_port), timeout=5)
    return s


def closed_by_peer(s: socket.socket, nodes: list[Node]) -> bool:
    s.setblocking(False)
    for _ in range(200):
        for n in nodes:
            n.pump()
        try:
            if s.recv(10) == b"":
                return True
        except BlockingIOError:
            pass
        except ConnectionResetError:
            return True
        time.sleep(0.005)
    return False


def test_strangers_are_refused_and_the_links_keep_working() -> None:
    nodes = [Node(c) for c in configs(["d1", "d2"])]
    d1 = nodes[0]
    try:
        run_until(nodes, lambda: links_up(nodes))
        with capture_logs():
            # a frame before any hello
            s = connect_raw(d1.cfg)
            s.sendall(record(b"F" + encode_frame(status("d2:1"))))
            assert closed_by_peer(s, nodes)
            # a hello naming a daemon that is not configured
            s = connect_raw(d1.cfg)
            hello = {"name": "mallory", "settings": d1.t.settings}
            s.sendall(record(b"H" + json.dumps(hello).encode()))
            assert closed_by_peer(s, nodes)
            # garbage, and a length beyond any hello
            s = connect_raw(d1.cfg)
            s.sendall(b"\x00\x00\x00\x03abc")
            assert closed_by_peer(s, nodes)
            s = connect_raw(d1.cfg)
            s.sendall(b"\xff\xff\xff\xff")
            assert closed_by_peer(s, nodes)
            # a hello nested deeper than json.loads recurses (RecursionError, not ValueError:
            # it escaped the receive loop and stopped the daemon), within the hello's size limit
            s = connect_raw(d1.cfg)
            s.sendall(record(b"H" + b"[" * 3000))
            assert closed_by_peer(s, nodes)
        assert d1.t.counters["inbound_refused"] >= 4
        assert d1.t.counters["frames_received"] == 0
        nodes[1].t.send(("d1",), status("d2:1", seq=7))
        run_until(nodes, lambda: any(isinstance(f, Status) and f.sent_seq == 7 for f in d1.got))
    finally:
        for n in nodes:
            n.close()


def test_strangers_holding_every_inbound_slot_do_not_lock_a_peer_out() -> None:
    """A restarted peer's link is accepted although strangers hold every slot: the oldest
    stranger that has not said who it is makes room."""
    c1, c2 = configs(["d1", "d2"])
    d1, d2 = Node(c1), Node(c2)
    strangers: list[socket.socket] = []
    try:
        run_until([d1, d2], lambda: links_up([d1, d2]))
        d2.close()
        for _ in range(3 * MAX_INBOUND_PER_PEER):
            strangers.append(connect_raw(c1))
            d1.pump()
        run_until([d1], lambda: d1.t.counters["inbound_refused"] >= 2 * MAX_INBOUND_PER_PEER)
        d2 = Node(c2)  # the restart
        d2.t.send(("d1",), status("d2:2", seq=3))  # dropped: the link is not up yet
        run_until([d1, d2], lambda: links_up([d1, d2]))
        d2.t.send(("d1",), status("d2:2", seq=4))
        run_until([d1, d2], lambda: any(isinstance(f, Status) and f.sent_seq == 4 for f in d1.got))
    finally:
        for s in strangers:
            s.close()
        d1.close()
        d2.close()


def test_a_frame_claiming_another_daemon_is_refused_and_counted() -> None:
    """AUTH-1: the link's peer (here named by its hello, with keys authenticated by TLS) speaks
    only for itself; its own frames on the same link still arrive."""
    nodes = [Node(c) for c in configs(["d1", "d2", "d3"])]
    d1 = nodes[0]
    try:
        run_until(nodes, lambda: links_up(nodes))
        with capture_logs() as logs:
            nodes[1].t.send(("d1",), status("d3:1", seq=5))  # d2 claims to be d3
            nodes[1].t.send(("d1",), status("d2:1", seq=6))
            run_until(nodes, lambda: any(isinstance(f, Status) and f.sent_seq == 6 for f in d1.got))
        assert [f.sent_seq for f in d1.got if isinstance(f, Status)] == [6]
        assert d1.t.counters["frames_forged"] == 1 and d1.t.peer["d2"].forged == 1
        assert any(e["event"] == "peer_forged" and e["origin"] == "d3" for e in logs)
    finally:
        for n in nodes:
            n.close()


def test_a_large_frame_queued_before_the_link_came_up_follows_the_hello() -> None:
    """A dialer's first frames follow its hello into the socket; a receiver that reads later
    (a long turn) gets them in one read: a frame beyond the hello's 4 KiB limit there closed the
    link."""
    nodes = [Node(c) for c in configs(["d1", "d2"])]
    try:
        # d2's link to d1 comes up (the kernel completes the connect) while d1 reads nothing
        run_until([nodes[1]], lambda: "d1" in nodes[1].t.stats()["links_up"])
        big = Data(view=ViewId(0, "d2:1"), sender="d2:1", first_seq=1, msgs=(msg("x" * 20_000),))
        nodes[1].t.send(("d1",), big)
        for _ in range(5):
            nodes[1].pump()
        run_until(nodes, lambda: any(isinstance(f, Data) for f in nodes[0].got))
        assert nodes[0].t.counters["inbound_refused"] == 0
        assert nodes[0].got[0] == big
    finally:
        for n in nodes:
            n.close()


def test_a_peer_with_other_settings_is_refused_by_name() -> None:
    c1, c2 = configs(["d1", "d2"], {"d2": {"suspect_timeout_ms": 700}})
    nodes = [Node(c1), Node(c2)]
    try:
        with capture_logs() as logs:
            run_until(nodes, lambda: nodes[0].t.peer["d2"].hellos >= 1)
            for seq in range(5):
                nodes[1].t.send(("d1",), status("d2:1", seq=seq))
            run_until(nodes, lambda: nodes[0].t.counters["frames_refused"] >= 5)
        assert nodes[0].got == []
        refusals = [e for e in logs if e["event"] == "peer_refused"]
        assert refusals and "suspect_timeout_ms" in refusals[0]["differ"]
    finally:
        for n in nodes:
            n.close()


def test_a_daemon_of_another_frame_version_is_refused_by_name() -> None:
    """A daemon of an older release (frame layout 2) says so in its hello: refused and logged
    with the difference, not met with frames that do not decode (protocol/frames.md "Links")."""
    c1, c2 = configs(["d1", "d2"])
    nodes = [Node(c1), Node(c2)]
    nodes[1].t.settings["frame_version"] = 2
    hello = json.dumps({"name": "d2", "settings": nodes[1].t.settings}).encode()
    nodes[1].t._hello = record(KIND_HELLO + hello)
    try:
        with capture_logs() as logs:
            run_until(nodes, lambda: nodes[0].t.peer["d2"].hellos >= 1)
            nodes[1].t.send(("d1",), status("d2:1", seq=1))
            run_until(nodes, lambda: nodes[0].t.counters["frames_refused"] >= 1)
        assert nodes[0].got == []
        refusals = [e for e in logs if e["event"] == "peer_refused"]
        assert refusals and "frame_version 3 here, 2 there" in refusals[0]["differ"]
    finally:
        for n in nodes:
            n.close()


def test_block_heal_and_a_restarted_peer() -> None:
    c1, c2 = configs(["d1", "d2"])
    nodes = [Node(c1), Node(c2)]
    try:
        run_until(nodes, lambda: links_up(nodes))
        nodes[0].t.block(["d2"])
        nodes[0].t.send(("d2",), status(seq=1))
        nodes[1].t.send(("d1",), status("d2:1", seq=1))
        for _ in range(20):
            for n in nodes:
                n.pump()
        assert nodes[0].got == [] and nodes[1].got == []
        nodes[0].t.heal()
        # d2 restarts: d1's link to it breaks and comes back
        nodes[1].close()
        with capture_logs():
            nodes[1] = Node(c2)
            run_until(nodes, lambda: links_up(nodes))
        nodes[0].t.send(("d2",), status(seq=2))
        run_until(nodes, lambda: len(nodes[1].got) == 1)
        assert nodes[0].t.counters["connects"] >= 2
    finally:
        for n in nodes:
            n.close()


def test_a_peer_that_links_to_us_is_linked_back_without_waiting_for_the_retry() -> None:
    # d2 restarts while d1's next reconnect is far away: d2's link to d1 (its hello) makes d1
    # connect back at its next tick, so d1's frames (a Propose for the merge) reach d2 without
    # waiting for the retry.
    c1, c2 = configs(["d1", "d2"])
    nodes = [Node(c1), Node(c2)]
    try:
        run_until(nodes, lambda: links_up(nodes))
        nodes[1].close()
        with capture_logs():
            run_until(nodes[:1], lambda: nodes[0].t.stats()["links_up"] == [])
            link = nodes[0].t._out["d2"]
            run_until(nodes[:1], lambda: link.sock is None)  # between two connect attempts
            link.retry_at = nodes[0].t.clock() + 60.0
            nodes[1] = Node(c2)
            run_until(nodes, lambda: links_up(nodes))
        nodes[0].t.send(("d2",), status(seq=7))
        run_until(nodes, lambda: len(nodes[1].got) == 1)
    finally:
        for n in nodes:
            n.close()
