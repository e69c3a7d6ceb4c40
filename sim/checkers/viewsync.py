"""Messages between group views, at the client level: GV-VS (virtual synchrony) and GV-SAFE.

These are the connection-level counterparts of EVS-4 and EVS-7.1/7.2: a group view plays the
part of a configuration. A connection's *segment* of group g is the stretch between two
consecutive regular views of g it receives (no self_leave between); the messages it receives
there that are addressed to g are the segment's messages. View names: :mod:`groupviews`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

from sim.checkers.base import Violation, fmt
from sim.checkers.groupviews import split_trans
from sim.checkers.spread import dest_groups
from sim.trace import CDeliver, GView, Trace


@dataclass(slots=True)
class _Segment:
    start: str  # gid of the regular view that opened it
    mids: set[str] = field(default_factory=set)
    before: frozenset[str] | None = None  # mids received before its transitional view, if any
    t: int = 0  # when the next regular view closed it


SegKey = tuple[str, str, str, frozenset[str] | None]  # group, G1, G2, own vs_set in G2


def _mates(gv: GView) -> frozenset[str] | None:
    """Who moves with the receiver into regular view ``gv``: its own vs_set for a NETWORK view,
    everyone (None) for JOIN/LEAVE/DISCONNECT."""
    if gv.cause != "NETWORK":
        return None
    return next((frozenset(vs) for vs in gv.vs_sets if gv.p in vs), frozenset())


def _on_view(gv: GView, open_: dict[str, _Segment], out: dict[SegKey, dict[str, _Segment]]) -> None:
    seg = open_.get(gv.group)
    if gv.kind == "self_leave":
        open_.pop(gv.group, None)
    elif gv.kind == "transitional":
        if seg is not None and seg.before is None:
            seg.before = frozenset(seg.mids)
    else:
        if seg is not None:
            seg.t = gv.t
            out.setdefault((gv.group, seg.start, gv.gid, _mates(gv)), {})[gv.p] = seg
        open_[gv.group] = _Segment(gv.gid)


def segments(trace: Trace) -> dict[SegKey, dict[str, _Segment]]:
    """Closed segments, keyed by (group, G1, G2, own vs_set in G2) -> connection -> segment."""
    out: dict[SegKey, dict[str, _Segment]] = {}
    for evs in trace.conn_events.values():
        open_: dict[str, _Segment] = {}
        for e in evs:
            if isinstance(e, GView):
                _on_view(e, open_, out)
            elif isinstance(e, CDeliver) and open_:
                for g in dest_groups(trace, e):
                    seg = open_.get(g)
                    if seg is not None:
                        seg.mids.add(e.mid)
    return out


def _discarded(trace: Trace, mid: str, p: str) -> bool:
    s = trace.sends.get(mid)
    return s is not None and s.self_discard and s.p == p


def _set_issues(trace: Trace, key: SegKey, segs: dict[str, _Segment]) -> Iterator[Violation]:
    group, g1, g2, _ = key
    union: set[str] = set().union(*(s.mids for s in segs.values()))
    for p in sorted(segs):
        seg = segs[p]
        missing = {m for m in union - seg.mids if not _discarded(trace, m, p)}
        if missing:
            others = fmt(q for q, o in segs.items() if missing & o.mids)
            msg = (
                f"{p} and {others} went from view {g1} to {g2} of {group} together, but {p} "
                f"did not receive {fmt(missing)} (to {group}) there"
            )
            yield Violation("GV-VS", msg, max(s.t for s in segs.values()))


def _order_issues(key: SegKey, segs: dict[str, _Segment]) -> Iterator[Violation]:
    group, g1, g2, _ = key
    before: dict[str, set[str]] = {}
    after: dict[str, set[str]] = {}
    for p, seg in segs.items():
        if seg.before is None:
            continue
        for m in seg.mids:
            (before if m in seg.before else after).setdefault(m, set()).add(p)
    for m in sorted(before.keys() & after.keys()):
        msg = (
            f"{m} (to {group}) came before the transitional view of {group} at "
            f"{fmt(before[m])} but after it at {fmt(after[m])} (views {g1} -> {g2})"
        )
        yield Violation("GV-VS", msg, max(segs[p].t for p in before[m] | after[m]))


def check_gv_vs(trace: Trace) -> list[Violation]:
    """GV-VS: connections whose consecutive regular views of g are the same G1 -> G2 (sharing a
    vs_set if G2 is a NETWORK view) received the same messages addressed to g between the two
    (but a SELF_DISCARD sender its own), and, where both got a transitional view of g in
    between, each such message on the same side of it."""
    out: list[Violation] = []
    for key, segs in segments(trace).items():
        if len(segs) > 1:
            out.extend(_set_issues(trace, key, segs))
            out.extend(_order_issues(key, segs))
    return out


# ----------------------------------------------------------------------------------- GV-SAFE


class _Views:
    """Per connection: when it got each view (by group and gid) and its self_leaves."""

    def __init__(self, trace: Trace) -> None:
        self.got: dict[tuple[str, str, str], int] = {}
        self.left: dict[tuple[str, str], list[int]] = {}
        for p, gvs in trace.gviews.items():
            for gv in gvs:
                if gv.kind == "self_leave":
                    self.left.setdefault((p, gv.group), []).append(gv.idx)
                else:
                    self.got.setdefault((p, gv.group, gv.gid), gv.idx)

    def left_between(self, p: str, group: str, start: int, stop: int) -> bool:
        """Did ``p`` get a self_leave for ``group`` between trace positions start and stop?"""
        lefts = self.left.get((p, group), [])
        i = bisect.bisect_right(lefts, start)
        return i < len(lefts) and lefts[i] < stop


def _due(trace: Trace, d: str, mid: str, conf: str) -> int | None:
    """Trace position by which daemon ``d`` has delivered ``mid`` to its connections: its own
    delivery, else its next regular install after ``conf``, else ``end`` if it stays in ``conf``
    to the end. None when that is not yet known (the trace stops first) or ``d`` fails in
    ``conf`` without delivering it."""
    dels = [e for e in trace.delivers_of.get(mid, ()) if e.d == d]
    if dels:
        cur = trace.current_install(dels[0])
        moved_on = cur is not None and trace.next_install(d, cur.conf) is not None
        complete = trace.end is not None and d not in trace.crashes
        return dels[0].idx if moved_on or complete else None
    if d in trace.crashes or trace.install_pos(d, conf) is None:
        return None
    nxt = trace.next_regular(d, conf)
    if nxt is not None:
        return nxt.idx
    end = trace.end
    stays = end is not None and d in end.live and trace.installs[d][-1].conf == conf
    return end.idx if stays and end is not None else None


def _exempt(trace: Trace, views: _Views, q: str, gv: GView, ref: str, conf: str, mid: str) -> bool:
    """q need not receive ``mid``: it never got the reference view ``ref`` (that is GV-VIEWS'
    business), its daemon fails in ``conf`` without delivering it, or q closes or leaves the
    group after ``ref`` and before its daemon delivers it (or must have)."""
    got = views.got.get((q, gv.group, ref))
    opened = trace.opens.get(q)
    if got is None or opened is None:
        return True
    due = _due(trace, opened.d, mid, conf)
    if due is None:
        return True
    closed = trace.closes.get(q)
    return (closed is not None and closed.idx < due) or views.left_between(q, gv.group, got, due)


def _delivered_in(trace: Trace, ce: CDeliver) -> str | None:
    """The configuration in which the receiver's daemon delivered ``ce.mid``."""
    return next((e.conf for e in trace.delivers_of.get(ce.mid, ()) if e.d == ce.d), None)


