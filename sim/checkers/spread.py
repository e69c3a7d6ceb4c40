"""Spread client-interface properties (SP-*), checked per connection over cdeliver and gview.

A connection's group membership is what its own group views say: a regular view listing it makes
it a member, a self_leave view ends the membership, a transitional view changes nothing. Group
names never start with ``#``; names that do are private names of connections (SP-PRIV).
"""

from __future__ import annotations

import bisect

from sim.checkers.base import Violation, fmt, fmt_seq
from sim.trace import RELIABLE, CDeliver, Deliver, GView, Send, Trace, is_private

MAX_GROUPS = 100  # SP-MULTI: at most 100 destination groups per message


class Membership:
    """The groups one connection belongs to, replayed from its own group views."""

    def __init__(self, p: str) -> None:
        self.p = p
        self.groups: set[str] = set()

    def apply(self, gv: GView) -> None:
        if gv.kind == "regular":
            if self.p in gv.members:
                self.groups.add(gv.group)
            else:
                self.groups.discard(gv.group)
        elif gv.kind == "self_leave":
            self.groups.discard(gv.group)

    def entitled(self, groups: tuple[str, ...]) -> bool:
        """May this connection receive a message sent to ``groups`` now?"""
        return any(g == self.p or g in self.groups for g in groups)


def dest_groups(trace: Trace, ce: CDeliver) -> tuple[str, ...]:
    """Destination groups of a delivered message: as sent, else as the delivery says."""
    s = trace.sends.get(ce.mid)
    return s.groups if s is not None else ce.groups


def _local_dests(
    trace: Trace, e: Deliver, s: Send, local: dict[str, dict[str, set[str]]]
) -> set[str]:
    """Connections on ``e.d`` that are members of a destination (or named by it) right now."""
    here = local.get(e.d, {})
    need: set[str] = set()
    for g in s.groups:
        need.update(here.get(g, ()))
        opened = trace.opens.get(g)
        if opened is not None and opened.d == e.d and opened.idx < e.idx:
            need.add(g)
    if s.self_discard:
        need.discard(s.p)
    return need


def _members_receive(trace: Trace) -> list[Violation]:
    """Complete traces only: when a daemon delivers an svc >= RELIABLE message, every local
    connection that is then a member of a destination group (or is the named private
    connection) receives it, unless it closes or its daemon crashes at some point."""
    if trace.end is None:
        return []
    gone = set(trace.closes) | {p for p, o in trace.opens.items() if o.d in trace.crashes}
    local: dict[str, dict[str, set[str]]] = {}  # daemon -> group -> member connections
    out: list[Violation] = []
    for e in trace.events:
        if isinstance(e, GView):
            members = local.setdefault(e.d, {}).setdefault(e.group, set())
            if e.kind == "regular" and e.p in e.members:
                members.add(e.p)
            elif e.kind != "transitional":
                members.discard(e.p)
        elif isinstance(e, Deliver):
            s = trace.sends.get(e.mid)
            if s is None or trace.svc_rank(e.mid) < RELIABLE:
                continue
            got = {ce.p for ce in trace.cdelivers_of.get(e.mid, ())}
            missed = _local_dests(trace, e, s, local) - gone - got
            if missed:
                msg = (
                    f"{fmt(missed)} never received {e.mid} (to {fmt(s.groups)}), delivered by {e.d}"
                )
                out.append(Violation("SP-OPEN", msg, e.t))
    return out


def check_sp_open(trace: Trace) -> list[Violation]:
    """SP-OPEN: a connection receives a message only while it is a member of one of its groups
    (per its own views) or the message names it privately; so a non-member sender gets nothing.
    Members receive it: see _members_receive."""
    out = _members_receive(trace)
    for p, evs in trace.conn_events.items():
        member = Membership(p)
        for e in evs:
            if isinstance(e, GView):
                member.apply(e)
            elif isinstance(e, CDeliver):
                groups = dest_groups(trace, e)
                if not member.entitled(groups):
                    msg = (
                        f"connection {p} received {e.mid} (to {fmt(groups)}, from {e.sender}) "
                        f"while a member of none of them (member of {fmt(member.groups)})"
                    )
                    out.append(Violation("SP-OPEN", msg, e.t))
    return out


