"""RET-POS (protocol/retention.md section 1): a delivered message's position ``(conf, n)``
names the same message at every daemon that delivered that configuration, so a client can
resume at any of them. Checked on the daemon-level ``deliver`` events (their ``n``; traces
older than positions have none and are skipped). ``n = 0`` in a regular configuration is a
message delivered early (UNRELIABLE, RELIABLE or FIFO; protocol/ordering.md section 8.1): it has
no ordinal there, at every daemon alike, and its ``mid`` names it.
"""

from __future__ import annotations

from sim.checkers.base import Violation
from sim.trace import FIFO, Trace


def check_ret_pos(trace: Trace) -> list[Violation]:
    """RET-POS: one message per ``(conf, n)`` over all daemons, one ``n`` per message and
    configuration (0 included: early at one daemon, early at all), ordinals increase along each
    daemon's deliveries in a configuration, and only levels up to FIFO go without one."""
    out: list[Violation] = []
    if not any(e.n for dels in trace.delivers.values() for e in dels):
        return out  # a trace older than positions
    at: dict[tuple[str, int], tuple[str, str]] = {}  # (conf, n) -> (mid, daemon)
    ordinal: dict[tuple[str, str], tuple[int, str]] = {}  # (conf, mid) -> (n, daemon)
    for d, dels in trace.delivers.items():
        last: dict[str, int] = {}  # conf -> n of this daemon's previous delivery there
        for e in dels:
            first = ordinal.setdefault((e.conf, e.mid), (e.n, d))
            if first[0] != e.n:
                out.append(
                    Violation(
                        "RET-POS",
                        f"{e.mid} is {e.conf}#{first[0]} at daemon {first[1]} but "
                        f"{e.conf}#{e.n} at daemon {d}",
                        e.t,
                    )
                )
            if e.n == 0:
                if trace.svc_rank(e.mid) > FIFO:
                    msg = f"daemon {d} delivered {e.mid} ({trace.sends[e.mid].svc}) in {e.conf}"
                    out.append(Violation("RET-POS", msg + " without an ordinal", e.t))
                continue
            seen = at.setdefault((e.conf, e.n), (e.mid, d))
            if seen[0] != e.mid:
                out.append(
                    Violation(
                        "RET-POS",
                        f"position {e.conf}#{e.n} is {seen[0]} at daemon {seen[1]} "
                        f"but {e.mid} at daemon {d}",
                        e.t,
                    )
                )
            if e.n <= last.get(e.conf, 0):
                out.append(
                    Violation(
                        "RET-POS",
                        f"daemon {d} delivered {e.mid} at {e.conf}#{e.n} after #{last[e.conf]}",
                        e.t,
                    )
                )
            last[e.conf] = e.n
    return out