def _need(gv: GView) -> tuple[str, tuple[str, ...]] | None:
    """(reference regular gid, members owed the message) for a message received in ``gv``."""
    if gv.kind == "regular":
        return (gv.gid, gv.members) if gv.p in gv.members else None
    parts = split_trans(gv.gid)
    return (parts[0], gv.members) if parts is not None else None


def _safe_in_view(
    trace: Trace, views: _Views, ce: CDeliver, gv: GView, got: set[str]
) -> Iterator[Violation]:
    need = _need(gv)
    conf = _delivered_in(trace, ce)
    if need is None or conf is None:
        return
    ref, members = need
    s = trace.sends[ce.mid]
    for q in members:
        if q in got or (q == s.p and s.self_discard):
            continue
        if _exempt(trace, views, q, gv, ref, conf, ce.mid):
            continue
        where = "its transitional view" if gv.kind == "transitional" else "view"
        msg = (
            f"{ce.p} received SAFE {ce.mid} (to {gv.group}) in {where} {gv.gid}, but member "
            f"{q}, which did not fail in {conf}, never received it"
        )
        nxt = trace.next_regular(trace.opens[q].d, conf)
        yield Violation("GV-SAFE", msg, nxt.t if nxt is not None else ce.t)


def _received_safe(
    trace: Trace,
    views: _Views,
    ce: CDeliver,
    last: dict[str, GView],
    judged: set[tuple[str, str, str, tuple[str, ...]]],
) -> Iterator[Violation]:
    s = trace.sends.get(ce.mid)
    if s is None or s.svc != "SAFE":
        return
    got: set[str] | None = None
    for g in s.groups:
        gv = last.get(g)
        if gv is None or (key := (ce.mid, g, gv.gid, gv.members)) in judged:
            continue
        judged.add(key)
        if got is None:
            got = {e.p for e in trace.cdelivers_of[ce.mid]}
        yield from _safe_in_view(trace, views, ce, gv, got)


def check_gv_safe(trace: Trace) -> list[Violation]:
    """GV-SAFE: a connection that receives SAFE m addressed to g while its last view of g is
    regular view G1 (no transitional view since) -> every member of G1 receives m; received
    after its transitional view of g -> every member that view lists receives m. Exempt: the
    SELF_DISCARD sender, a member that never got the (previous) regular view, whose daemon fails
    in the configuration in which the receiver's daemon delivered m without delivering it, or
    that closes or leaves g before its daemon delivers m (or must have)."""
    out: list[Violation] = []
    views = _Views(trace)
    judged: set[tuple[str, str, str, tuple[str, ...]]] = set()
    for evs in trace.conn_events.values():
        last: dict[str, GView] = {}  # group -> last view (regular or transitional)
        for e in evs:
            if isinstance(e, CDeliver):
                out.extend(_received_safe(trace, views, e, last, judged))
            elif isinstance(e, GView) and e.kind == "self_leave":
                last.pop(e.group, None)
            elif isinstance(e, GView):
                last[e.group] = e
    return out
