"""Liveness checks L1-L3, evaluated only when the trace has a ``stable`` and an ``end`` event.

After ``stable`` no more faults are injected; ``end.live`` lists the daemons that are alive and
fully connected at the end of the run. Only what happens before ``end`` is judged: a live
harness stops its daemons after writing it, and the views they install while stopping are not
part of the run. The final configuration found here is also the scope of SVC-REL
(:mod:`sim.checkers.service`).
"""

from __future__ import annotations

from sim.checkers.base import Violation, fmt
from sim.trace import RELIABLE, Install, Trace

L3_MAX_REGULAR_INSTALLS = 4  # L3: regular installs per live daemon allowed after "stable"


def _installs_before_end(trace: Trace, d: str) -> list[Install]:
    end = trace.end
    insts = trace.installs.get(d, [])
    return insts if end is None else [i for i in insts if i.idx < end.idx]


def _crashed_before_end(trace: Trace, d: str) -> bool:
    crash = trace.crashes.get(d)
    return crash is not None and (trace.end is None or crash.idx < trace.end.idx)


def final_configuration(trace: Trace) -> str | None:
    """The regular configuration every live daemon ends in, if L1 holds (else None)."""
    if trace.end is None or trace.stable is None:
        return None
    live = set(trace.end.live)
    finals: set[str | None] = set()
    for d in live:
        insts = _installs_before_end(trace, d)
        if _crashed_before_end(trace, d) or not insts or not insts[-1].regular:
            return None
        finals.add(insts[-1].conf)
    if len(finals) != 1:
        return None
    conf = finals.pop()
    return conf if conf is not None and trace.members(conf) == live else None


def check_l1(trace: Trace) -> list[Violation]:
    """L1: all daemons in end.live end in the same regular configuration, whose members are
    exactly end.live."""
    end = trace.end
    if end is None or trace.stable is None or final_configuration(trace) is not None:
        return []
    out: list[Violation] = []
    finals: dict[str, str] = {}
    for d in sorted(end.live):
        insts = _installs_before_end(trace, d)
        if _crashed_before_end(trace, d):
            out.append(Violation("L1", f"daemon {d} is listed live but crashed", end.t))
        elif not insts:
            out.append(Violation("L1", f"live daemon {d} never installed a configuration", end.t))
        elif not insts[-1].regular:
            msg = f"live daemon {d} ends in transitional {insts[-1].conf}"
            out.append(Violation("L1", msg, end.t))
        else:
            finals[d] = insts[-1].conf
    for conf in sorted(set(finals.values())):
        holders = [d for d, c in finals.items() if c == conf]
        members = trace.members(conf)
        if members != set(end.live):
            msg = f"{fmt(holders)} end in {conf} = {fmt(members)}, not the live set {fmt(end.live)}"
            out.append(Violation("L1", msg, end.t))
    return out


def check_l2(trace: Trace) -> list[Violation]:
    """L2: every svc >= RELIABLE message sent by a live daemon in the final configuration is
    delivered by every live daemon."""
    final = final_configuration(trace)
    if final is None or trace.end is None:
        return []
    live = set(trace.end.live)
    out: list[Violation] = []
    for s in trace.sends.values():
        if s.conf != final or s.d not in live or trace.svc_rank(s.mid) < RELIABLE:
            continue
        missing = live - {e.d for e in trace.delivers_of.get(s.mid, ())}
        if missing:
            msg = f"{s.svc} {s.mid} from {s.d} in final {final} never delivered by {fmt(missing)}"
            out.append(Violation("L2", msg, trace.end.t))
    return out


def check_l3(trace: Trace, max_regular: int = L3_MAX_REGULAR_INSTALLS) -> list[Violation]:
    """L3: after ``stable`` each live daemon installs at most ``max_regular`` regular
    configurations (no endless churn)."""
    if trace.stable is None or trace.end is None:
        return []
    after = trace.stable.idx
    out: list[Violation] = []
    for d in sorted(trace.end.live):
        n = sum(1 for i in _installs_before_end(trace, d) if i.regular and i.idx > after)
        if n > max_regular:
            msg = f"daemon {d} installed {n} regular configurations after stable (> {max_regular})"
            out.append(Violation("L3", msg, trace.end.t))
    return out
