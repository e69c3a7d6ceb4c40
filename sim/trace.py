"""The observable trace: event model, JSON Lines loader with validation, and per-process indexes.

This module owns the trace format described in docs/simulation.md ("Trace format"): one JSON
object per line, in global time order. It parses and validates every line into a frozen event
object and builds the indexes (per daemon, per connection, sends by mid, configuration
positions) that the checkers in :mod:`sim.checkers` share, so that each checker is a cheap pass.

It does not judge the trace: a syntactically valid trace that breaks a guarantee loads fine and
the checkers report it. It imports only the standard library (never ``groupcomm``) so that it can
read traces recorded by any implementation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

SERVICES: tuple[str, ...] = ("UNRELIABLE", "RELIABLE", "FIFO", "CAUSAL", "AGREED", "SAFE")
SVC_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SERVICES)}
RELIABLE = SVC_RANK["RELIABLE"]
FIFO = SVC_RANK["FIFO"]
CAUSAL = SVC_RANK["CAUSAL"]
AGREED = SVC_RANK["AGREED"]
SAFE = SVC_RANK["SAFE"]

CONF_KINDS = ("regular", "transitional")
GVIEW_KINDS = ("regular", "transitional", "self_leave")
CAUSES = ("JOIN", "LEAVE", "DISCONNECT", "NETWORK")
MEMBER_CAUSES = ("JOIN", "LEAVE", "DISCONNECT")
REJECT_OPS = ("join", "leave", "multicast")


class TraceError(ValueError):
    """A trace line is not valid JSON, has an unknown ``ev``, or lacks/mistypes a field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Install:
    """Daemon ``d`` installs daemon configuration ``conf`` (EVS configurations are daemon-level)."""

    idx: int
    t: int
    d: str
    conf: str
    kind: str
    members: tuple[str, ...]
    epoch: int

    @property
    def regular(self) -> bool:
        return self.kind == "regular"


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Daemon ``d`` put connection ``p``'s message ``mid`` into regular configuration ``conf``."""

    idx: int
    t: int
    d: str
    p: str
    mid: str
    svc: str
    self_discard: bool
    groups: tuple[str, ...]
    conf: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver:
    """Daemon-level delivery of ``mid`` at daemon ``d`` in configuration ``conf``."""

    idx: int
    t: int
    d: str
    mid: str
    svc: str
    conf: str
    n: int = 0  # its ordinal in ``conf`` (RET-POS); 0 in traces older than positions


@dataclass(frozen=True, slots=True, kw_only=True)
class CDeliver:
    """Client-level delivery of data message ``mid`` to connection ``p`` hosted on ``d``."""

    idx: int
    t: int
    p: str
    d: str
    mid: str
    svc: str
    groups: tuple[str, ...]
    sender: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GView:
    """A group view (regular, transitional or self_leave) delivered to connection ``p``."""

    idx: int
    t: int
    p: str
    d: str
    group: str
    kind: str
    gid: str
    members: tuple[str, ...]
    cause: str | None
    vs_sets: tuple[tuple[str, ...], ...]
    changed: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Open:
    idx: int
    t: int
    p: str
    d: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    idx: int
    t: int
    p: str
    d: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    idx: int
    t: int
    p: str
    d: str
    op: str
    group: str | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Crash:
    idx: int
    t: int
    d: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """Informational fault injection record; ``details`` holds every other field."""

    idx: int
    t: int
    what: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stable:
    """From here on no more faults are injected (start of the liveness phase)."""

    idx: int
    t: int


@dataclass(frozen=True, slots=True, kw_only=True)
class End:
    """End of run; ``live`` daemons are alive and fully connected."""

    idx: int
    t: int
    live: tuple[str, ...]


DataEvent: TypeAlias = Install | Send | Deliver | CDeliver | GView
Event: TypeAlias = DataEvent | Open | Close | Reject | Crash | Fault | Stable | End
DaemonEvent: TypeAlias = Install | Send | Deliver | Crash
ConnEvent: TypeAlias = Open | Close | Send | CDeliver | GView | Reject


def rank(svc: str) -> int:
    """Service level as an int (UNRELIABLE=0 ... SAFE=5)."""
    return SVC_RANK[svc]


def is_private(group: str) -> bool:
    """Private names (``#user#daemon``) start with ``#``; group names never do (SP-PRIV)."""
    return group.startswith("#")


# ---------------------------------------------------------------------------- field validation

