"""Peer frames exchanged by daemons. Pure data; encoding lives in ``groupcomm.wire``.

Field order of every frame is the table order in ``protocol/frames.md``.

Every frame is immutable. The ones built on every turn (``Msg``, ``Status``, ``Data``,
``Ordered``) are not ``frozen=True`` dataclasses but have a written ``__init__`` and ``Final``
fields: a frozen dataclass's ``__init__`` is generated Python that assigns through
``object.__setattr__``, which the compiled build (``groupcomm.compiled``) cannot compile. There
it cost 1.25-2.2 us per ``Msg``, about a quarter of a daemon's CPU in a 100-byte flood; the
written one compiles to a native constructor (0.07 us). ``Final`` keeps the immutability: mypy
rejects any assignment, and the compiled build makes the attributes read-only
(``tests/test_compiled.py``). The same pattern serves the other per-turn records of the
compiled modules (``TimerFired``, ``McastReq``, ``CreditGrant``, ``Granted``, ``Heard``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from groupcomm.core.ids import ViewId, token_name

# (sender token, first sender seq, count): a run of one sender's messages in an Ordered frame.
OrderRange = tuple[str, int, int]
# (first gseq, sender, first seq, count): an ordering run as reported in a Flush.
GlobalRange = tuple[int, str, int, int]


@dataclass(slots=True, kw_only=True, init=False, unsafe_hash=True)
class Msg:
    """One application message or group operation as it travels between daemons (a written
    ``__init__``: see the module's docstring)."""

    kind: Final[int]  # service.Kind
    conn: Final[str]  # private name of the sending connection ("#c1#d1")
    service: Final[int]  # service.Service value, possibly | SELF_DISCARD
    groups: Final[tuple[str, ...]]
    msg_type: Final[int]
    payload: Final[bytes]
    # Early delivery (protocol/ordering.md section 8.1): 0 for a message that waits for the
    # total order; else 1 + its sender's ord_known when it stamped it (the anchor + 1): it may
    # be delivered on receipt, in sender order, once the receiver delivered the order that far.
    early: Final[int]

    def __init__(
        self,
        *,
        kind: int,
        conn: str,
        service: int,
        groups: tuple[str, ...],
        msg_type: int,
        payload: bytes,
        early: int = 0,
    ) -> None:
        self.kind = kind
        self.conn = conn
        self.service = service
        self.groups = groups
        self.msg_type = msg_type
        self.payload = payload
        self.early = early


def new_msg(
    kind: int,
    conn: str,
    service: int,
    groups: tuple[str, ...],
    msg_type: int,
    payload: bytes,
    early: int = 0,
) -> Msg:
    """A positional ``Msg`` constructor for the hot paths (peer frame decoding, multicasts)."""
    return Msg(
        kind=kind,
        conn=conn,
        service=service,
        groups=groups,
        msg_type=msg_type,
        payload=payload,
        early=early,
    )


def with_early(msg: Msg, early: int) -> Msg:
    """``msg`` marked for early delivery with anchor ``early - 1`` (``Epoch.stamp``)."""
    return Msg(
        kind=msg.kind,
        conn=msg.conn,
        service=msg.service,
        groups=msg.groups,
        msg_type=msg.msg_type,
        payload=msg.payload,
        early=early,
    )


@dataclass(slots=True, kw_only=True, init=False, unsafe_hash=True)
class Status:
    """Heartbeat and acknowledgement: to every configured peer, or only to the coordinator from
    a member of a star view (protocol/membership.md section 2).

    Doubles as failure-detector input, tail-loss detector (``sent_seq``, ``ordered_upto``) and
    stability input (``ord_known``, ``aru``, ``stable``). SAFE delivery waits until every member
    reports ``stable`` past the message, so every member knows it is stable (EVS-7.1)."""

    view: Final[ViewId]
    sender: Final[str]
    max_epoch: Final[int]
    proposal: Final[ViewId | None]  # the view-change proposal this daemon accepted, if any
    sent_seq: Final[int]  # highest own data seq sent in ``view``
    ordered_upto: Final[int]  # highest gseq assigned (meaningful from the sequencer)
    ord_known: Final[int]  # contiguous prefix of ordering metadata held
    aru: Final[int]  # contiguous prefix of ordering metadata *and* payloads held
    stable: Final[int]  # min aru over the view's members, as known by the sender
    # Relays of the coordinator of a star view (ordering.md section 4), 0 from anyone else:
    acked: Final[int]  # every message through this gseq was acknowledged by its sender (rule 2)
    safe: Final[int]  # min stable over the view's members (the safe point), as known by the sender

    def __init__(
        self,
        *,
        view: ViewId,
        sender: str,
        max_epoch: int,
        proposal: ViewId | None,
        sent_seq: int,
        ordered_upto: int,
        ord_known: int,
        aru: int,
        stable: int,
        acked: int = 0,
        safe: int = 0,
    ) -> None:
        self.view = view
        self.sender = sender
        self.max_epoch = max_epoch
        self.proposal = proposal
        self.sent_seq = sent_seq
        self.ordered_upto = ordered_upto
        self.ord_known = ord_known
        self.aru = aru
        self.stable = stable
        self.acked = acked
        self.safe = safe


@dataclass(slots=True, kw_only=True, init=False, unsafe_hash=True)
class Data:
    view: Final[ViewId]
    sender: Final[str]
    first_seq: Final[int]
    msgs: Final[tuple[Msg, ...]]

    def __init__(self, *, view: ViewId, sender: str, first_seq: int, msgs: tuple[Msg, ...]) -> None:
        self.view = view
        self.sender = sender
        self.first_seq = first_seq
        self.msgs = msgs


@dataclass(slots=True, kw_only=True, init=False, unsafe_hash=True)
class Ordered:
    """The sequencer's decision: the next gseqs, starting at ``first_gseq``, go to these runs."""

    view: Final[ViewId]
    first_gseq: Final[int]
    ranges: Final[tuple[OrderRange, ...]]

    def __init__(self, *, view: ViewId, first_gseq: int, ranges: tuple[OrderRange, ...]) -> None:
        self.view = view
        self.first_gseq = first_gseq
        self.ranges = ranges


@dataclass(frozen=True, slots=True, kw_only=True)
class Nak:
    """Ask for missing data runs (sender, first seq, last seq) and ordering gseqs [from, to]."""

    view: ViewId
    sender: str
    data: tuple[tuple[str, int, int], ...]
    order_from: int
    order_to: int  # order_to < order_from means "no ordering wanted"


@dataclass(frozen=True, slots=True, kw_only=True)
class Propose:
    view: ViewId  # the proposed new view id; view.coord is the proposer
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Flush:
    """A member's report of its old view to the proposer (the flush step of a view change)."""

    proposal: ViewId
    sender: str
    old_view: ViewId
    old_members: tuple[str, ...]
    delivered_upto: int
    order: tuple[GlobalRange, ...]
    msgs: tuple[tuple[str, int, Msg], ...]  # (sender, seq, msg) of retained messages
    acks: tuple[tuple[str, int], ...]  # (member, ord_known) as known by the reporter
    local_groups: tuple[tuple[str, tuple[str, ...]], ...]  # (conn, joined groups), final
    # (sender, seq): the highest seq of each sender the reporter delivered in the old regular
    # view, all lower ones included (early deliveries: protocol/ordering.md section 8.1)
    delivered_seqs: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Cleanup:
    """What the survivors of one old view deliver to close it (EVS-4, EVS-6.2, EVS-7)."""

    old_view: ViewId
    trans_members: tuple[str, ...]
    regular_upto: int  # deliver up to this gseq in the old regular view
    # (gseq, sender, seq, msg); gseq 0: a message delivered early by a survivor, delivered by
    # each daemon that has not delivered that seq of that sender yet (ordering.md section 8.1)
    regular: tuple[tuple[int, str, int, Msg], ...]
    transitional: tuple[tuple[str, int, Msg], ...]  # delivered in the transitional view


@dataclass(frozen=True, slots=True, kw_only=True)
class Install:
    view: ViewId
    members: tuple[str, ...]
    cleanups: tuple[Cleanup, ...]
    groups: tuple[tuple[str, str, tuple[str, ...]], ...]  # (daemon, conn, groups)


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave:
    """A daemon shutting down cleanly: peers drop it at once instead of waiting for a timeout."""

    view: ViewId
    sender: str


Frame = Status | Data | Ordered | Nak | Propose | Flush | Install | Leave


# Epochs grow by one per view-change round, so no real frame comes near this; one claiming more
# is corrupt or hostile. Accepting it would leave no room to count: a proposal one epoch later
# would not be encodable (MAX_UINT, 2^63 - 1), and the daemons stay split for good (found by
# tests/daemon/test_live_port_fuzz.py). protocol/ordering.md section 10.
MAX_EPOCH: Final = 2**62


def highest_epoch(frame: Frame) -> int:
    """The largest epoch a frame claims anywhere (views, proposals, ``max_epoch``)."""
    if isinstance(frame, Status):
        proposal = frame.proposal.epoch if frame.proposal is not None else 0
        return max(frame.view.epoch, frame.max_epoch, proposal)
    if isinstance(frame, Flush):
        return max(frame.proposal.epoch, frame.old_view.epoch)
    if isinstance(frame, Install):
        return max([frame.view.epoch, *(c.old_view.epoch for c in frame.cleanups)])
    return frame.view.epoch


def origin(frame: Frame) -> str:
    """The daemon a frame must come from (AUTH-1, ``protocol/frames.md`` "Origin").

    A daemon only ever sends frames it speaks for: ``sender`` frames carry its own token, and
    ``Ordered``, ``Propose`` and ``Install`` are sent by the coordinator of their view (the
    sequencer, the proposer). So a link can refuse any frame whose origin is not the peer
    authenticated on it, and nobody relays another daemon's frames (repairs included:
    ``Epoch.repair`` answers only for its own data, and for ordering only as the sequencer)."""
    if isinstance(frame, Ordered | Propose | Install):
        return token_name(frame.view.coord)
    return token_name(frame.sender)
