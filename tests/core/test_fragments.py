"""Large messages: fragments at the sender, reassembly before delivery (SVC-FRAG,
protocol/services.md section 7)."""

from __future__ import annotations

from typing import Any

from groupcomm.core.commands import Credit, DeliverMessage, SendFrame, SetTimer
from groupcomm.core.config import CoreConfig
from groupcomm.core.epoch import Epoch
from groupcomm.core.events import (
    BacklogChanged,
    JoinRequested,
    MulticastRequested,
    SessionOpened,
    Started,
    TimerFired,
)
from groupcomm.core.fragments import HEADER, Reassembly, fragment
from groupcomm.core.frames import Data, Msg
from groupcomm.core.node import DRAIN, Node
from groupcomm.core.service import Kind, Service

CONN = "#c1#d1"
SAFE = int(Service.SAFE)


def _big(size: int, conn: str = CONN) -> Msg:
    payload = bytes(i % 251 for i in range(size))
    return Msg(kind=Kind.DATA, conn=conn, service=SAFE, groups=("g",), msg_type=7, payload=payload)


def _frags(msg: Msg, fragment_bytes: int) -> list[Msg]:
    out, index, last = [], 0, False
    while not last:
        frag, last = fragment(msg, index, fragment_bytes)
        out.append(frag)
        index += 1
    return out


def test_fragments_carry_the_message_and_reassemble_to_it() -> None:
    msg = _big(1000)
    frags = _frags(msg, 300)
    assert [len(f.payload) - HEADER for f in frags] == [300, 300, 300, 100]
    assert {(f.kind, f.conn, f.service, f.groups, f.msg_type) for f in frags} == {
        (Kind.FRAGMENT, CONN, SAFE, ("g",), 7)
    }
    r = Reassembly(max_message_bytes=1000)
    results = [r.add("d1:0", f) for f in frags]
    assert results[:-1] == [None, None, None]
    whole = results[-1]
    assert whole is not None and whole.payload == msg.payload and whole.kind == Kind.DATA
    assert (whole.conn, whole.service, whole.groups, whole.msg_type) == (CONN, SAFE, ("g",), 7)
    assert r.unfinished() == 0 and r.buffered == 0 and r.dropped == 0


def test_interleaved_senders_reassemble_separately() -> None:
    a, b = _frags(_big(700), 300), _frags(_big(500, "#c2#d2"), 300)
    r = Reassembly(max_message_bytes=1 << 20)
    got = [r.add("d1:0", a[0]), r.add("d2:0", b[0]), r.add("d1:0", a[1])]
    got += [r.add("d2:0", b[1]), r.add("d1:0", a[2])]
    wholes = [m for m in got if m is not None]
    assert [len(m.payload) for m in wholes] == [500, 700]


def test_out_of_turn_fragments_are_never_delivered() -> None:
    frags = _frags(_big(1000), 300)
    r = Reassembly(max_message_bytes=1 << 20)
    assert r.add("d1:0", frags[1]) is None  # no start: an orphan
    assert r.add("d1:0", frags[0]) is None
    assert r.add("d1:0", frags[2]) is None  # a gap: the message is dropped
    assert r.add("d1:0", frags[3]) is None
    assert r.unfinished() == 0 and r.dropped >= 2


def test_a_message_above_the_limit_is_dropped_at_every_receiver() -> None:
    r = Reassembly(max_message_bytes=999)
    assert all(r.add("d1:0", f) is None for f in _frags(_big(1000), 300))
    assert r.buffered == 0


def test_a_view_change_discards_unfinished_messages() -> None:
    frags = _frags(_big(1000), 300)
    r = Reassembly(max_message_bytes=1 << 20)
    r.add("d1:0", frags[0])
    r.add("d1:0", frags[1])
    assert r.unfinished() == 1 and r.buffered == 600
    assert r.discard_all() == 1
    assert r.buffered == 0 and r.add("d1:0", frags[2]) is None  # the rest is an orphan
    assert [r.add("d1:0", f) for f in frags][-1] is not None  # resent whole: delivered


