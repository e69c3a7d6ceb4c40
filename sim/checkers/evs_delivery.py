"""EVS delivery properties: integrity (EVS-1.x), self-delivery (EVS-3), failure atomicity (EVS-4).

Configuration-level properties are checked for daemons (install/send/deliver); the client-level
parts (EVS-1.1/1.2 for ``cdeliver``, EVS-3 self-discard) for connections. Ordering lives in
:mod:`sim.checkers.evs_order`, the SAFE guarantees in :mod:`sim.checkers.evs_safe`.
"""

from __future__ import annotations

from sim.checkers.base import Violation, fmt
from sim.trace import RELIABLE, CDeliver, Deliver, Install, Send, Trace


def _integrity(trace: Trace, e: Deliver | CDeliver, who: str) -> str | None:
    s = trace.sends.get(e.mid)
    if s is None:
        return f"{who} delivered {e.mid}, which was never sent"
    if e.t < s.t or (e.t == s.t and e.idx < s.idx and e.d == s.d):
        return f"{who} delivered {e.mid} at t={e.t}, before it was sent at t={s.t}"
    if e.svc != s.svc:
        return f"{who} delivered {e.mid} as {e.svc}, but it was sent as {s.svc}"
    if isinstance(e, CDeliver) and e.sender != s.p:
        return f"{who} delivered {e.mid} from {e.sender}, but {s.p} sent it"
    return None


def check_evs_1_1(trace: Trace) -> list[Violation]:
    """EVS-1.1: every deliver/cdeliver matches exactly one earlier send (same svc and sender),
    and a connection receives a message only after its hosting daemon delivered it."""
    out = [
        Violation("EVS-1.1", f"{s.mid} sent twice (again by {s.p} at daemon {s.d})", s.t)
        for s in trace.duplicate_sends
    ]
    for d, dels in trace.delivers.items():
        for e in dels:
            msg = _integrity(trace, e, f"daemon {d}")
            if msg is not None:
                out.append(Violation("EVS-1.1", msg, e.t))
    for p, cdels in trace.cdelivers.items():
        for ce in cdels:
            msg = _integrity(trace, ce, f"connection {p}") or _backed(trace, ce)
            if msg is not None:
                out.append(Violation("EVS-1.1", msg, ce.t))
    return out


def _backed(trace: Trace, ce: CDeliver) -> str | None:
    """A connection receives only what its hosting daemon delivered (no later than that)."""
    for e in trace.delivers_of.get(ce.mid, ()):
        if e.d == ce.d and e.idx < ce.idx:
            return None
    return (
        f"connection {ce.p} received {ce.mid} before (or without) its daemon {ce.d} delivering it"
    )


def check_evs_1_2(trace: Trace) -> list[Violation]:
    """EVS-1.2: no daemon delivers a message twice; no connection cdelivers one twice."""
    out: list[Violation] = []
    for d, dels in trace.delivers.items():
        seen: set[str] = set()
        for e in dels:
            if e.mid in seen:
                out.append(Violation("EVS-1.2", f"daemon {d} delivered {e.mid} again", e.t))
            seen.add(e.mid)
    for p, cdels in trace.cdelivers.items():
        cseen: set[str] = set()
        for ce in cdels:
            if ce.mid in cseen:
                out.append(Violation("EVS-1.2", f"connection {p} received {ce.mid} again", ce.t))
            cseen.add(ce.mid)
    return out


def _membership_issue(trace: Trace, e: Send | Deliver) -> str | None:
    cur = trace.current_install(e)
    if isinstance(e, Deliver):
        if cur is None or cur.conf != e.conf:
            now = cur.conf if cur is not None else "nothing"
            return f"daemon {e.d} delivered {e.mid} in {e.conf} while {now} was installed"
    else:
        last_regular = _last_regular(trace, e, cur)
        if last_regular != e.conf:
            return f"daemon {e.d} sent {e.mid} in {e.conf}, its last regular is {last_regular}"
    if e.d not in trace.members(e.conf):
        return f"daemon {e.d} is not a member of {e.conf} ({e.mid})"
    return None


def _last_regular(trace: Trace, e: Send, cur: Install | None) -> str | None:
    if cur is None:
        return None
    insts = trace.installs[e.d]
    for pos in range(trace.conf_pos[e.idx], -1, -1):
        if insts[pos].regular:
            return insts[pos].conf
    return None