_Obj: TypeAlias = Mapping[str, Any]
_Field: TypeAlias = Callable[[_Obj, str, str], Any]
_MISSING = object()


def _bad(obj: _Obj, key: str, ctx: str, what: str) -> TraceError:
    if key not in obj:
        return TraceError(f"{ctx}: missing field {key!r}")
    return TraceError(f"{ctx}: field {key!r} must be {what}, got {obj[key]!r}")


def _str(obj: _Obj, key: str, ctx: str) -> str:
    value = obj.get(key, _MISSING)
    if value.__class__ is not str:
        raise _bad(obj, key, ctx, "a string")
    return value


def _int(obj: _Obj, key: str, ctx: str) -> int:
    value = obj.get(key, _MISSING)
    if value.__class__ is not int:  # bool is not an int here
        raise _bad(obj, key, ctx, "an integer")
    return value


def _opt_int(obj: _Obj, key: str, ctx: str) -> int:
    """An optional non-negative integer (0 when absent)."""
    value = obj.get(key, 0)
    if value.__class__ is not int or value < 0:
        raise _bad(obj, key, ctx, "a non-negative integer")
    return value


def _bool(obj: _Obj, key: str, ctx: str) -> bool:
    value = obj.get(key, _MISSING)
    if value.__class__ is not bool:
        raise _bad(obj, key, ctx, "a boolean")
    return value


def _one_of(*choices: str) -> _Field:
    def check(obj: _Obj, key: str, ctx: str) -> str:
        value = obj.get(key, _MISSING)
        if value not in choices:
            raise _bad(obj, key, ctx, "one of " + ", ".join(choices))
        return value  # type: ignore[no-any-return]

    return check


def _strs(obj: _Obj, key: str, ctx: str) -> tuple[str, ...]:
    value = obj.get(key, _MISSING)
    if value.__class__ is not list or not all(v.__class__ is str for v in value):
        raise _bad(obj, key, ctx, "a list of strings")
    return tuple(value)


def _opt_strs(obj: _Obj, key: str, ctx: str, required: bool) -> tuple[str, ...]:
    return _strs(obj, key, ctx) if required or key in obj else ()


def _vs_sets(obj: _Obj, key: str, ctx: str) -> tuple[tuple[str, ...], ...]:
    value = obj.get(key, _MISSING)
    if value.__class__ is not list:
        raise _bad(obj, key, ctx, "a list of lists of strings")
    return tuple(_strs({key: v}, key, ctx) for v in value)


def _opt_str(obj: _Obj, key: str, ctx: str) -> str | None:
    value = obj.get(key, _MISSING)
    if value is None or value.__class__ is str:
        return value
    raise _bad(obj, key, ctx, "a string or null")


_SVC = _one_of(*SERVICES)
# Plain events: class and (field, validator) pairs; gview and fault have their own parsers.
_PLAIN: dict[str, tuple[Callable[..., Event], tuple[tuple[str, _Field], ...]]] = {
    "install": (Install, (("d", _str), ("conf", _str), ("kind", _one_of(*CONF_KINDS)),
                          ("members", _strs), ("epoch", _int))),
    "send": (Send, (("d", _str), ("p", _str), ("mid", _str), ("svc", _SVC),
                    ("self_discard", _bool), ("groups", _strs), ("conf", _str))),
    "deliver": (Deliver, (("d", _str), ("mid", _str), ("svc", _SVC), ("conf", _str),
                          ("n", _opt_int))),
    "cdeliver": (CDeliver, (("p", _str), ("d", _str), ("mid", _str), ("svc", _SVC),
                            ("groups", _strs), ("sender", _str))),
    "open": (Open, (("p", _str), ("d", _str))),
    "close": (Close, (("p", _str), ("d", _str))),
    "reject": (Reject, (("p", _str), ("d", _str), ("op", _one_of(*REJECT_OPS)),
                        ("group", _opt_str), ("reason", _str))),
    "crash": (Crash, (("d", _str),)),
    "stable": (Stable, ()),
    "end": (End, (("live", _strs),)),
}  # fmt: skip