def _node(**cfg: Any) -> Node:
    config = CoreConfig(name="d1", incarnation=0, peers=("d1", "d2"), **cfg)
    node = Node(config)
    node.handle(0, Started())
    node.handle(0, SessionOpened(conn=CONN))
    node.handle(0, JoinRequested(conn=CONN, group="g"))
    return node


def test_a_daemon_delivers_a_large_message_once_whole_and_credits_every_byte() -> None:
    node = _node(max_message_bytes=100_000, fragment_bytes=4096)
    payload = bytes(range(256)) * 300  # 76800 bytes: 19 fragments
    out = node.handle(1, MulticastRequested(CONN, ("g",), SAFE, 3, payload))
    for t in range(2, 40):
        out += node.handle(t, MulticastRequested(CONN, ("g",), SAFE, 4, b"after"))
        out += node.handle_batch(t, ())
    delivered = [c for c in out if isinstance(c, DeliverMessage)]
    # the large message whole, once, before every later message of its sender
    assert [(d.payload, d.msg_type) for d in delivered] == [(payload, 3)] + [(b"after", 4)] * 38
    assert sum(c.payload_bytes for c in out if isinstance(c, Credit)) == len(payload) + 38 * 5


def test_a_pump_hands_the_clients_at_most_one_large_message() -> None:
    """A large message is delivered only as the first thing a pump delivers, so a client's
    backlog grows by at most one whole message between two checks of the hold (BacklogChanged).
    Two large messages completed by one pump overran the slow-consumer limit of twice
    max_message_bytes (3 daemons flooding 64 MiB messages: 192 MiB unconsumed, closed)."""
    node = _node(max_message_bytes=1000, fragment_bytes=100)
    node.handle(1, BacklogChanged(lagging=True))  # everything waits, fully stamped
    first, second = b"a" * 1000, b"b" * 1000
    agreed = int(Service.AGREED)
    out = node.handle(2, MulticastRequested(CONN, ("g",), agreed, 1, first))
    out += node.handle(3, MulticastRequested(CONN, ("g",), agreed, 2, second))
    assert not [c for c in out if isinstance(c, DeliverMessage)]
    released = node.handle(4, BacklogChanged(lagging=False))
    assert [c.payload for c in released if isinstance(c, DeliverMessage)] == [first]
    # It asks to be pumped again at once (after the driver's backlog check), not at the next
    # frame or tick: a star member hears few frames (seed 10, 10 daemons, BUGGIFY).
    assert SetTimer(name=DRAIN, at_ms=4) in released
    later = node.handle(4, TimerFired(name=DRAIN))
    assert [c.payload for c in later if isinstance(c, DeliverMessage)] == [second]
    assert not [c for c in later if isinstance(c, SetTimer) and c.name == DRAIN]  # all done


def test_fragments_are_paced_by_the_byte_window() -> None:
    """A daemon with a peer in its view stamps at most a window of fragments; the 1
    MiB message never sits whole in a Data frame."""
    node = _node(max_message_bytes=1 << 20, fragment_bytes=65536, window_bytes=131072)
    # In a view with d2, which acknowledges nothing: nothing of ours becomes stable.
    node.members = (node.me, "d2:0")
    node.member_peers = ("d2",)
    node.epoch = Epoch(node.view, node.members, node.me)
    out = node.handle(1, MulticastRequested(CONN, ("g",), SAFE, 0, b"z" * (1 << 20)))
    frames = [c.frame for c in out if isinstance(c, SendFrame) and isinstance(c.frame, Data)]
    frags = [m for f in frames for m in f.msgs if m.kind == Kind.FRAGMENT]
    assert frags and all(len(m.payload) <= 65536 + HEADER for m in frags)
    # window / fragment: the window is checked before each Data frame (batch_bytes, 60 000)
    assert len(frags) == 2
    assert node.pending  # the rest waits whole, its sender credited only what left
    credited = sum(c.payload_bytes for c in out if isinstance(c, Credit))
    assert credited == 65536 * len(frags)
