"""Liveness checks L1-L3, evaluated only when the trace has a ``stable`` and an ``end`` event,
and L4, liveness under continuing faults, evaluated in each core phase.

After ``stable`` no more faults are injected; ``end.live`` lists the daemons that are alive and
fully connected at the end of the run. Only what happens before ``end`` is judged: a live
harness stops its daemons after writing it, and the views they install while stopping are not
part of the run. The final configuration found here is also the scope of SVC-REL
(:mod:`sim.checkers.service`).

A core phase is declared by the harness with two ``fault`` events ``what: "core"``: ``state:
"start"`` lists the ``core`` daemons (names), the phase's end ``until`` and the delivery bound
``deliver_within_ms``; ``state: "end"`` says whether the outside faults were ``transitive``
(else ``why``). The core stays fully connected meanwhile while the daemons outside it flap,
crash and are cut. L4 judges the phases that ended and were transitive: the non-transitive case
is a known limitation of the membership protocol (protocol/membership.md sections 11 and 13).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.checkers.base import Violation, fmt
from sim.trace import RELIABLE, Fault, Install, Trace

L3_MAX_REGULAR_INSTALLS = 4  # L3: regular installs per live daemon allowed after "stable"
# L4 (protocol/membership.md section 13): regular configurations a core member may install in a
# core phase: CORE_VIEWS_BASE, plus CORE_VIEWS_PER_CHANGE per outside connectivity change.
CORE_VIEWS_BASE = 2
CORE_VIEWS_PER_CHANGE = 2
# Outside faults that are two changes (down, then back) in one fault event.
DOWN_AND_BACK = frozenset(("crash", "leave", "pause"))


def core_delivery_bound_ms(
    *,
    heartbeat_ms: int,
    suspect_timeout_ms: int,
    flush_timeout_ms: int,
    install_timeout_ms: int,
    gather_timeout_ms: int,
    daemons: int,
) -> int:
    """L4's delivery bound for a core phase (protocol/membership.md section 13): the longest a
    message of a core member waits for every core member while outside daemons vanish and
    return. A member silenced just after the send holds the message (its acks are missing) until
    it is suspected; the round that removes it may wait the merge settle and the stagger of
    the candidates ranked before the proposer, and lose its proposer's Install to one more
    change (a member's install timeout, then a fresh round that a flush timeout may cut short)."""
    return (
        suspect_timeout_ms
        + 2 * heartbeat_ms
        + gather_timeout_ms * max(1, daemons - 1)
        + install_timeout_ms
        + flush_timeout_ms
    )


def _name(token: str) -> str:
    return token.rsplit(":", 1)[0]


@dataclass(frozen=True, slots=True)
class CoreSpan:
    """One core phase of a trace: its start and end markers (``end`` None: the trace stops
    inside it), the core daemons (names) and the delivery bound."""

    start: Fault
    end: Fault | None
    members: tuple[str, ...]
    within_ms: int
    why: str  # why L4 does not judge it ('' : it does)

    @property
    def judged(self) -> bool:
        return self.end is not None and not self.why


def core_spans(trace: Trace) -> list[CoreSpan]:
    """The core phases of ``trace``, in order."""
    spans: list[CoreSpan] = []
    start: Fault | None = None
    for e in trace.events:
        if not (isinstance(e, Fault) and e.what == "core"):
            continue
        if e.details.get("state") == "start":
            if start is not None:
                spans.append(_span(start, None))
            start = e
        elif e.details.get("state") == "end" and start is not None:
            spans.append(_span(start, e))
            start = None
    if start is not None:
        spans.append(_span(start, None))
    return spans


def _span(start: Fault, end: Fault | None) -> CoreSpan:
    members = start.details.get("core")
    within = start.details.get("deliver_within_ms")
    why = ""
    if not (isinstance(members, list) and members and all(isinstance(m, str) for m in members)):
        members, why = [], "its start lists no core daemons"
    if not isinstance(within, int) or isinstance(within, bool) or within <= 0:
        within, why = 0, why or "its start gives no deliver_within_ms"
    if end is None:
        why = why or "the trace ends inside it"
    elif end.details.get("transitive") is not True:
        why = why or str(end.details.get("why", "its outside faults were not transitive"))
    return CoreSpan(start, end, tuple(members), within, why)


def outside_changes(trace: Trace, span: CoreSpan) -> int:
    """Connectivity changes outside the core during ``span``: every fault event in it (a
    flap's toggle and a swizzle's step are events of their own), two for a crash, a clean leave
    or a pause (down, then back)."""
    end = span.end.idx if span.end is not None else len(trace.events)
    changes = 0
    for e in trace.events[span.start.idx + 1 : end]:
        if isinstance(e, Fault) and e.what != "core":
            changes += 2 if e.what in DOWN_AND_BACK else 1
    return changes


def core_regular_installs(trace: Trace, span: CoreSpan) -> dict[str, list[Install]]:
    """Each core member's regular installs during ``span``."""
    end = span.end.idx if span.end is not None else len(trace.events)
    out: dict[str, list[Install]] = {m: [] for m in span.members}
    for insts in trace.installs.values():
        for inst in insts:
            name = _name(inst.d)
            if inst.regular and name in out and span.start.idx < inst.idx < end:
                out[name].append(inst)
    return out


def core_delays(trace: Trace, span: CoreSpan) -> list[tuple[str, str, int | None]]:
    """For every svc >= RELIABLE message a core member sent during ``span`` in a configuration
    holding the whole core: (mid, core member, delay from send to that member's delivery, None
    if it never delivered it)."""
    end = span.end.idx if span.end is not None else len(trace.events)
    core = set(span.members)
    out: list[tuple[str, str, int | None]] = []
    for s in trace.sends.values():
        if not span.start.idx < s.idx < end or _name(s.d) not in core:
            continue
        holders = {_name(m) for m in trace.members(s.conf)}
        if trace.svc_rank(s.mid) < RELIABLE or not core <= holders:
            continue
        first: dict[str, int] = {}
        for e in trace.delivers_of.get(s.mid, ()):
            first.setdefault(_name(e.d), e.t)
        for m in span.members:
            out.append((s.mid, m, first[m] - s.t if m in first else None))
    return out


def check_l4(trace: Trace) -> list[Violation]:
    """L4: in every core phase whose outside faults were transitive, (a) every svc >= RELIABLE
    message a core member sends in a configuration holding the whole core is delivered by every
    core member within the phase's ``deliver_within_ms`` (judged while the trace lasts that
    long), and (b) no core member installs more than ``CORE_VIEWS_BASE + CORE_VIEWS_PER_CHANGE
    x`` (outside connectivity changes) regular configurations during the phase."""
    out: list[Violation] = []
    horizon = trace.events[-1].t if trace.events else 0
    for span in core_spans(trace):
        if not span.judged:
            continue
        core = fmt(span.members)
        for mid, member, delay in core_delays(trace, span):
            send = trace.sends[mid]
            due = send.t + span.within_ms
            if due > horizon or (delay is not None and delay <= span.within_ms):
                continue
            late = "never" if delay is None else f"only after {delay} ms"
            msg = (
                f"{send.svc} {mid} sent by {send.d} at {send.t} in core phase {core}: "
                f"delivered by core member {member} {late} (bound {span.within_ms} ms)"
            )
            out.append(Violation("L4", msg, due))
        changes = outside_changes(trace, span)
        allowed = CORE_VIEWS_BASE + CORE_VIEWS_PER_CHANGE * changes
        end_t = span.end.t if span.end is not None else horizon
        for member, insts in sorted(core_regular_installs(trace, span).items()):
            if len(insts) > allowed:
                msg = (
                    f"core member {member} installed {len(insts)} regular configurations in "
                    f"core phase {core} ({span.start.t}-{end_t} ms, {changes} outside changes; "
                    f"at most {allowed})"
                )
                out.append(Violation("L4", msg, end_t))
    return out


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


def core_report(trace: Trace) -> list[str]:
    """One line per core phase: whether L4 judges it, its outside changes, each core member's
    regular installs (and per second), and the slowest delivery to a core member."""
    lines: list[str] = []
    horizon = trace.events[-1].t if trace.events else 0
    for span in core_spans(trace):
        end_t = span.end.t if span.end is not None else horizon
        seconds = max(end_t - span.start.t, 1) / 1000
        installs = core_regular_installs(trace, span)
        views = ", ".join(f"{m} {len(i)}" for m, i in sorted(installs.items()))
        most = max((len(i) for i in installs.values()), default=0)
        delays = core_delays(trace, span)
        known = [d for _, _, d in delays if d is not None]
        missing = sum(1 for _, _, d in delays if d is None)
        verdict = "judged by L4" if span.judged else f"not judged by L4: {span.why}"
        lines.append(
            f"core phase {fmt(span.members)} {span.start.t}-{end_t} ms ({verdict}): "
            f"{outside_changes(trace, span)} outside changes; regular views {views} "
            f"(at most {most / seconds:.1f}/s); {len(delays)} core deliveries due, slowest "
            f"{max(known, default=0)} ms (bound {span.within_ms} ms), {missing} never"
        )
    return lines