def _p_gview(o: _Obj, i: int, t: int, c: str) -> Event:
    kind = _one_of(*GVIEW_KINDS)(o, "kind", c)
    regular = kind == "regular"
    has_cause = kind != "transitional" or o.get("cause") is not None
    cause = _one_of(*CAUSES)(o, "cause", c) if has_cause else None
    return GView(
        idx=i,
        t=t,
        p=_str(o, "p", c),
        d=_str(o, "d", c),
        group=_str(o, "group", c),
        kind=kind,
        gid=_str(o, "gid", c),
        members=_opt_strs(o, "members", c, regular),
        cause=cause,
        vs_sets=_vs_sets(o, "vs_sets", c) if regular or "vs_sets" in o else (),
        changed=_opt_strs(o, "changed", c, regular and cause in MEMBER_CAUSES),
    )


def _p_fault(o: _Obj, i: int, t: int, c: str) -> Event:
    details = {k: v for k, v in o.items() if k not in ("t", "ev", "what")}
    return Fault(idx=i, t=t, what=_str(o, "what", c), details=details)


_SPECIAL: dict[str, Callable[[_Obj, int, int, str], Event]] = {
    "gview": _p_gview,
    "fault": _p_fault,
}
EVENT_NAMES: tuple[str, ...] = (*_PLAIN, *_SPECIAL)


def parse_event(obj: _Obj, idx: int, where: str) -> Event:
    """Validate one decoded trace object; ``where`` (e.g. ``run.jsonl:12``) names it in errors."""
    if not isinstance(obj, Mapping):
        raise TraceError(f"{where}: a trace line must be a JSON object, got {obj!r}")
    ev = obj.get("ev")
    ctx = f"{where} ({ev})"
    plain = _PLAIN.get(ev) if isinstance(ev, str) else None
    if plain is not None:
        cls, fields = plain
        return cls(idx=idx, t=_int(obj, "t", ctx), **{k: f(obj, k, ctx) for k, f in fields})
    special = _SPECIAL.get(ev) if isinstance(ev, str) else None
    if special is None:
        raise TraceError(f"{where}: unknown or missing 'ev' {ev!r}")
    return special(obj, idx, _int(obj, "t", ctx), ctx)


def parse_lines(lines: Iterable[str | Mapping[str, Any]], source: str = "") -> list[Event]:
    """Parse JSON Lines (or already decoded objects); blank lines are skipped.

    Events must be in non-decreasing ``t`` order; ``idx`` is the position in the result.
    """
    events: list[Event] = []
    last_t: int | None = None
    for lineno, raw in enumerate(lines, start=1):
        where = f"{source}:{lineno}" if source else f"line {lineno}"
        if isinstance(raw, str):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise TraceError(f"{where}: invalid JSON ({exc.msg})") from None
        else:
            obj = raw
        event = parse_event(obj, len(events), where)
        if last_t is not None and event.t < last_t:
            raise TraceError(f"{where}: time goes backwards ({event.t} < {last_t})")
        last_t = event.t
        events.append(event)
    return events


def load_trace(path_or_lines: str | os.PathLike[str] | Iterable[str | Mapping[str, Any]]) -> Trace:
    """Load one trace from a file path or from an iterable of JSON lines / decoded objects."""
    if isinstance(path_or_lines, (str, os.PathLike)):
        path = os.fspath(path_or_lines)
        with open(path, encoding="utf-8") as fh:
            return Trace(parse_lines(fh, source=path))
    return Trace(parse_lines(path_or_lines))


def load_traces(paths: Sequence[str | os.PathLike[str]]) -> Trace:
    """Load several files (e.g. one per live daemon) and merge them by ``t``, stably."""
    if len(paths) == 1:
        return load_trace(paths[0])
    per_file: list[list[Event]] = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            per_file.append(parse_lines(fh, source=os.fspath(path)))
    return Trace([replace(e, idx=i) for i, e in enumerate(_merge(per_file))])


def _merge(per_file: Sequence[Sequence[Event]]) -> Iterator[Event]:
    """The files' events by ``t``, each file keeping its own order. Across files, at the same
    millisecond, a send or a connection's open goes first, then an event that does not receive a
    message whose send is still waiting in some file: a delivery can never really precede its
    send, nor another daemon's view list a connection before it opened, but clocks in ms cannot
    tell them apart. (A client that opens, joins and is listed in the view other daemons deliver
    took under a millisecond on compiled daemons: with the view first, a reused private name was
    read as its previous life, SP-VIEW-ORDER.) (``(t, sends first)`` is no merge key: one
    daemon's file may hold a delivery and then a send in the same millisecond.) A delivery whose
    send comes later still goes first when nothing else can, so a real violation stays
    visible."""
    pending = {e.mid for events in per_file for e in events if isinstance(e, Send)}

    def rank(e: Event) -> int:
        if isinstance(e, (Send, Open)):
            return 0
        mid = getattr(e, "mid", None)
        return 2 if isinstance(mid, str) and mid in pending else 1

    pos = [0] * len(per_file)
    while True:
        live = [i for i, events in enumerate(per_file) if pos[i] < len(events)]
        if not live:
            return
        t = min(per_file[i][pos[i]].t for i in live)
        tied = [i for i in live if per_file[i][pos[i]].t == t]
        i = min(tied, key=lambda i: rank(per_file[i][pos[i]]))
        e = per_file[i][pos[i]]
        pos[i] += 1
        if isinstance(e, Send):
            pending.discard(e.mid)
        yield e


