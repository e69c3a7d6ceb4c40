"""``Node``: one daemon's protocol state machine. ``handle(now_ms, event) -> list[Command]``.

Owns the current regular view and the glue between the per-view ``Epoch``, the membership round
(``membership.Membership``, which reaches the node only through its ``Host`` protocol), client
request intake (``requests``) and the ``GroupTable``: the round decides an install, the node
applies it (``install_view``). It does no I/O: the driver executes the returned commands in order.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from typing import assert_never

from groupcomm.core import requests
from groupcomm.core.commands import (
    RECORD,
    Command,
    Credit,
    DeliverMessage,
    Note,
    SendFrame,
    SetTimer,
)
from groupcomm.core.config import CoreConfig
from groupcomm.core.epoch import Epoch
from groupcomm.core.events import (
    BacklogChanged,
    Event,
    FrameReceived,
    JoinRequested,
    LeaveRequested,
    MulticastRequested,
    SessionClosed,
    SessionOpened,
    ShutdownRequested,
    Started,
    TimerFired,
)
from groupcomm.core.fragments import (
    FRAGMENT,
    Reassembly,
    chunk_len,
    delivery,
    fragment,
    is_last,
)
from groupcomm.core.frames import (
    MAX_EPOCH,
    Cleanup,
    Data,
    Flush,
    Frame,
    Install,
    Leave,
    Msg,
    Nak,
    Ordered,
    Propose,
    Status,
    highest_epoch,
)
from groupcomm.core.groups import GroupOp, GroupTable, joined_by
from groupcomm.core.ids import (
    ViewId,
    make_token,
    message_id,
    regular_conf_id,
    token_name,
    transitional_conf_id,
)
from groupcomm.core.membership import OPERATIONAL, Membership
from groupcomm.core.service import SELF_DISCARD, Kind, is_group_op
from groupcomm.core.tracing import SERVICE_NAMES

TICK = "tick"
# Asked for when a pump stopped delivering at its budget (DELIVER_BUDGET, or one large message)
# with more to deliver: the driver fires it at once, after checking its clients' backlog, so
# the rest does not wait for the next frame or tick. Without it a member of a star view, which
# hears few frames, delivered one fragmented message per tick (seed 10, 10 daemons, BUGGIFY).
DRAIN = "drain"
DELIVER_BUDGET = 1 << 20  # payload bytes delivered per pump at most
_new_tuple = tuple.__new__  # NamedTuple construction without its Python-level __new__
# Kinds as plain ints for the per-message paths: ``x == Kind.DATA`` costs four times ``x == DATA``
# (an enum attribute lookup and IntEnum comparison per message).
DATA, JOIN, LEAVE, DISCONNECT = (
    int(k) for k in (Kind.DATA, Kind.JOIN, Kind.LEAVE, Kind.DISCONNECT)
)


class Node:
    def __init__(self, config: CoreConfig, rng: random.Random | None = None) -> None:
        self.cfg = config
        self.rng = rng or random.Random(0)
        self.name = config.name
        self.me = make_token(config.name, config.incarnation)
        self.others = tuple(sorted(p for p in config.peers if p != config.name))
        self.now = 0
        self.view = ViewId(0, self.me)
        self.conf = regular_conf_id(self.view)  # the regular configuration's id, set with view
        self.members: tuple[str, ...] = (self.me,)
        self.member_peers: tuple[str, ...] = ()  # names of the other members (send targets)
        self._mid_view: ViewId | None = None  # the view the cached message-id prefixes are for
        self._mid_prefix: dict[str, str] = {}  # sender token -> "sender|view|"
        self.epoch = Epoch(self.view, self.members, self.me)
        self.groups = GroupTable(self.me)
        self.pending: deque[Msg] = deque()
        # The next fragment to stamp of the message at the head of ``pending`` (SVC-FRAG); 0
        # when it is not being fragmented. Reset to 0 by a view change: the message restarts.
        self._frag_next = 0
        self.frags = Reassembly(config.max_message_bytes)  # large messages being reassembled
        self.own_delivered_seq = 0
        self.stopped = False
        self.started = False
        self.last_heartbeat = -(10**9)
        self.last_status = -(10**9)  # when we last built a Status (heartbeat or report)
        self.installed_at = 0  # when the current view was installed
        self.counters: dict[str, int] = {"delivered": 0, "retransmitted": 0, "naks": 0}
        # Star member: token -> (contig, since) of each member whose data we have been asking
        # for since ``since`` without its contig moving (``unanswered``).
        self._stalled: dict[str, tuple[int, int]] = {}
        self.membership = Membership(config, self.me, self.others, self)

    @property
    def phase(self) -> str:
        """``membership.OPERATIONAL`` or ``membership.GATHER`` (the round's phase)."""
        return self.membership.phase

    # ------------------------------------------------------------------ entry
    def handle(self, now_ms: int, event: Event) -> list[Command]:
        return self.handle_batch(now_ms, (event,))

    def handle_batch(self, now_ms: int, events: Iterable[Event]) -> list[Command]:
        """Handle several events that arrived together, then send, order and deliver once.

        This is where batching comes from: a driver that reads every ready frame and request
        before calling this gets one Data, one Ordered and one Status frame per turn."""
        self.now = now_ms
        out: list[Command] = []
        for event in events:
            if self.stopped:
                return out
            self._dispatch(event, out)
        if not self.stopped:
            self._pump(out)
        return out

    def _dispatch(self, event: Event, out: list[Command]) -> None:
        match event:
            case FrameReceived(frame=frame):
                try:
                    self._on_frame(frame, out)
                except (KeyError, IndexError, ValueError, TypeError, OverflowError) as exc:
                    # A decodable but inconsistent frame from a confused or hostile peer must
                    # not take the daemon down. The simulator reports every such note.
                    self.counters["frame_errors"] = self.counters.get("frame_errors", 0) + 1
                    out.append(
                        Note(
                            event="frame_error",
                            fields={
                                "d": self.me,
                                "frame": type(frame).__name__,
                                "error": repr(exc),
                            },
                        )
                    )
            case TimerFired(name=name):
                if name == TICK:
                    self._on_tick(out)
            case SessionOpened() | SessionClosed() | JoinRequested() | LeaveRequested():
                requests.on_session_event(self.groups, self.pending, event, out)
            case MulticastRequested():
                requests.on_multicast(
                    self.groups, self.pending, self.cfg.max_message_bytes, event, out
                )
            case Started():
                self._start(out)
            case BacklogChanged(lagging=lagging):
                self.epoch.hold(lagging)  # carried into the epoch of every new view
            case ShutdownRequested():
                self._shutdown(out)
            case _:
                assert_never(event)

    def _start(self, out: list[Command]) -> None:
        if self.started:
            return
        self.started = True
        self.groups.set_conf(regular_conf_id(self.view))
        out.append(
            _install_note(
                self.me, regular_conf_id(self.view), "regular", self.members, self.view.epoch
            )
        )
        out.append(SetTimer(name=TICK, at_ms=self.now + self.cfg.tick_ms))

    def _shutdown(self, out: list[Command]) -> None:
        leave = Leave(view=self.view, sender=self.me)
        out.append(SendFrame(targets=self.others, frame=leave))
        out.append(Note(event="shutdown", fields={"d": self.me}))
        self.stopped = True

    # ----------------------------------------------------------------- frames
    def _on_frame(self, frame: Frame, out: list[Command]) -> None:
        if highest_epoch(frame) > MAX_EPOCH:
            raise ValueError(f"an epoch beyond {MAX_EPOCH}")  # refused and counted (_dispatch)
        match frame:
            # While gathering, the old view's state is frozen: what we acknowledge must never
            # exceed what our Flush reports, or peers would free messages the cleanup needs.
            case Data():
                if frame.view == self.view and self.membership.phase == OPERATIONAL:
                    self.epoch.on_data(frame)
            case Ordered():
                if frame.view == self.view and self.membership.phase == OPERATIONAL:
                    self.epoch.on_ordered(frame)
            case Status():
                self.membership.on_status(self.now, frame, out)
            case Nak():
                self._on_nak(frame, out)
            case Propose():
                self.membership.on_propose(self.now, frame, out)
            case Flush():
                self.membership.on_flush(self.now, frame, out)
            case Install():
                self.membership.on_install(self.now, frame, out)
            case Leave():
                self.membership.on_leave(self.now, frame, out)
            case _:
                assert_never(frame)

    def _on_nak(self, nak: Nak, out: list[Command]) -> None:
        if nak.view != self.view or nak.sender not in self.epoch.recv:
            return
        target = (token_name(nak.sender),)
        for frame in self.epoch.repair(nak):
            self.counters["retransmitted"] += len(frame.msgs) if isinstance(frame, Data) else 0
            out.append(SendFrame(targets=target, frame=frame))

    def _on_tick(self, out: list[Command]) -> None:
        out.append(SetTimer(name=TICK, at_ms=self.now + self.cfg.tick_ms))
        operational = self.membership.phase == OPERATIONAL
        if self.now - self.last_heartbeat >= self.cfg.heartbeat_ms:
            self.last_heartbeat = self.now
            # A member of a star view heartbeats its coordinator only, which alone watches
            # every member; while gathering, everybody heartbeats everybody (membership.md
            # section 2).
            star_member = operational and self.epoch.star_member
            targets = (token_name(self.view.coord),) if star_member else self.others
            out.append(SendFrame(targets=targets, frame=self.status()))
        if operational:
            nak = self.epoch.missing()
            if self.epoch.star_member:
                self._track_stalls(nak)
            if nak is not None:
                self.counters["naks"] += 1
                wanted = {token_name(s) for s, _, _ in nak.data}
                if nak.order_to >= nak.order_from:
                    wanted.add(token_name(self.view.coord))
                wanted.discard(self.name)
                if wanted:
                    out.append(SendFrame(targets=tuple(sorted(wanted)), frame=nak))
        self.membership.check_membership(self.now, out)

    def _track_stalls(self, nak: Nak | None) -> None:
        """Star member: note since when each member's data gap has not moved. We do not hear
        the other members' heartbeats, so a member whose data stops reaching us while it still
        reaches the coordinator would stall our acks, and with them the group, for good; after
        ``suspect_timeout_ms`` without progress we suspect it (``unanswered``)."""
        stalled = self._stalled
        if nak is None or not nak.data:
            stalled.clear()
            return
        contig = self.epoch.contig
        now = self.now
        asked = set()
        for sender, _, _ in nak.data:
            asked.add(sender)
            known = stalled.get(sender)
            if known is None or known[0] != contig[sender]:
                stalled[sender] = (contig[sender], now)
        for sender in [s for s in stalled if s not in asked]:
            del stalled[sender]

    def unanswered(self) -> frozenset[str]:
        """Members (tokens) whose data we have asked for without progress for a suspect
        timeout (``membership.Host``)."""
        horizon = self.now - self.cfg.suspect_timeout_ms
        return frozenset(s for s, (_, since) in self._stalled.items() if since <= horizon)

    def status(self) -> Status:
        self.last_status = self.now
        ms = self.membership
        return self.epoch.status(ms.max_epoch, ms.accepted_view())

    # ------------------------------------------------------------------- pump
    def _pump(self, out: list[Command]) -> None:
        """After every event: send what we may, order, deliver, free, acknowledge."""
        if self.membership.phase != OPERATIONAL:
            return
        epoch = self.epoch
        peers = self.member_peers
        if self.pending:
            self._stamp_pending(peers, out)
        if epoch.is_sequencer:
            ordered = epoch.sequence()
            if ordered is not None and peers:
                out.append(SendFrame(targets=peers, frame=ordered))
        if not epoch.held:  # a local client lags: deliver nothing more until it caught up
            conf = self.conf
            # At most DELIVER_BUDGET payload bytes per pump (the rest at the next pump, which
            # DRAIN asks for): a client's backlog then overshoots the point where it makes the
            # driver hold (BacklogChanged) by at most that much, not by every sender's window. A
            # large message counts whole at its last fragment, and only as the first thing a
            # pump delivers: one pump hands the clients at most one large message, which the
            # slow-consumer limit (at least twice max_message_bytes) leaves room for.
            budget = DELIVER_BUDGET
            handed = False  # something of this pump went to the clients
            frags = self.frags
            more = False  # stopped at the budget: the next pump goes on (DRAIN)
            for gseq, sender, seq, msg in epoch.deliverable():
                self.deliver(sender, self.view, seq, msg, conf, out, gseq)
                if msg.kind == FRAGMENT:
                    size, whole = delivery(msg)
                    budget -= size
                    handed = handed or whole
                else:
                    budget -= len(msg.payload)
                    handed = True
                if budget <= 0 or (handed and frags.buffered and completes_next(epoch)):
                    more = True
                    break
            if more:
                out.append(SetTimer(name=DRAIN, at_ms=self.now))
        epoch.collect_garbage()
        if (
            epoch.status_dirty
            and peers
            and (
                epoch.status_urgent
                or epoch.safe_report_due()
                or self.now - self.last_status >= self.cfg.heartbeat_ms
                # Right after an install every report goes out at once: deferring them there
                # slowed merges in the simulator (more rounds before the views settle, L3).
                or self.now - self.installed_at < self.cfg.suspect_timeout_ms
            )
        ):
            if epoch.star_member and not epoch.ord_ack_due:
                # Star: our reports go to the coordinator, which relays what the members need
                # (stable, safe point); only a rule-2 ack goes to everybody at once.
                peers = (token_name(self.view.coord),)
            out.append(SendFrame(targets=peers, frame=self.status()))

    def _stamp_pending(self, peers: tuple[str, ...], out: list[Command]) -> None:
        epoch = self.epoch
        cfg = self.cfg
        pending = self.pending
        while pending:
            room = cfg.window_msgs - epoch.in_flight()
            if room <= 0 or epoch.own_unstable_bytes >= cfg.window_bytes:
                return
            batch: list[Msg] = []
            size = 0
            while pending and len(batch) < room and size < cfg.batch_bytes:
                msg = pending[0]
                if len(msg.payload) > cfg.fragment_bytes and msg.kind == DATA:
                    # SVC-FRAG: the head message goes one fragment at a time, nothing of this
                    # daemon in between; the window check above paces the fragments.
                    msg, last = fragment(msg, self._frag_next, cfg.fragment_bytes)
                    self._frag_next = 0 if last else self._frag_next + 1
                    if last:
                        pending.popleft()
                else:
                    pending.popleft()
                batch.append(msg)
                size += len(msg.payload) + 64
            first = epoch.next_seq
            data = epoch.stamp(batch)
            self._credit(batch, out)
            if cfg.trace_messages:
                self._note_sends(batch, first, out)
            if peers:
                out.append(SendFrame(targets=peers, frame=data))

    def _credit(self, batch: list[Msg], out: list[Command]) -> None:
        credits: dict[str, int] = {}
        for msg in batch:
            if msg.kind == DATA:
                credits[msg.conn] = credits.get(msg.conn, 0) + len(msg.payload)
            elif msg.kind == FRAGMENT:
                credits[msg.conn] = credits.get(msg.conn, 0) + chunk_len(msg)
        out.extend(_new_tuple(Credit, item) for item in credits.items())  # (conn, payload_bytes)

    def _note_sends(self, batch: list[Msg], first: int, out: list[Command]) -> None:
        conf = self.conf
        for i, msg in enumerate(batch):
            # A large message is sent when its last fragment is (SVC-FRAG).
            if msg.kind != DATA and not (msg.kind == FRAGMENT and is_last(msg)):
                continue
            out.append(
                Note(
                    event="send",
                    fields={
                        "d": self.me,
                        "p": msg.conn,
                        "mid": message_id(self.me, self.view, first + i),
                        "svc": SERVICE_NAMES[msg.service & 0x3F],
                        "self_discard": bool(msg.service & SELF_DISCARD),
                        "groups": list(msg.groups),
                        "conf": conf,
                    },
                )
            )

    # --------------------------------------------------------------- delivery
    def deliver(
        self, sender: str, view: ViewId, seq: int, msg: Msg, conf: str, out: list[Command], n: int
    ) -> None:
        """Deliver one message of the ordered stream (data or group operation): the ``n`` th
        of configuration ``conf`` (its position, protocol/retention.md section 1)."""
        if sender == self.me:
            self.own_delivered_seq = seq
        kind = msg.kind
        if kind == FRAGMENT:
            whole = self.frags.add(sender, msg)  # SVC-FRAG: the whole at its last fragment
            if whole is None:
                return
            msg, kind = whole, DATA
        if kind == DATA:
            self.counters["delivered"] += 1
            # ``is not`` first: the view is nearly always the very object of the last call, and
            # a dataclass ``!=`` per delivered message was 2 % of a flooded daemon's time.
            if self._mid_view is not view:
                if self._mid_view != view:
                    self._mid_prefix.clear()
                self._mid_view = view  # an equal view: from now on the same object too
            prefix = self._mid_prefix.get(sender)
            if prefix is None:
                prefix = self._mid_prefix[sender] = message_id(sender, view, 0)[:-1]
            mid = prefix + str(seq)  # == message_id(sender, view, seq), without str(view) each time
            if self.cfg.trace_messages:
                svc = SERVICE_NAMES[msg.service & 0x3F]
                out.append(
                    Note(
                        event="deliver",
                        fields={"d": self.me, "mid": mid, "svc": svc, "conf": conf, "n": n},
                    )
                )
            discard = msg.conn if msg.service & SELF_DISCARD else None
            payload = msg.payload
            sender_conn, groups, service, msg_type = msg.conn, msg.groups, msg.service, msg.msg_type
            if self.cfg.record:
                record = (RECORD, sender_conn, groups, service, msg_type, payload, mid, conf, n)
                out.append(_new_tuple(DeliverMessage, record))
            for conn in self.groups.recipients(groups):
                if conn != discard:
                    # The hottest allocation of the daemon: built with tuple.__new__ (fields in
                    # order: conn, sender, groups, service, msg_type, payload, mid, conf, n),
                    # which skips the NamedTuple's Python-level __new__ and costs half as much.
                    entry = (conn, sender_conn, groups, service, msg_type, payload, mid, conf, n)
                    out.append(_new_tuple(DeliverMessage, entry))
        elif kind == DISCONNECT:
            out.extend(self.groups.disconnect(msg.conn))
        elif len(msg.groups) != 1:
            return  # a join or leave names exactly one group; anything else is malformed
        elif kind == JOIN:
            out.extend(self.groups.join(msg.conn, sender, msg.groups[0]))
        elif kind == LEAVE:
            out.extend(self.groups.leave(msg.conn, msg.groups[0], "LEAVE"))

    def final_local_groups(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Our connections' groups once every op we already stamped is applied.

        Every stamped own op is delivered by the cleanup of the view change, so this is exactly
        the state the new view starts from (see viewchange)."""
        joined = self.groups.groups_on(self.me)
        own = self.epoch.recv[self.me]
        for seq in sorted(s for s in own if s > self.own_delivered_seq):
            msg = own[seq]
            if msg.kind == Kind.JOIN:
                joined.setdefault(msg.conn, set()).add(msg.groups[0])
            elif msg.kind == Kind.LEAVE:
                joined.get(msg.conn, set()).discard(msg.groups[0])
            elif msg.kind == Kind.DISCONNECT:
                joined.pop(msg.conn, None)
        return tuple((c, tuple(sorted(g))) for c, g in sorted(joined.items()) if g)

    # ----------------------------------------------------------- view change
    def install_view(self, install: Install, cleanup: Cleanup, out: list[Command]) -> None:
        """Apply an install the round decided (``membership.Host``): deliver our old view's
        ``cleanup`` (regular part, transitional configuration, transitional part), then
        install the new regular view with a fresh epoch and the merged group table."""
        self._deliver_cleanup(install, cleanup, out)
        # SVC-FRAG: a large message not complete in the old view is delivered by nobody who
        # moves on together; its sender restarts it (whole in ``pending``) in the new view.
        cut = self.frags.discard_all()
        if cut:
            out.append(Note(event="frag_cut", fields={"d": self.me, "messages": cut}))
        self._restart_fragmented()
        vs_of: dict[str, int] = {}
        joined_in_trans: list[dict[str, set[str]]] = []
        for index, c in enumerate(install.cleanups):
            for member in c.trans_members:
                vs_of[member] = index
            joined_in_trans.append(joined_by(group_ops(c.transitional)))
        self.view = install.view
        self.conf = regular_conf_id(self.view)
        self.members = install.members
        self.member_peers = tuple(token_name(m) for m in install.members if m != self.me)
        held = self.epoch.held  # a lagging local client still lags in the new view
        star = len(self.members) >= self.cfg.star_members
        self.epoch = Epoch(self.view, self.members, self.me, star)
        self._stalled.clear()
        self.epoch.hold(held)
        self.own_delivered_seq = 0
        conf = self.conf
        self.groups.set_conf(conf)
        out.append(_install_note(self.me, conf, "regular", self.members, self.view.epoch))
        out.extend(self.groups.install(install.groups, vs_of, joined_in_trans))
        self.installed_at = self.now

    def _restart_fragmented(self) -> None:
        """A message partly stamped in the old view is sent again from its first fragment."""
        self._frag_next = 0

    def _deliver_cleanup(self, install: Install, cleanup: Cleanup, out: list[Command]) -> None:
        old_view = self.view
        conf = regular_conf_id(old_view)
        epoch = self.epoch
        delivered_seq = epoch.delivered_seq
        for gseq, sender, seq, msg in cleanup.regular:
            if gseq == 0:  # delivered early by a survivor (ordering.md section 8.1)
                if seq > delivered_seq.get(sender, 0):
                    delivered_seq[sender] = seq
                    self.deliver(sender, old_view, seq, msg, conf, out, 0)
            elif gseq > epoch.delivered:
                epoch.delivered = gseq
                self.deliver(sender, old_view, seq, msg, conf, out, gseq)
        tconf = transitional_conf_id(install.view, old_view)
        trans = cleanup.trans_members
        out.append(_install_note(self.me, tconf, "transitional", trans, install.view.epoch))
        self.groups.set_conf(tconf)
        ops = group_ops(cleanup.transitional)
        next_conf = regular_conf_id(install.view)
        out.extend(self.groups.begin_transitional(set(trans), next_conf, ops))
        for n, (sender, seq, msg) in enumerate(cleanup.transitional, 1):
            self.deliver(sender, old_view, seq, msg, tconf, out, n)


def group_ops(entries: Iterable[tuple[str, int, Msg]]) -> list[GroupOp]:
    """The group operations among a cleanup's transitional entries, in delivery order."""
    return [(m.kind, m.conn, m.groups) for _, _, m in entries if is_group_op(m.kind)]


def _install_note(me: str, conf: str, kind: str, members: tuple[str, ...], epoch: int) -> Note:
    fields: dict[str, object] = {
        "d": me,
        "conf": conf,
        "kind": kind,
        "members": list(members),
        "epoch": epoch,
    }
    return Note(event="install", fields=fields)


def completes_next(epoch: Epoch) -> bool:
    """The next message of the order is here and is the last fragment of a large message (its
    delivery hands the clients the whole message)."""
    msg = epoch.peek()
    return msg is not None and msg.kind == FRAGMENT and is_last(msg)
