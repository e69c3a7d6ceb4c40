"""EVS ordering properties: causal (EVS-5) and agreed order (EVS-6.1 acyclicity, EVS-6.2 holes).

EVS-5 and EVS-6.2 are checked at daemon level; EVS-6.1 joins every daemon's and every
connection's AGREED/SAFE delivery order into one graph. Messages are classified by the service
they were *sent* with (a mismatching ``svc`` on a delivery is EVS-1.1's business).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from sim.checkers.base import Violation, fmt_seq
from sim.trace import AGREED, CAUSAL, Deliver, Send, Trace

# ---------------------------------------------------------------------------- EVS-5


class _Causal:
    """Vector clocks per (sending daemon, conf) over the causal messages of one configuration.

    ``vc[m][s]`` counts the causal messages from daemon ``s`` (sent in m's configuration) that
    precede or equal ``m`` in the causal order; a daemon may deliver ``m`` only after it has
    delivered that many from each ``s`` (one fewer from m's own sender).
    """

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.know: dict[tuple[str, str], dict[str, int]] = {}
        self.count: dict[tuple[str, str], dict[str, int]] = {}
        self.sent: dict[tuple[str, str], list[str]] = {}
        self.vc: dict[str, dict[str, int]] = {}
        self.delivered: dict[str, set[str]] = {}
        self.out: list[Violation] = []

    def send(self, s: Send) -> None:
        key = (s.d, s.conf)
        know = self.know.setdefault(key, {})
        know[s.d] = know.get(s.d, 0) + 1
        self.vc[s.mid] = dict(know)
        self.sent.setdefault(key, []).append(s.mid)

    def deliver(self, e: Deliver, s: Send) -> None:
        done = self.delivered.setdefault(e.d, set())
        if e.mid in done:
            return  # EVS-1.2 reports duplicates
        vc = self.vc[e.mid]
        cnt = self.count.setdefault((e.d, s.conf), {})
        for origin, n in vc.items():
            need = n - 1 if origin == s.d else n
            if cnt.get(origin, 0) < need:
                self._report(e, s, origin, need, done)
        done.add(e.mid)
        cnt[s.d] = cnt.get(s.d, 0) + 1
        know = self.know.setdefault((e.d, s.conf), {})
        for origin, n in vc.items():
            if know.get(origin, 0) < n:
                know[origin] = n

    def _report(self, e: Deliver, s: Send, origin: str, need: int, done: set[str]) -> None:
        prefix = self.sent[(origin, s.conf)][:need]
        missing = [m for m in prefix if m not in done]
        msg = (
            f"daemon {e.d} delivered {e.mid} (from {s.d} in {s.conf}) before its causal "
            f"predecessor(s) {fmt_seq(missing)} from {origin}"
        )
        self.out.append(Violation("EVS-5", msg, e.t))


def _client_causal(trace: Trace, vc: dict[str, dict[str, int]]) -> list[Violation]:
    """Connections: receiving m after some m' with m -> m' is a violation (m -> m' iff
    vc[m'][sender(m)] >= vc[m][sender(m)] within one configuration)."""
    out: list[Violation] = []
    for p, cdels in trace.cdelivers.items():
        seen: dict[str, dict[str, tuple[int, str]]] = {}  # conf -> origin -> (max, by mid)
        done: set[str] = set()
        for ce in cdels:
            s = trace.sends.get(ce.mid)
            if s is None or ce.mid in done or ce.mid not in vc:
                continue
            done.add(ce.mid)
            mx = seen.setdefault(s.conf, {})
            top = mx.get(s.d)
            if top is not None and top[0] >= vc[ce.mid][s.d]:
                msg = f"connection {p} received {ce.mid} after {top[1]}, which causally follows it"
                out.append(Violation("EVS-5", msg, ce.t))
            for origin, n in vc[ce.mid].items():
                if origin not in mx or mx[origin][0] < n:
                    mx[origin] = (n, ce.mid)
    return out


def check_evs_5(trace: Trace) -> list[Violation]:
    """EVS-5: m -> m' (same sending daemon sent m first, or the sender of m' delivered m before
    sending m'), both in the same configuration and svc >= CAUSAL: every daemon delivering m'
    delivered m earlier (checked on the transitive closure via vector clocks). Client level:
    a connection that receives both receives m first."""
    causal = _Causal(trace)
    sends = trace.sends
    for e in trace.events:
        if isinstance(e, Send):
            if sends.get(e.mid) is e and trace.svc_rank(e.mid) >= CAUSAL:
                causal.send(e)
        elif isinstance(e, Deliver):
            s = sends.get(e.mid)
            if s is not None and s.idx < e.idx and trace.svc_rank(e.mid) >= CAUSAL:
                causal.deliver(e, s)
    return causal.out + _client_causal(trace, causal.vc)


# ---------------------------------------------------------------------------- EVS-6.1


def _first_occurrences(mids: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for m in mids:
        if m not in seen:
            seen.add(m)
            out.append(m)
    return out


def _agreed_orders(trace: Trace) -> dict[str, list[str]]:
    """Every daemon's and connection's AGREED/SAFE delivery order (first deliveries only)."""
    orders: dict[str, list[str]] = {}
    for d, dels in trace.delivers.items():
        mids = (e.mid for e in dels if trace.svc_rank(e.mid, e.svc) >= AGREED)
        orders[f"daemon {d}"] = _first_occurrences(mids)
    for p, cdels in trace.cdelivers.items():
        cmids = (e.mid for e in cdels if trace.svc_rank(e.mid, e.svc) >= AGREED)
        orders[f"connection {p}"] = _first_occurrences(cmids)
    return orders


def _find_cycle(succ: dict[str, list[str]], left: set[str]) -> list[str]:
    """A cycle among ``left`` (nodes Kahn could not remove: each has a predecessor in it)."""
    pred: dict[str, str] = {}
    for a in left:
        for b in succ.get(a, ()):
            if b in left:
                pred.setdefault(b, a)
    node = min(left)
    path: dict[str, int] = {}
    walk: list[str] = []
    while node not in path:
        path[node] = len(walk)
        walk.append(node)
        node = pred[node]
    cycle = walk[path[node] :]
    cycle.reverse()
    return cycle


def check_evs_6_1(trace: Trace) -> list[Violation]:
    """EVS-6.1: the union of all per-daemon and per-connection AGREED/SAFE delivery orders is
    acyclic (pairwise consistent total order). Consecutive pairs + Kahn's algorithm."""
    orders = _agreed_orders(trace)
    succ: dict[str, list[str]] = {}
    indeg: dict[str, int] = {}
    for seq in orders.values():
        for a, b in itertools.pairwise(seq):
            succ.setdefault(a, []).append(b)
            indeg[b] = indeg.get(b, 0) + 1
        for m in seq:
            indeg.setdefault(m, 0)
    queue = [m for m, k in indeg.items() if k == 0]
    removed = 0
    while queue:
        m = queue.pop()
        removed += 1
        for n in succ.get(m, ()):
            indeg[n] -= 1
            if indeg[n] == 0:
                queue.append(n)
    if removed == len(indeg):
        return []
    cycle = _find_cycle(succ, {m for m, k in indeg.items() if k > 0})
    return [Violation("EVS-6.1", _describe_cycle(orders, cycle), _cycle_time(trace, cycle))]


def _describe_cycle(orders: dict[str, list[str]], cycle: list[str]) -> str:
    pairs = list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
    wanted = set(pairs)
    by: dict[tuple[str, str], str] = {}
    for who, seq in orders.items():
        for pair in itertools.pairwise(seq):
            if pair in wanted:
                by.setdefault(pair, who)
    steps = [f"{a} before {b} at {by.get((a, b), '?')}" for a, b in pairs]
    more = f"; ... ({len(steps)} steps)" if len(steps) > 6 else ""
    return "AGREED/SAFE delivery orders form a cycle: " + "; ".join(steps[:6]) + more


def _cycle_time(trace: Trace, cycle: list[str]) -> int | None:
    times = [e.t for m in cycle for e in trace.delivers_of.get(m, ())]
    times += [e.t for m in cycle for e in trace.cdelivers_of.get(m, ())]
    return max(times) if times else None


# ---------------------------------------------------------------------------- EVS-6.2


def _by_send_conf(trace: Trace) -> dict[str, dict[str, list[Deliver]]]:
    """send conf c -> daemon -> its first AGREED/SAFE deliveries of messages sent in c."""
    out: dict[str, dict[str, list[Deliver]]] = {}
    for d, dels in trace.delivers.items():
        seen: set[str] = set()
        for e in dels:
            s = trace.sends.get(e.mid)
            if s is None or e.mid in seen or trace.svc_rank(e.mid) < AGREED:
                continue
            seen.add(e.mid)
            out.setdefault(s.conf, {}).setdefault(d, []).append(e)
    return out


def _prefix_issue(seqs: dict[str, list[Deliver]], where: str) -> list[Violation]:
    """All sequences must be prefixes of the longest one."""
    if not seqs:
        return []
    owner = max(sorted(seqs), key=lambda d: len(seqs[d]))
    longest = [e.mid for e in seqs[owner]]
    out: list[Violation] = []
    for d in sorted(seqs):
        for i, e in enumerate(seqs[d]):
            if e.mid != longest[i]:
                msg = (
                    f"{where}: daemon {d} delivered {e.mid} as AGREED/SAFE #{i + 1} "
                    f"where {owner} delivered {longest[i]}"
                )
                out.append(Violation("EVS-6.2", msg, e.t))
                break
    return out


def _holes(
    trace: Trace, c: str, d: str, dels: list[Deliver], longest: list[str]
) -> list[Violation]:
    """Transitional deliveries at ``d`` may skip messages of the regular order ``longest`` only
    if their sender is outside the transitional configuration."""
    pos = {m: i for i, m in enumerate(longest)}
    delivered: set[str] = set()
    k = 0
    out: list[Violation] = []
    for e in dels:
        j = pos.get(e.mid, len(longest))
        if e.conf != c:
            members = trace.members(e.conf)
            for r in longest[k:j]:
                sender = trace.sender_daemon(r)
                if r not in delivered and sender in members:
                    msg = (
                        f"daemon {d} delivered {e.mid} in transitional {e.conf} without {r} "
                        f"(ordered before it in regular {c}) though {r}'s sender {sender} "
                        f"is in {e.conf}"
                    )
                    out.append(Violation("EVS-6.2", msg, e.t))
        k = max(k, j + 1 if e.mid in pos else j)
        delivered.add(e.mid)
    return out


def _check_conf(trace: Trace, c: str, per_d: dict[str, list[Deliver]]) -> list[Violation]:
    regular = {d: [e for e in dels if e.conf == c] for d, dels in per_d.items()}
    regular = {d: seq for d, seq in regular.items() if seq}
    out = _prefix_issue(regular, f"regular {c}")
    by_t: dict[str, dict[str, list[Deliver]]] = {}
    for d, dels in per_d.items():
        for e in dels:
            if e.conf != c:
                by_t.setdefault(e.conf, {})[d] = dels
    for t, seqs in by_t.items():
        out.extend(_prefix_issue(seqs, f"transitional {t} (messages of {c})"))
    longest: list[str] = []
    for seq in regular.values():
        if len(seq) > len(longest):
            longest = [e.mid for e in seq]
    for d, dels in per_d.items():
        if any(e.conf != c for e in dels):
            out.extend(_holes(trace, c, d, dels, longest))
    return out


def check_evs_6_2(trace: Trace) -> list[Violation]:
    """EVS-6.2: in a regular configuration every daemon's AGREED/SAFE sequence is a prefix of the
    longest one (no holes); daemons sharing a transitional configuration deliver the messages of
    the regular predecessor as prefixes of one sequence, and skip a message delivered in the
    regular configuration only if its sending daemon is not in their transitional configuration."""
    out: list[Violation] = []
    for c, per_d in _by_send_conf(trace).items():
        out.extend(_check_conf(trace, c, per_d))
    return out
