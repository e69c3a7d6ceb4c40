"""Service-level properties: SVC-FIFO (per connection, across groups) and SVC-REL (reliable
delivery in the final, stable configuration).

SVC-UNREL asserts nothing beyond EVS-1.1/1.2 and has no checker of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from sim.checkers.base import Violation, fmt
from sim.checkers.liveness import final_configuration
from sim.checkers.spread import Membership
from sim.trace import FIFO, RELIABLE, GView, Send, Trace


def _fifo_positions(trace: Trace) -> dict[str, tuple[str, int]]:
    """mid -> (sending connection, position among its svc >= FIFO sends)."""
    counters: dict[str, int] = {}
    out: dict[str, tuple[str, int]] = {}
    for s in trace.sends.values():  # insertion order is send order
        if trace.svc_rank(s.mid) >= FIFO:
            k = counters.get(s.p, 0)
            out[s.mid] = (s.p, k)
            counters[s.p] = k + 1
    return out


def _fifo_receiver(
    who: str, deliveries: Iterable[tuple[str, int]], pos: dict[str, tuple[str, int]]
) -> list[Violation]:
    last: dict[str, tuple[int, str]] = {}
    seen: set[str] = set()
    out: list[Violation] = []
    for mid, t in deliveries:
        where = pos.get(mid)
        if where is None or mid in seen:
            continue
        seen.add(mid)
        sender, k = where
        prev = last.get(sender)
        if prev is not None and k < prev[0]:
            msg = f"{who} delivered {mid} after {prev[1]}, but {sender} sent {mid} first"
            out.append(Violation("SVC-FIFO", msg, t))
        else:
            last[sender] = (k, mid)
    return out


def check_svc_fifo(trace: Trace) -> list[Violation]:
    """SVC-FIFO: for m1 sent before m2 by the same connection (both svc >= FIFO, any groups),
    every daemon and every connection that delivers both delivers m1 first."""
    pos = _fifo_positions(trace)
    out: list[Violation] = []
    for d, dels in trace.delivers.items():
        out.extend(_fifo_receiver(f"daemon {d}", ((e.mid, e.t) for e in dels), pos))
    for p, cdels in trace.cdelivers.items():
        out.extend(_fifo_receiver(f"connection {p}", ((e.mid, e.t) for e in cdels), pos))
    return out


def _members_for_good(trace: Trace, live: set[str]) -> dict[str, dict[str, int]]:
    """destination (group or private name) -> connection -> idx since which it is a member and
    stays one (and open, on a live daemon) until the end."""
    out: dict[str, dict[str, int]] = {}
    for p, opened in trace.opens.items():
        if p in trace.closes or opened.d not in live or opened.d in trace.crashes:
            continue
        member = Membership(p)
        since: dict[str, int] = {p: opened.idx}
        for e in trace.conn_events[p]:
            if not isinstance(e, GView):
                continue
            was = e.group in member.groups
            member.apply(e)
            if e.group not in member.groups:
                since.pop(e.group, None)
            elif not was:
                since[e.group] = e.idx
        for g, idx in since.items():
            out.setdefault(g, {})[p] = idx
    return out


def _required(s: Send, members: dict[str, dict[str, int]]) -> set[str]:
    need: set[str] = set()
    for g in s.groups:
        need.update(q for q, since in members.get(g, {}).items() if since < s.idx)
    if s.self_discard:
        need.discard(s.p)
    return need


def check_svc_rel(trace: Trace) -> list[Violation]:
    """SVC-REL: every svc >= RELIABLE message sent after ``stable`` in the final configuration
    is delivered by every live daemon and received by every connection that was a member of a
    destination group (or is the named private connection) from before the send until the end."""
    final = final_configuration(trace)
    if final is None or trace.stable is None or trace.end is None:
        return []
    live = set(trace.end.live)
    members = _members_for_good(trace, live)
    out: list[Violation] = []
    for s in trace.sends.values():
        if s.conf != final or s.idx < trace.stable.idx or trace.svc_rank(s.mid) < RELIABLE:
            continue
        lost_d = live - {e.d for e in trace.delivers_of.get(s.mid, ())}
        lost_p = _required(s, members) - {e.p for e in trace.cdelivers_of.get(s.mid, ())}
        if lost_d:
            msg = f"{s.svc} {s.mid} from {s.p} never delivered by live daemon(s) {fmt(lost_d)}"
            out.append(Violation("SVC-REL", msg, trace.end.t))
        if lost_p:
            msg = f"{s.svc} {s.mid} from {s.p} to {fmt(s.groups)} never reached {fmt(lost_p)}"
            out.append(Violation("SVC-REL", msg, trace.end.t))
    return out
