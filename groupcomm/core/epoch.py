"""Per-view message state: reliability, sequencer order, stability, delivery order.

An ``Epoch`` lives exactly as long as one regular daemon view. It owns per-sender sequence
numbers and NAK repair, the sequencer's total order (when this daemon coordinates the view),
ack tracking for stability, and the delivery cursor. It does not own membership: at a view
change the membership layer reads its state (``flush_report``) and throws it away.

Delivery rule in the regular view (see protocol/ordering.md):
  * messages are delivered in gseq order with no holes (EVS-6.2);
  * a message at gseq g is delivered only once its sender has acknowledged ordering metadata
    through g. This is what lets a view change deliver a partition's own unordered messages
    without contradicting an order another partition already delivered (EVS-6.1, EVS-3);
  * SAFE additionally waits until every member holds everything through g (EVS-7.1);
  * UNRELIABLE, RELIABLE and FIFO messages marked ``early`` by their sender are delivered on
    receipt in sender order, once the order through their anchor is delivered; a group
    operation then waits until no early message anchored before it can still arrive
    (ordering.md section 8.1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import repeat

from groupcomm.core.frames import (
    Data,
    GlobalRange,
    Msg,
    Nak,
    Ordered,
    OrderRange,
    Status,
    with_early,
)
from groupcomm.core.ids import ViewId
from groupcomm.core.service import Service, is_group_op, may_be_early

SAFE = int(Service.SAFE)
MAX_REPORTS = 256  # (ord_known, sent_seq) pairs kept per member for the hold of group operations
MAX_AHEAD = 1 << 20  # bound on gseq/seq jumps accepted from a peer (hostile-input guard)
MAX_NAK_RUN = 4096  # longest run asked for in one NAK entry
SERVICE_BITS = 0x3F


URGENT_ARU_LEAD = 256  # receipt acks this far ahead of the last report go out at once


class Epoch:
    """Message state of one regular view, seen from daemon ``me``."""

    def __init__(self, view: ViewId, members: tuple[str, ...], me: str, star: bool = False) -> None:
        self.view = view
        self.members = members
        self.me = me
        self.is_sequencer = view.coord == me
        # Star acknowledgements (ordering.md section 4): the members report to the coordinator
        # only, so a member cannot compute stability or the safe point itself and takes them,
        # and the sender acks of rule 2, from the coordinator's Status (its ``stable``, ``safe``
        # and ``acked``). ``star_member``: we are such a member (not the coordinator).
        self.star = star and len(members) > 1
        self.star_member = self.star and not self.is_sequencer
        self.coord = view.coord
        self.coord_safe = 0  # the coordinator's last ``Status.safe``
        self.coord_acked = 0  # the coordinator's last ``Status.acked``
        self.acked = 0  # coordinator of a star view: the prefix whose senders all acked (rule 2)
        self.next_seq = 1  # our next data seq
        self.recv: dict[str, dict[int, Msg]] = {m: {} for m in members}
        self.contig: dict[str, int] = dict.fromkeys(members, 0)  # contiguous seqs held
        self.seen_seq: dict[str, int] = dict.fromkeys(members, 0)  # highest seq known to exist
        self.order: dict[int, tuple[str, int]] = {}  # gseq -> (sender, seq), retained part
        self.ord_known = 0  # contiguous ordering prefix held
        self.ordered_hint = 0  # highest gseq known to exist
        # seen_seq and ordered_hint as of the previous missing(): only older gaps are NAKed
        self.nak_seen: dict[str, int] = dict.fromkeys(members, 0)
        self.nak_hint = 0
        self.aru = 0  # contiguous prefix with ordering *and* payload
        # A local consumer lags (BacklogChanged): receipt is acknowledged (our own
        # ack_aru, Status.aru) only up to what we delivered, so every sender's window fills.
        self.held = False
        self.delivered = 0
        self.gc_upto = 0
        self.ack_ord: dict[str, int] = dict.fromkeys(members, 0)
        self.ack_aru: dict[str, int] = dict.fromkeys(members, 0)
        self.ack_stable: dict[str, int] = dict.fromkeys(members, 0)
        # min(ack_aru) and how many members are at it, max(ack_stable): kept up to date by
        # _raise_aru / _raise_stable, since the pump reads them every turn and a view can have
        # a hundred members (a min over all of them per turn was 6 % of a 100-daemon run).
        self._aru_low = 0
        self._aru_at_low = len(members)
        self._stable_low = 0  # min(ack_stable): the safe point, likewise
        self._stable_at_low = len(members)
        self._top_stable = 0
        # Senders whose seen_seq may exceed contig: the only ones missing() looks at.
        self._behind: set[str] = set()
        # Sequencer state: highest seq of each sender already ordered, next gseq to assign.
        self.seq_done: dict[str, int] = dict.fromkeys(members, 0)
        self.next_gseq = 1
        self.dirty_senders: set[str] = set()
        # Flow control: our own messages not yet stable.
        self.own_unstable_bytes = 0
        self.own_stable = 0  # how many of our messages are stable
        self.status_dirty = False
        # Whether the change must go out this turn: our ordering ack for one of our own
        # messages (the others deliver it only after that ack), or a receipt ack far ahead of
        # the last report (senders' windows wait on it); SAFE's reports: safe_report_due.
        # Other changes ride on the members' next heartbeat (Node._heartbeat): at low rates
        # most status frames were such repeats, several per message per daemon (ordering.md
        # section 4).
        self.status_urgent = False
        # Our ord_known passed one of our own messages: the others deliver it only after this
        # ack (rule 2), so even a star member sends this Status to every member.
        self.ord_ack_due = False
        self.reported_aru = 0
        # SAFE messages within our aru whose stability we have not yet reported, in gseq
        # order: the others' SAFE delivery waits for our aru and then our stable to reach
        # them (safe_report_due). Pruned by every Status we send; alone in our view there is
        # nobody to report to, and nothing is kept.
        self.safe_pending: deque[int] = deque()
        self._track_safe = len(members) > 1
        self.reported_stable = 0
        # Coordinator of a star view: SAFE messages its stable reports covered whose safe point
        # it has not published yet (``Status.safe``); the members deliver them on it.
        self.safe_unpublished: deque[int] = deque()
        # Early delivery (ordering.md section 8.1). Not in a star view: its members do not hear
        # every member's Status, which the hold of group operations needs.
        self.early_ok = not self.star
        # Highest seq of each sender delivered, by either path; all lower ones are delivered too
        # (SVC-FIFO: both paths deliver a sender's messages in seq order).
        self.delivered_seq: dict[str, int] = dict.fromkeys(members, 0)
        # Our last message that waits for the total order, and our highest message whose gseq
        # we know: ours are marked early only while every earlier total-order one is known, so
        # that its anchor lies at or after them (SVC-FIFO across levels).
        self.own_total_seq = 0
        self.own_known_seq = 0
        # Per member, the (ord_known, sent_seq) of each Status that raised its ord_known: the
        # first with ord_known >= j tells which of its messages were sent before it knew j.
        self.reports: dict[str, deque[tuple[int, int]]] = {m: deque() for m in members}
        # The delivered gseq at which an early message blocked on its anchor becomes deliverable
        # (the smallest such), or -1: deliverable() goes back to the early pass there.
        self._early_wake = -1

    # ----------------------------------------------------------------- sending
    def in_flight(self) -> int:
        return self.next_seq - 1 - self.own_stable

    def stamp(self, msgs: list[Msg]) -> Data:
        """Assign our next seqs to ``msgs`` and keep them until stable (for repair)."""
        first = self.next_seq
        own = self.recv[self.me]
        early_ok = self.early_ok
        for i, msg in enumerate(msgs):
            seq = first + i
            if early_ok and may_be_early(msg.kind, msg.service):
                if self.own_total_seq <= self.own_known_seq:
                    msg = msgs[i] = with_early(msg, self.ord_known + 1)
                else:
                    self.own_total_seq = seq
            else:
                self.own_total_seq = seq
            own[seq] = msg
            self.own_unstable_bytes += len(msg.payload)
        self.next_seq = first + len(msgs)
        self.contig[self.me] = self.next_seq - 1
        self.seen_seq[self.me] = self.next_seq - 1
        if self.is_sequencer:
            self.dirty_senders.add(self.me)
        return Data(view=self.view, sender=self.me, first_seq=first, msgs=tuple(msgs))

    # --------------------------------------------------------------- receiving
    def on_data(self, frame: Data) -> None:
        sender = frame.sender
        store = self.recv.get(sender)
        if store is None or sender == self.me:
            return
        contig = self.contig[sender]
        if frame.first_seq > contig + MAX_AHEAD:
            return  # bogus: never store what could not be a real gap
        seq = frame.first_seq
        for msg in frame.msgs:
            if seq > contig and seq not in store:
                store[seq] = msg
            seq += 1
        last = seq - 1
        if self.seen_seq[sender] < last <= contig + MAX_AHEAD:
            self.seen_seq[sender] = last
            self._behind.add(sender)
        while contig + 1 in store:
            contig += 1
        if contig != self.contig[sender]:
            self.contig[sender] = contig
            if self.is_sequencer:
                self.dirty_senders.add(sender)
            self._advance_aru()

    def on_ordered(self, frame: Ordered) -> None:
        gseq = frame.first_gseq
        order = self.order
        floor = max(self.gc_upto, self.ord_known)
        if gseq > self.ord_known + MAX_AHEAD:
            return  # far beyond anything plausible: a bogus frame, not a gap to repair
        # Every gseq in ``order`` is at most ``ordered_hint`` (raised below after each frame), and
        # this frame's own entries lie below ``gseq``: past ``fresh`` nothing can be there yet.
        fresh = max(floor, self.ordered_hint)
        for sender, first_seq, count in frame.ranges:
            # Not a member of this view, or absurd: ignore the rest, but keep ordered_hint above
            # what was taken (the invariant ``fresh`` relies on).
            if sender not in self.recv or not 0 < count <= MAX_AHEAD:
                break
            if gseq + count > frame.first_gseq + MAX_AHEAD:
                break
            if gseq > fresh and count == 1:  # light load: one message per sender and frame
                order[gseq] = (sender, first_seq)
                gseq += 1
            elif gseq > fresh:  # the usual case under load: all new, one C-level update
                seqs = range(first_seq, first_seq + count)
                entries = zip(repeat(sender, count), seqs, strict=True)
                order.update(zip(range(gseq, gseq + count), entries, strict=True))
                gseq += count
            else:  # a repair or a duplicate: the first order heard for a gseq stands
                for seq in range(first_seq, first_seq + count):
                    if gseq > floor and gseq not in order:
                        order[gseq] = (sender, seq)
                    gseq += 1
            if self.seen_seq[sender] < first_seq + count - 1 <= self.contig[sender] + MAX_AHEAD:
                self.seen_seq[sender] = first_seq + count - 1
                self._behind.add(sender)
        if gseq - 1 > self.ordered_hint:
            self.ordered_hint = gseq - 1
        self._advance_ord_known()

    def on_status(self, frame: Status) -> None:
        sender = frame.sender
        if sender not in self.ack_ord:
            return
        if frame.ord_known > self.ack_ord[sender]:
            self.ack_ord[sender] = frame.ord_known
            if self.early_ok:
                reports = self.reports[sender]
                while reports and reports[0][0] <= self.delivered:  # no group op left for them
                    reports.popleft()
                if len(reports) >= MAX_REPORTS:
                    reports.popleft()  # a later report answers for it: more waiting, still safe
                reports.append((frame.ord_known, frame.sent_seq))
        grew = False  # something our stable() is computed from
        if frame.aru > self.ack_aru[sender]:
            grew = self._raise_aru(sender, frame.aru)
        if frame.stable > self.ack_stable[sender]:
            self._raise_stable(sender, frame.stable)
            grew = grew or (self.star_member and sender == self.coord)
        if grew:
            stable = self.stable()
            if stable > self.ack_stable[self.me]:
                self._raise_stable(self.me, stable)
                self.status_dirty = True
        if self.star_member and sender == self.coord:
            if frame.safe > self.coord_safe:
                self.coord_safe = frame.safe
            if frame.acked > self.coord_acked:
                self.coord_acked = frame.acked
        if self.seen_seq[sender] < frame.sent_seq <= self.contig[sender] + MAX_AHEAD:
            self.seen_seq[sender] = frame.sent_seq
            self._behind.add(sender)
        if sender == self.coord and (
            self.ordered_hint < frame.ordered_upto <= self.ord_known + MAX_AHEAD
        ):
            self.ordered_hint = frame.ordered_upto

    def _raise_aru(self, member: str, value: int) -> bool:
        """Set ``ack_aru[member]`` to the higher ``value``; whether min(ack_aru) grew."""
        acks = self.ack_aru
        old = acks[member]
        acks[member] = value
        if old != self._aru_low:
            return False
        self._aru_at_low -= 1
        if self._aru_at_low:
            return False
        low = self._aru_low = min(acks.values())  # the last one at the old low moved: once a wave
        self._aru_at_low = sum(1 for v in acks.values() if v == low)
        return True

    def _raise_stable(self, member: str, value: int) -> None:
        """Set ``ack_stable[member]`` to the higher ``value``."""
        acks = self.ack_stable
        old = acks[member]
        acks[member] = value
        if value > self._top_stable:
            self._top_stable = value
        if old == self._stable_low:
            self._stable_at_low -= 1
            if not self._stable_at_low:
                low = self._stable_low = min(acks.values())
                self._stable_at_low = sum(1 for v in acks.values() if v == low)

    def _advance_ord_known(self) -> None:
        known = self.ord_known
        order = self.order
        me = self.me
        own = self.recv[me]
        early_ok = self.early_ok
        while known + 1 in order:
            known += 1
            sender, seq = order[known]
            if sender == me:
                self.own_known_seq = seq
                msg = own.get(seq)
                # The others deliver it only after this ack (rule 2), unless it is early.
                if msg is None or not msg.early or not early_ok:
                    self.status_urgent = True
                    self.ord_ack_due = True
        if known != self.ord_known:
            self.ord_known = known
            self.ack_ord[self.me] = known
            self.status_dirty = True
            if known > self.ordered_hint:
                self.ordered_hint = known
            self._advance_aru()

    def _advance_aru(self) -> None:
        aru = self.aru
        order = self.order
        recv = self.recv
        safe_pending = self.safe_pending
        while aru < self.ord_known:
            sender, seq = order[aru + 1]
            msg = recv[sender].get(seq)
            if msg is None:
                break
            aru += 1
            if msg.service & SERVICE_BITS == SAFE and self._track_safe:
                safe_pending.append(aru)
            elif self.early_ok and is_group_op(msg.kind):
                self.status_urgent = True  # the others' hold of this group operation waits for it
        if aru != self.aru:
            self.aru = aru
            self._acknowledge()

    def _acknowledge(self) -> None:
        """Raise our own receipt ack to ``aru`` (to what we delivered while held)."""
        me = self.me
        acked = min(self.aru, self.delivered) if self.held else self.aru
        if acked <= self.ack_aru[me]:
            return
        self._raise_aru(me, acked)
        self.status_dirty = True
        if acked - self.reported_aru >= URGENT_ARU_LEAD:
            self.status_urgent = True
        stable = self.stable()
        if stable > self.ack_stable[me]:
            self._raise_stable(me, stable)

    def hold(self, held: bool) -> None:
        """Start or end holding back receipt acks (``held``); ending one reports at once."""
        if held == self.held:
            return
        self.held = held
        if not held:
            self.status_urgent = True  # the senders wait for exactly this ack
            self._acknowledge()

    # --------------------------------------------------------------- sequencer
    def sequence(self) -> Ordered | None:
        """Order every newly contiguous run of every sender, in one frame (batching)."""
        if not self.dirty_senders:
            return None
        ranges: list[OrderRange] = []
        total = 0
        for sender in sorted(self.dirty_senders):  # sorted: deterministic across processes
            done = self.seq_done[sender]
            top = self.contig[sender]
            if top > done:
                ranges.append((sender, done + 1, top - done))
                total += top - done
                self.seq_done[sender] = top
        self.dirty_senders.clear()
        if not ranges:
            return None
        frame = Ordered(view=self.view, first_gseq=self.next_gseq, ranges=tuple(ranges))
        self.next_gseq += total
        self.on_ordered(frame)
        return frame

    # ---------------------------------------------------------------- delivery
    def stable(self) -> int:
        """Highest gseq every member holds: from the members' receipt acks, or, at a member of
        a star view (which hears few of them), from the coordinator's ``stable``."""
        low = self._aru_low
        if self.star_member:
            relayed = self.ack_stable[self.coord]
            return relayed if relayed > low else low
        return low

    def safe_report_due(self) -> bool:
        """Whether our next ``Status`` would newly cover a SAFE message: our aru reaching it
        (the others' ``stable()`` waits for that) or our stable reaching it (their
        ``safe_point()`` does). Only such reports are urgent for SAFE: sending every advance at
        once while a SAFE message waited cost each member a ``Status`` to every member per
        frame it received, N^2 frames per SAFE message and member (ordering.md section 4)."""
        unpublished = self.safe_unpublished
        if unpublished and unpublished[0] <= self.safe_point():
            return True  # star coordinator: the members deliver on our ``safe``
        pending = self.safe_pending
        if not pending:
            return False
        me = self.me
        if pending[0] <= self.ack_stable[me]:
            return True
        acked = self.ack_aru[me]
        reported = self.reported_aru
        if acked <= reported:
            return False
        for g in reversed(pending):  # newest first: only held acks (acked < aru) look further
            if g <= acked:
                return g > reported
        return False

    def safe_point(self) -> int:
        """Highest gseq every member knows to be stable (Totem's two-rotation rule); at a
        member of a star view, also what the coordinator published as such."""
        low = self._stable_low
        if self.star_member and self.coord_safe > low:
            return self.coord_safe
        return low

    def _advance_acked(self) -> None:
        """Coordinator of a star view: raise ``acked`` over the order whose senders have all
        acknowledged it (rule 2). The members' own ack of rule 2 goes to every member at once;
        this relay repeats it with every heartbeat, so a lost one does not hold up delivery
        (a member's other Status frames reach only us)."""
        g = self.acked if self.acked > self.gc_upto else self.gc_upto  # freed: delivered here
        order = self.order
        ack_ord = self.ack_ord
        while g < self.ord_known and ack_ord[order[g + 1][0]] > g:
            g += 1
        self.acked = g

    def deliverable(self) -> Iterator[tuple[int, str, int, Msg]]:
        """Yield (n, sender, seq, msg) in delivery order while the regular-view rules allow:
        ``n`` is the gseq, or 0 for a message delivered early (it has no ordinal there,
        protocol/retention.md section 1)."""
        early_ok = self.early_ok
        while True:
            if early_ok:
                yield from self._early()
            before = self.delivered
            for item in self._ordered():
                yield item
                if early_ok and 0 <= self._early_wake <= self.delivered:
                    break  # an early message's anchor is delivered now: it goes first
            if self.delivered == before or not early_ok:
                return

    def _early(self) -> Iterator[tuple[int, str, int, Msg]]:
        """Early messages whose anchor is delivered, each sender's in seq order (section 8.1)."""
        recv = self.recv
        delivered_seq = self.delivered_seq
        wake = -1
        for sender in self.members:
            store = recv[sender]
            seq = delivered_seq[sender] + 1
            msg = store.get(seq)
            while msg is not None and msg.early:
                if msg.early > self.delivered + 1:  # its anchor, early - 1, is not delivered yet
                    if wake < 0 or msg.early - 1 < wake:
                        wake = msg.early - 1
                    break
                delivered_seq[sender] = seq
                yield 0, sender, seq, msg
                seq += 1
                msg = store.get(seq)
        self._early_wake = wake

    def _ordered(self) -> Iterator[tuple[int, str, int, Msg]]:
        """The total order from ``delivered + 1`` while rules 1-3 of section 8 allow."""
        order = self.order
        recv = self.recv
        ack_ord = self.ack_ord
        acked = self.coord_acked  # the star coordinator's relay of rule 2 (0 otherwise)
        early_ok = self.early_ok
        delivered_seq = self.delivered_seq
        stable = -1
        g = self.delivered
        while g < self.ord_known:
            sender, seq = order[g + 1]
            if seq <= delivered_seq[sender]:  # delivered early
                g += 1
                self.delivered = g
                continue
            msg = recv[sender].get(seq)
            if msg is None:
                return
            if early_ok and msg.early:
                # At its place: its anchor lies before it (a correct sender's always does).
                g += 1
                self.delivered = g
                delivered_seq[sender] = seq
                yield 0, sender, seq, msg
                continue
            if ack_ord[sender] <= g and acked <= g:
                return
            if msg.service & SERVICE_BITS == SAFE:
                if stable < 0:
                    stable = self.safe_point()
                if stable <= g:  # our part of SAFE's path: safe_report_due
                    return
            elif early_ok and is_group_op(msg.kind) and self._op_held(g + 1):
                return
            g += 1
            self.delivered = g
            delivered_seq[sender] = seq
            yield g, sender, seq, msg

    def _op_held(self, j: int) -> bool:
        """Whether the group operation at gseq ``j`` must wait: some member may still have an
        early message anchored before ``j`` that we have not delivered (section 8.1). Every
        member's messages sent before it knew ``j`` are those up to the ``sent_seq`` of its
        first Status with ``ord_known >= j``; sent later, they are anchored at ``j`` or after."""
        delivered_seq = self.delivered_seq
        for member in self.members:
            if member == self.me:
                bound = self.next_seq - 1
            elif self.ack_ord[member] < j:
                return True
            else:
                bound = self.seen_seq[member]  # when no report is left for j: more, still safe
                for known, sent in self.reports[member]:
                    if known >= j:
                        bound = sent
                        break
            seq = delivered_seq[member] + 1
            if seq <= bound:
                # The first undelivered one is all that needs a look: anchors never decrease
                # along a sender's messages, and one waiting for the total order has its gseq
                # at or after j (all before j are delivered), so later early ones are anchored
                # at or after it.
                msg = self.recv[member].get(seq)
                if msg is None or 0 < msg.early <= j:
                    return True
        return False

    def peek(self) -> Msg | None:
        """The message ``deliverable`` looks at next, if it is here (whether it may be delivered
        yet is not checked)."""
        key = self.order.get(self.delivered + 1)
        return None if key is None else self.recv[key[0]].get(key[1])

    def collect_garbage(self) -> None:
        """Free what every member holds and we delivered; account our own stable messages.

        "Every member holds it" may come from any member's report of ``stable``: a receiver that
        cannot hear one member's acks must not keep everything until that member is suspected."""
        limit = min(max(self.stable(), self._top_stable), self.delivered)
        if self.gc_upto >= limit:
            return
        order = self.order
        recv = self.recv
        me = self.me
        for g in range(self.gc_upto + 1, limit + 1):
            sender, seq = order.pop(g)
            msg = recv[sender].pop(seq, None)
            if msg is None:
                continue  # a message a faulty coordinator ordered twice: freed at its first gseq
            if sender == me:
                self.own_unstable_bytes -= len(msg.payload)
                self.own_stable += 1
        self.gc_upto = limit

    # ------------------------------------------------------------------ repair
    def missing(self) -> Nak | None:
        """What we lack: data runs per sender and ordering gseqs (NAK-based repair).

        Called once per tick. A gap is asked for only once it was already known at the previous
        call: what a Status or an Ordered frame reveals may still be on its way by another path
        (over epgm the Status travels over TCP, the data over PGM, and the Status routinely
        arrives first), and asking at once would repeat the whole burst over TCP."""
        data: list[tuple[str, int, int]] = []
        behind = self._behind
        # Only senders whose seen_seq rose since they were last caught up can have a gap. A
        # sender skipped here keeps an old nak_seen, at most its contig: a gap that opens
        # later is then asked for one call after it is seen, as any other.
        for sender in sorted(behind) if behind else ():
            top = min(self.seen_seq[sender], self.nak_seen[sender])
            self.nak_seen[sender] = self.seen_seq[sender]
            low = self.contig[sender]
            if self.seen_seq[sender] <= low or sender == self.me:
                behind.discard(sender)  # caught up
                continue
            if top > low:
                store = self.recv[sender]
                first = low + 1
                while first <= top and first in store:
                    first += 1
                last = first
                limit = min(top, first + MAX_NAK_RUN)
                while last + 1 <= limit and last + 1 not in store:
                    last += 1
                data.append((sender, first, last))
        order_from = self.ord_known + 1
        order_to = min(self.ordered_hint, self.nak_hint)
        self.nak_hint = self.ordered_hint
        if not data and order_to < order_from:
            return None
        return Nak(
            view=self.view,
            sender=self.me,
            data=tuple(data),
            order_from=order_from,
            order_to=order_to,
        )

    def repair(
        self, nak: Nak, max_msgs: int = 2048, max_bytes: int = 1 << 20
    ) -> list[Data | Ordered]:
        """Answer a NAK with whatever we still hold, bounded so every frame stays encodable
        (the rest is asked for again at the next tick)."""
        out: list[Data | Ordered] = []
        budget = max_msgs
        room = max_bytes
        for sender, first, last in nak.data:
            # Only our own data (AUTH-1): a link refuses frames a daemon does not speak for.
            store = self.recv.get(sender) if sender == self.me else None
            if store is None or budget <= 0 or room <= 0:
                continue
            run: list[Msg] = []
            run_first = first
            for seq in range(first, min(last, first + budget - 1) + 1):
                msg = store.get(seq)
                if msg is None or room <= 0:
                    if run:
                        out.append(self._data(sender, run_first, run))
                    run, run_first = [], seq + 1
                    if room <= 0:
                        break
                    continue
                run.append(msg)
                room -= len(msg.payload) + 64
            if run:
                out.append(self._data(sender, run_first, run))
            budget -= last - first + 1
        if nak.order_to >= nak.order_from and self.is_sequencer:
            out.extend(self._ordered_runs(nak.order_from, min(nak.order_to, nak.order_from + 8191)))
        return out

    def _data(self, sender: str, first: int, msgs: list[Msg]) -> Data:
        return Data(view=self.view, sender=sender, first_seq=first, msgs=tuple(msgs))

    def _ordered_runs(self, low: int, high: int) -> list[Ordered]:
        out: list[Ordered] = []
        start = None
        ranges: list[OrderRange] = []
        for g in range(low, high + 1):
            entry = self.order.get(g)
            if entry is None:
                if ranges and start is not None:
                    out.append(Ordered(view=self.view, first_gseq=start, ranges=tuple(ranges)))
                start, ranges = None, []
                continue
            if start is None:
                start = g
            sender, seq = entry
            if ranges and ranges[-1][0] == sender and ranges[-1][1] + ranges[-1][2] == seq:
                last = ranges[-1]
                ranges[-1] = (sender, last[1], last[2] + 1)
            else:
                ranges.append((sender, seq, 1))
        if ranges and start is not None:
            out.append(Ordered(view=self.view, first_gseq=start, ranges=tuple(ranges)))
        return out

    # ------------------------------------------------------------------ status
    def status(self, max_epoch: int, proposal: ViewId | None) -> Status:
        self.status_dirty = False
        self.status_urgent = False
        self.ord_ack_due = False
        self.reported_aru = self.ack_aru[self.me]
        self.reported_stable = stable = self.ack_stable[self.me]
        pending = self.safe_pending
        relay = self.star and self.is_sequencer
        while pending and pending[0] <= stable:
            g = pending.popleft()
            if relay:
                self.safe_unpublished.append(g)
        acked = safe = 0
        if relay:
            self._advance_acked()
            acked = self.acked
            safe = self.safe_point()
            unpublished = self.safe_unpublished
            while unpublished and unpublished[0] <= safe:
                unpublished.popleft()
        return Status(
            view=self.view,
            sender=self.me,
            max_epoch=max_epoch,
            proposal=proposal,
            sent_seq=self.next_seq - 1,
            ordered_upto=self.next_gseq - 1 if self.is_sequencer else 0,
            ord_known=self.ord_known,
            aru=self.ack_aru[self.me],
            stable=self.ack_stable[self.me],
            acked=acked,
            safe=safe,
        )

    # ------------------------------------------------------------- view change
    def order_report(self) -> tuple[GlobalRange, ...]:
        """Our contiguous ordering knowledge above what we already freed, as runs."""
        runs: list[GlobalRange] = []
        for g in range(self.gc_upto + 1, self.ord_known + 1):
            sender, seq = self.order[g]
            if runs:
                first_g, s, first_seq, count = runs[-1]
                if s == sender and first_seq + count == seq and first_g + count == g:
                    runs[-1] = (first_g, s, first_seq, count + 1)
                    continue
            runs.append((g, sender, seq, 1))
        return tuple(runs)

    def ack_report(self) -> tuple[tuple[str, int], ...]:
        """Every member's ordering ack as we know it, for the Flush: ``ack_ord``, raised to our
        ``stable``. Every member's ``aru`` reached our ``stable``, and a daemon's ``ord_known``
        is at least its ``aru``, so that is known too. All-to-all it adds nothing (we learned
        ``stable`` from those very reports); at a member of a star view, which learns
        ``stable`` from the coordinator, it is the knowledge that a SAFE delivery elsewhere
        relies on: without it, swarm seed 119 (``--star``) placed a SAFE message that the
        coordinator had delivered in the tail of a member's cleanup, after messages of other
        senders whose acks that member had never heard (EVS-7.1; membership.md section 9)."""
        floor = self.ack_stable[self.me]
        return tuple(sorted((m, a if a > floor else floor) for m, a in self.ack_ord.items()))

    def delivered_report(self) -> tuple[tuple[str, int], ...]:
        """For the Flush: the highest seq of each sender we delivered (early deliveries make
        that more than the prefix ``delivered``); nothing in a star view, which has none."""
        if not self.early_ok:
            return ()
        return tuple(sorted((s, n) for s, n in self.delivered_seq.items() if n))

    def retained(self) -> tuple[tuple[str, int, Msg], ...]:
        out: list[tuple[str, int, Msg]] = []
        for sender in self.members:
            store = self.recv[sender]
            out.extend((sender, seq, store[seq]) for seq in sorted(store))
        return tuple(out)
