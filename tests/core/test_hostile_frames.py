"""Well-formed but hostile peer frames fed to the sans-IO core (issue 13): wrong views, future
incarnations and epochs, huge sequence numbers, unknown senders. The core must never raise,
and must never deliver a message claimed by a daemon outside its view. Frames are built from
the dataclass type hints (as in tests/wire/test_peer_fuzz.py), with values drawn from what an
attacker would try against a node alone in its view with a local member of ``g``.

A longer run: ``HYPOTHESIS_PROFILE=long`` (see tests/wire/test_edge_fuzz.py).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from groupcomm.core.commands import DeliverMessage, SendFrame
from groupcomm.core.config import CoreConfig
from groupcomm.core.events import (
    FrameReceived,
    JoinRequested,
    SessionOpened,
    Started,
    TimerFired,
)
from groupcomm.core.frames import MAX_EPOCH, Frame, Msg, Status, highest_epoch
from groupcomm.core.ids import ViewId
from groupcomm.core.node import TICK, Node
from groupcomm.core.service import Kind, Service
from groupcomm.wire import FRAME_TAGS
from groupcomm.wire.peer import MAX_UINT, encode_frame
from tests.wire import test_edge_fuzz  # noqa: F401  (registers and loads the profile)

ME = "d1:100"
STRANGERS = ["d2:1", "d1:101", "d1:99", "x", ""]
FORGED = b"FORGED"


def node() -> Node:
    n = Node(CoreConfig(name="d1", incarnation=100, peers=("d1", "d2")))
    n.handle(0, Started())
    n.handle(0, SessionOpened(conn="#c#d1"))
    n.handle(0, JoinRequested(conn="#c#d1", group="g"))
    return n


names = st.sampled_from([ME, *STRANGERS, "#c#d1", "#evil#d2", "g"])
ints = st.one_of(st.integers(0, 4), st.just(MAX_UINT), st.integers(0, MAX_UINT))
views = st.builds(ViewId, ints, st.sampled_from([ME, *STRANGERS]))
msgs = st.builds(
    Msg,
    kind=st.sampled_from(list(Kind)),
    conn=names,
    service=st.sampled_from([int(s) for s in Service]),
    groups=st.just(("g",)),
    msg_type=st.integers(0, 3),
    payload=st.just(FORGED),
)
_SCALARS: dict[object, st.SearchStrategy[Any]] = {
    int: ints,
    str: names,
    bytes: st.just(FORGED),
    ViewId: views,
    Msg: msgs,
}


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Final:  # the per-turn frames' fields (core/frames.py)
        return strategy_for(args[0])
    if origin is types.UnionType:
        return st.one_of([st.none() if a is type(None) else strategy_for(a) for a in args])
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
    if origin is tuple:
        return st.tuples(*(strategy_for(a) for a in args))
    hints = typing.get_type_hints(hint)
    return st.builds(hint, **{name: strategy_for(h) for name, h in hints.items()})


frames: st.SearchStrategy[Frame] = st.one_of([strategy_for(cls) for cls in FRAME_TAGS])


@given(st.lists(frames, min_size=1, max_size=6))
def test_hostile_frames_never_raise_nor_deliver_forgeries(batch: list[Frame]) -> None:
    n = node()
    now = 1
    for frame in batch:
        for cmd in n.handle(now, FrameReceived(frame=frame)):
            # Nothing forged may be delivered while d1 is alone in its view (every sender of
            # a FORGED payload is another daemon, or a made-up incarnation of this one).
            if isinstance(cmd, DeliverMessage) and ME in n.members:
                assert cmd.payload != FORGED or n.members != (ME,), cmd
            sendable(cmd)
        now += 7
        for cmd in n.handle(now, TimerFired(name=TICK)):
            sendable(cmd)
    for _ in range(40):  # a view-change round on its own timers: still encodable frames
        now += 50
        for cmd in n.handle(now, TimerFired(name=TICK)):
            sendable(cmd)


def sendable(cmd: object) -> None:
    """Whatever a node sends after hostile input can still be encoded: an epoch adopted from a
    frame must leave room for the next round (MAX_EPOCH), or the daemons stay split for good."""
    if isinstance(cmd, SendFrame):
        encode_frame(cmd.frame)


def test_an_epoch_near_the_codec_limit_is_refused() -> None:
    """One Status claiming max_epoch 2^63 - 1 used to be adopted: the next proposal's epoch was
    not encodable and the daemons stayed split for good (found live, test_live_port_fuzz)."""
    n = node()
    hostile = Status(
        view=ViewId(1, "d2:1"),
        sender="d2:1",
        max_epoch=MAX_UINT,
        proposal=None,
        sent_seq=0,
        ordered_upto=0,
        ord_known=0,
        aru=0,
        stable=0,
    )
    sent: list[Frame] = []
    now = 1
    for cmd in n.handle(now, FrameReceived(frame=hostile)):
        sendable(cmd)
    assert n.counters.get("frame_errors", 0) == 1
    for _ in range(40):
        now += 50
        for cmd in n.handle(now, TimerFired(name=TICK)):
            sendable(cmd)
            if isinstance(cmd, SendFrame):
                sent.append(cmd.frame)
    assert sent and max(highest_epoch(f) for f in sent) <= MAX_EPOCH