# ------------------------------------------------------------------- connection identities


def separate_reopened(events: Sequence[Event]) -> list[Event]:
    """Give each life of a reused private name its own identity.

    A private name opened again after its connection ended (it closed, or the new open is on
    another daemon token, e.g. after a restart) names a *new* connection: ``p~2``, ``p~3``...
    Every reference made after that open (``p``, ``sender``, view members) means the newest life,
    so per-connection properties never mix two lives. An open of a name whose connection is
    still live on the same daemon is left alone: that is a malformed trace (TRACE).
    """
    current: dict[str, str] = {}  # private name -> identity of its newest life
    lives: dict[str, int] = {}
    daemon_of: dict[str, str] = {}  # identity -> daemon token it was opened on
    ended: set[str] = set()
    out: list[Event] = []
    for e in events:
        if isinstance(e, Open):
            ident = current.get(e.p)
            if ident is not None and (ident in ended or daemon_of[ident] != e.d):
                lives[e.p] = lives.get(e.p, 1) + 1
                current[e.p] = f"{e.p}~{lives[e.p]}"
            elif ident is None:
                current[e.p] = e.p
            daemon_of[current[e.p]] = e.d
        if lives:
            e = _renamed(e, current)
        if isinstance(e, Close):
            ended.add(e.p)
        out.append(e)
    return out


def _renamed(e: Event, current: dict[str, str]) -> Event:
    def name(p: str) -> str:
        return current.get(p, p)

    if isinstance(e, GView):
        return replace(
            e,
            p=name(e.p),
            members=tuple(map(name, e.members)),
            vs_sets=tuple(tuple(map(name, vs)) for vs in e.vs_sets),
            changed=tuple(map(name, e.changed)),
        )
    if isinstance(e, CDeliver):
        return replace(e, p=name(e.p), sender=name(e.sender))
    if isinstance(e, (Send, Open, Close, Reject)):
        return replace(e, p=name(e.p))
    return e


# ---------------------------------------------------------------------------- indexed trace