def check_sp_multi(trace: Trace) -> list[Violation]:
    """SP-MULTI: a message reaches a connection at most once, with the sent ``groups`` list, and
    names at most 100 groups."""
    out = [
        Violation("SP-MULTI", f"{s.p} multicast {s.mid} to {len(s.groups)} groups (> 100)", s.t)
        for s in trace.sends.values()
        if len(s.groups) > MAX_GROUPS
    ]
    for p, cdels in trace.cdelivers.items():
        seen: set[str] = set()
        for ce in cdels:
            if ce.mid in seen:
                out.append(Violation("SP-MULTI", f"{p} received {ce.mid} more than once", ce.t))
            seen.add(ce.mid)
            s = trace.sends.get(ce.mid)
            if s is not None and ce.groups != s.groups:
                msg = (
                    f"{p} received {ce.mid} with groups {fmt_seq(ce.groups)}, "
                    f"sent to {fmt_seq(s.groups)}"
                )
                out.append(Violation("SP-MULTI", msg, ce.t))
    return out


def check_sp_priv(trace: Trace) -> list[Violation]:
    """SP-PRIV: a message sent only to private names reaches only those connections; no group
    view is ever delivered for a private name (joining one must be rejected)."""
    out: list[Violation] = []
    for p, gvs in trace.gviews.items():
        for gv in gvs:
            if is_private(gv.group):
                msg = f"{p} got a {gv.kind} group view for private name {gv.group}"
                out.append(Violation("SP-PRIV", msg, gv.t))
    for mid, cdels in trace.cdelivers_of.items():
        s = trace.sends.get(mid)
        if s is None or not s.groups or not all(is_private(g) for g in s.groups):
            continue
        for ce in cdels:
            if ce.p not in s.groups:
                msg = f"{ce.p} received {mid}, sent privately to {fmt(s.groups)}"
                out.append(Violation("SP-PRIV", msg, ce.t))
    return out


def check_sp_view_order(trace: Trace) -> list[Violation]:
    """SP-VIEW-ORDER: regular views with the same group and gid list identical members (same
    order) at every connection, and the receiving connection is in the list."""
    out: list[Violation] = []
    ref: dict[tuple[str, str], GView] = {}
    for p, gvs in trace.gviews.items():
        for gv in gvs:
            if gv.kind != "regular":
                continue
            if p not in gv.members:
                msg = f"{p} got view {gv.gid} of {gv.group} without itself: {fmt_seq(gv.members)}"
                out.append(Violation("SP-VIEW-ORDER", msg, gv.t))
            first = ref.setdefault((gv.group, gv.gid), gv)
            if first.members != gv.members:
                msg = (
                    f"view {gv.gid} of {gv.group}: {p} got {fmt_seq(gv.members)} "
                    f"but {first.p} got {fmt_seq(first.members)}"
                )
                out.append(Violation("SP-VIEW-ORDER", msg, gv.t))
    return out


def _rejoins(p: str, gv: GView) -> bool:
    """A regular view that starts a new membership of ``p``: a JOIN view naming it as the
    joiner, or a NETWORK view listing it (its join was delivered in a transitional
    configuration, where no regular view is emitted)."""
    if gv.kind != "regular" or p not in gv.members:
        return False
    return gv.cause == "NETWORK" or (gv.cause == "JOIN" and p in gv.changed)


def in_transitional(trace: Trace, d: str, idx: int) -> bool:
    """Had daemon ``d`` a transitional configuration installed at trace position ``idx``?"""
    insts = trace.installs.get(d, [])
    pos = bisect.bisect_left([i.idx for i in insts], idx) - 1
    return pos >= 0 and not insts[pos].regular


def check_sp_self_leave(trace: Trace) -> list[Violation]:
    """SP-SELF-LEAVE: after its self_leave view for g a connection gets no view of g and no
    message for g (unless another of the message's groups entitles it), until a regular JOIN
    view that lists it as the joiner, or a NETWORK view that lists it, starts a new membership.
    A join and a leave both delivered in a transitional configuration show only as a second
    self_leave (protocol/membership.md section 12)."""
    out: list[Violation] = []
    for p, evs in trace.conn_events.items():
        member = Membership(p)
        left: set[str] = set()
        for e in evs:
            if isinstance(e, GView):
                # A second self_leave without a view between: a join and a leave that both
                # fell into a transitional configuration (no regular view is emitted there).
                silent = e.kind == "self_leave" and in_transitional(trace, e.d, e.idx)
                if e.group in left and not _rejoins(p, e) and not silent:
                    msg = f"{p} got a {e.kind} view of {e.group} after leaving it"
                    out.append(Violation("SP-SELF-LEAVE", msg, e.t))
                if e.kind == "self_leave":
                    left.add(e.group)
                elif _rejoins(p, e):
                    left.discard(e.group)
                member.apply(e)
            elif isinstance(e, CDeliver):
                groups = dest_groups(trace, e)
                gone = left.intersection(groups)
                if gone and not member.entitled(groups):
                    msg = f"{p} received {e.mid} for {fmt(gone)} after leaving"
                    out.append(Violation("SP-SELF-LEAVE", msg, e.t))
    return out
