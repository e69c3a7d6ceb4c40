"""SAFE delivery guarantees EVS-7.1 (regular configuration) and EVS-7.2 (transitional).

Checked at daemon level. "q fails in c" means q never installed c, or q crashed or the trace
ended before q installed the next regular configuration after c (Trace.survives).
"""

from __future__ import annotations

from sim.checkers.base import Violation
from sim.trace import Trace


def _safe_mids(trace: Trace) -> list[str]:
    return [mid for mid, s in trace.sends.items() if s.svc == "SAFE" and mid in trace.delivers_of]


def _when(trace: Trace, q: str, conf: str) -> int | None:
    nxt = trace.next_regular(q, conf)
    return nxt.t if nxt is not None else None


def check_evs_7_1(trace: Trace) -> list[Violation]:
    """EVS-7.1: SAFE m delivered (by anyone) in regular c => every q in c.members that does not
    fail in c delivers m in c or in its t(c)."""
    out: list[Violation] = []
    for mid in _safe_mids(trace):
        dels = trace.delivers_of[mid]
        got = {(e.d, e.conf) for e in dels}
        for c in sorted({e.conf for e in dels if trace.is_regular(e.conf)}):
            witness = next(e.d for e in dels if e.conf == c)
            for q in sorted(trace.members(c)):
                if not trace.survives(q, c):
                    continue
                if (q, c) in got or (q, trace.trans_after(q, c)) in got:
                    continue
                msg = (
                    f"SAFE {mid} was delivered in regular {c} (by {witness}) but member {q}, "
                    f"which did not fail in {c}, never delivered it in {c} or t({c})"
                )
                out.append(Violation("EVS-7.1", msg, _when(trace, q, c)))
    return out


def check_evs_7_2(trace: Trace) -> list[Violation]:
    """EVS-7.2: SAFE m delivered in transitional t => every q in t.members that does not fail
    in t delivers m (in t, or already in the regular configuration before t)."""
    out: list[Violation] = []
    for mid in _safe_mids(trace):
        dels = trace.delivers_of[mid]
        receivers = {e.d for e in dels}
        for t in sorted({e.conf for e in dels if not trace.is_regular(e.conf)}):
            witness = next(e.d for e in dels if e.conf == t)
            for q in sorted(trace.members(t) - receivers):
                if trace.survives(q, t):
                    msg = (
                        f"SAFE {mid} was delivered in transitional {t} (by {witness}) but "
                        f"member {q}, which did not fail in {t}, never delivered it"
                    )
                    out.append(Violation("EVS-7.2", msg, _when(trace, q, t)))
    return out