class Trace:
    """A parsed trace plus the shared indexes; treat it as read-only.

    ``events[i].idx == i`` is the global order. Per-process lists keep that order.
    """

    def __init__(self, events: Sequence[Event]) -> None:
        self.events: list[Event] = separate_reopened(events)
        for i, e in enumerate(self.events):
            if e.idx != i:
                raise TraceError(f"event {i} has idx {e.idx}; rebuild it with parse_lines")
        self.daemons: list[str] = []
        self.installs: dict[str, list[Install]] = {}
        self.confs: dict[str, Install] = {}
        self.sends: dict[str, Send] = {}
        self.duplicate_sends: list[Send] = []
        self.delivers: dict[str, list[Deliver]] = {}
        self.delivers_of: dict[str, list[Deliver]] = {}
        self.cdelivers: dict[str, list[CDeliver]] = {}
        self.cdelivers_of: dict[str, list[CDeliver]] = {}
        self.gviews: dict[str, list[GView]] = {}
        self.daemon_events: dict[str, list[DaemonEvent]] = {}
        self.conn_events: dict[str, list[ConnEvent]] = {}
        self.crashes: dict[str, Crash] = {}
        self.opens: dict[str, Open] = {}
        self.closes: dict[str, Close] = {}
        self.stable: Stable | None = None
        self.end: End | None = None
        for e in self.events:
            self._index(e)
        self._install_pos: dict[tuple[str, str], int] = {
            (d, inst.conf): pos
            for d, insts in self.installs.items()
            for pos, inst in enumerate(insts)
        }
        self.conf_pos: dict[int, int] = self._positions()
        self._members: dict[str, frozenset[str]] = {
            conf: frozenset(inst.members) for conf, inst in self.confs.items()
        }

    def _daemon(self, d: str, e: DaemonEvent) -> None:
        lst = self.daemon_events.get(d)
        if lst is None:
            self.daemons.append(d)
            lst = self.daemon_events[d] = []
        lst.append(e)

    def _conn(self, p: str, e: ConnEvent) -> None:
        self.conn_events.setdefault(p, []).append(e)

    def _index(self, e: Event) -> None:
        match e:
            case Install():
                self._daemon(e.d, e)
                self.installs.setdefault(e.d, []).append(e)
                self.confs.setdefault(e.conf, e)
            case Send():
                self._daemon(e.d, e)
                self._conn(e.p, e)
                if e.mid in self.sends:
                    self.duplicate_sends.append(e)
                else:
                    self.sends[e.mid] = e
            case Deliver():
                self._daemon(e.d, e)
                self.delivers.setdefault(e.d, []).append(e)
                self.delivers_of.setdefault(e.mid, []).append(e)
            case CDeliver():
                self._conn(e.p, e)
                self.cdelivers.setdefault(e.p, []).append(e)
                self.cdelivers_of.setdefault(e.mid, []).append(e)
            case GView():
                self._conn(e.p, e)
                self.gviews.setdefault(e.p, []).append(e)
            case Open():
                self._conn(e.p, e)
                self.opens.setdefault(e.p, e)
            case Close():
                self._conn(e.p, e)
                self.closes.setdefault(e.p, e)
            case Reject():
                self._conn(e.p, e)
            case Crash():
                self._daemon(e.d, e)
                self.crashes.setdefault(e.d, e)
            case Stable():
                if self.stable is None:
                    self.stable = e
            case End():
                self.end = e
            case Fault():
                pass

    def _positions(self) -> dict[int, int]:
        """Map the idx of each send/deliver to the position of its daemon's current install."""
        out: dict[int, int] = {}
        for evs in self.daemon_events.values():
            pos = -1
            for e in evs:
                if isinstance(e, Install):
                    pos += 1
                elif isinstance(e, Send | Deliver):
                    out[e.idx] = pos
        return out

    # -- configuration queries (daemon level) ---------------------------------------------------

    def members(self, conf: str) -> frozenset[str]:
        """Members of ``conf`` as first installed (empty if nobody installed it)."""
        return self._members.get(conf, frozenset())

    def is_regular(self, conf: str) -> bool:
        inst = self.confs.get(conf)
        return inst is not None and inst.regular

    def install_pos(self, d: str, conf: str) -> int | None:
        """Position of ``conf`` in daemon ``d``'s install sequence, or None."""
        return self._install_pos.get((d, conf))

    def current_install(self, e: Send | Deliver) -> Install | None:
        """The configuration daemon ``e.d`` had installed last when ``e`` happened."""
        pos = self.conf_pos.get(e.idx, -1)
        return self.installs[e.d][pos] if pos >= 0 else None

    def next_install(self, d: str, conf: str) -> Install | None:
        """The configuration ``d`` installed directly after ``conf``."""
        pos = self._install_pos.get((d, conf))
        insts = self.installs.get(d, [])
        if pos is None or pos + 1 >= len(insts):
            return None
        return insts[pos + 1]

    def trans_after(self, d: str, conf: str) -> str | None:
        """t(conf) at ``d``: the transitional configuration installed directly after ``conf``."""
        nxt = self.next_install(d, conf)
        return nxt.conf if nxt is not None and not nxt.regular else None

    def next_regular(self, d: str, conf: str) -> Install | None:
        """The first regular configuration ``d`` installed after ``conf``."""
        pos = self._install_pos.get((d, conf))
        if pos is None:
            return None
        for inst in self.installs[d][pos + 1 :]:
            if inst.regular:
                return inst
        return None

    def survives(self, d: str, conf: str) -> bool:
        """True unless ``d`` fails in ``conf``.

        ``d`` fails in ``conf`` when it never installed it, or it crashed or the trace ended
        before it installed the next regular configuration after ``conf``.
        """
        return self.next_regular(d, conf) is not None

    def svc_rank(self, mid: str, default: str = "UNRELIABLE") -> int:
        """Service level of ``mid`` as sent (``default`` if it was never sent)."""
        s = self.sends.get(mid)
        return SVC_RANK[s.svc if s is not None else default]

    def sender_daemon(self, mid: str) -> str | None:
        s = self.sends.get(mid)
        return s.d if s is not None else None