def check_evs_1_3(trace: Trace) -> list[Violation]:
    """EVS-1.3: a daemon delivers (and sends) only in the configuration it has installed, and is
    a member of it. Sends must name the daemon's latest regular configuration."""
    out: list[Violation] = []
    for evs in trace.daemon_events.values():
        for e in evs:
            if isinstance(e, Send | Deliver):
                msg = _membership_issue(trace, e)
                if msg is not None:
                    out.append(Violation("EVS-1.3", msg, e.t))
    return out


def check_evs_1_4(trace: Trace) -> list[Violation]:
    """EVS-1.4: m sent in regular c is delivered in c or in the transitional t(c) that the
    delivering daemon installed directly after c."""
    out: list[Violation] = []
    for d, dels in trace.delivers.items():
        for e in dels:
            s = trace.sends.get(e.mid)
            if s is None or e.conf == s.conf:
                continue
            t_c = trace.trans_after(d, s.conf)
            if e.conf != t_c:
                where = f"or its t(c) {t_c}" if t_c is not None else "(no t(c) installed)"
                out.append(
                    Violation(
                        "EVS-1.4",
                        f"daemon {d} delivered {e.mid} in {e.conf}; sent in {s.conf} {where}",
                        e.t,
                    )
                )
    return out


def check_evs_3(trace: Trace) -> list[Violation]:
    """EVS-3: the sending daemon delivers its own svc >= RELIABLE message in c or t(c) unless it
    fails in c; with self_discard the sending connection never receives it."""
    out: list[Violation] = []
    for s in trace.sends.values():
        if s.self_discard:
            for ce in trace.cdelivers_of.get(s.mid, ()):
                if ce.p == s.p:
                    msg = f"{s.p} received its own self-discard message {s.mid}"
                    out.append(Violation("EVS-3", msg, ce.t))
        if trace.svc_rank(s.mid) < RELIABLE or not trace.survives(s.d, s.conf):
            continue
        ok = {s.conf, trace.trans_after(s.d, s.conf)}
        if not any(e.d == s.d and e.conf in ok for e in trace.delivers_of.get(s.mid, ())):
            nxt = trace.next_regular(s.d, s.conf)
            t_next = nxt.t if nxt is not None else None
            msg = f"daemon {s.d} sent {s.svc} {s.mid} in {s.conf} but never delivered it there"
            out.append(Violation("EVS-3", msg, t_next))
    return out


def _segments(trace: Trace) -> dict[tuple[str, str], dict[str, frozenset[str]]]:
    """(c, c') -> daemon -> mids it delivered while c was installed, for each step c -> c'."""
    per_pos: dict[str, list[set[str]]] = {
        d: [set() for _ in insts] for d, insts in trace.installs.items()
    }
    for d, dels in trace.delivers.items():
        for e in dels:
            pos = trace.conf_pos.get(e.idx, -1)
            if pos >= 0:
                per_pos[d][pos].add(e.mid)
    steps: dict[tuple[str, str], dict[str, frozenset[str]]] = {}
    for d, insts in trace.installs.items():
        for pos in range(len(insts) - 1):
            step = (insts[pos].conf, insts[pos + 1].conf)
            steps.setdefault(step, {})[d] = frozenset(per_pos[d][pos])
    return steps


def check_evs_4(trace: Trace) -> list[Violation]:
    """EVS-4: daemons that install c and then the same next configuration c' delivered the same
    set of messages in c (regular -> transitional and transitional -> regular steps alike)."""
    out: list[Violation] = []
    for (c, c_next), sets in _segments(trace).items():
        if len(set(sets.values())) <= 1:
            continue
        union = frozenset().union(*sets.values())
        when = max(
            (inst.t for d in sets if (inst := trace.next_install(d, c)) is not None), default=None
        )
        for d in sorted(sets):
            missing = union - sets[d]
            if missing:
                others = fmt(q for q in sets if missing & sets[q])
                msg = (
                    f"daemons went {c} -> {c_next}; {d} did not deliver {fmt(missing)} in {c}, "
                    f"which {others} delivered there"
                )
                out.append(Violation("EVS-4", msg, when))
    return out
