"""TRACE: process life-cycle rules every property relies on ("fail(p): no further events").

A crashed daemon (and with it all its connections) produces no further events; a connection
exists from its ``open`` to its ``close``, is hosted on one daemon, and gets nothing after
``close`` (its daemon may still order, i.e. ``send``, messages it submitted before closing).
Format errors are not here: the loader rejects them with a TraceError.
"""

from __future__ import annotations

from sim.checkers.base import Violation
from sim.trace import Close, Crash, Open, Send, Trace


def _after_crash(trace: Trace) -> list[Violation]:
    out: list[Violation] = []
    crashed: dict[str, int] = {}
    for e in trace.events:
        d = getattr(e, "d", None)
        if d is None:
            continue
        if d in crashed:
            what = f"{e.__class__.__name__.lower()} of {getattr(e, 'p', d)}"
            msg = f"daemon {d} crashed at t={crashed[d]} but the trace has a later {what}"
            out.append(Violation("TRACE", msg, e.t))
        elif isinstance(e, Crash):
            crashed[d] = e.t
    return out


def _connection(trace: Trace, p: str) -> list[Violation]:
    evs = trace.conn_events[p]
    first = evs[0]
    if not isinstance(first, Open):
        return [Violation("TRACE", f"connection {p} has events before it was opened", first.t)]
    out: list[Violation] = []
    closed = False
    for e in evs[1:]:
        if isinstance(e, Open):
            out.append(Violation("TRACE", f"connection {p} opened twice", e.t))
        elif closed and not isinstance(e, Send):
            # A send is the daemon ordering a message the client submitted before its close.
            name = e.__class__.__name__.lower()
            out.append(Violation("TRACE", f"connection {p} got a {name} after its close", e.t))
        if e.d != first.d:
            msg = f"connection {p} opened on {first.d} has an event on daemon {e.d}"
            out.append(Violation("TRACE", msg, e.t))
        closed = closed or isinstance(e, Close)
    return out


def check_trace(trace: Trace) -> list[Violation]:
    """TRACE: no events of a daemon or its connections after the daemon's crash; every connection
    event lies between the connection's single open and its close, on the opening daemon."""
    out = _after_crash(trace)
    for p in trace.conn_events:
        out.extend(_connection(trace, p))
    return out
