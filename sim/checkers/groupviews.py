"""Group views against the daemon configurations they follow: SP-VSSET, SP-TRANS-PAIR, GV-VIEWS.

Names (protocol/services.md sections 3 and 4): a regular view's gid is ``<conf>/<group>/<n>``,
``<conf>`` the regular daemon configuration its receiver's daemon had installed when the view
was delivered (a NETWORK view at the install of ``R`` is ``R/<group>/1``). A transitional view's
gid is ``<prev gid> > <next gid>``: the regular view of the group its receiver got last and the
one it gets next; its ``members`` are the members moving on with the receiver between the two.

The message-level guarantees that views bound (GV-VS, GV-SAFE) live in
:mod:`sim.checkers.viewsync`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from sim.checkers.base import Violation, fmt, fmt_seq
from sim.trace import MEMBER_CAUSES, GView, Install, Trace

TRANS_SEP = " > "  # transitional gid: "<prev regular gid> > <next regular gid>"
Origin = tuple[str | None, str | None]  # (previous regular gid, transitional conf before R)


def regular_conf(trace: Trace, gid: str, group: str) -> str | None:
    """The regular configuration a regular gid ``<conf>/<group>/<n>`` names, or None.

    The known group name is stripped from the end (group names may contain ``/``) and what is
    left must be a regular configuration some daemon installed.
    """
    head, sep, n = gid.rpartition("/")
    suffix = "/" + group
    if not sep or not (n.isascii() and n.isdigit()) or int(n) < 1 or not head.endswith(suffix):
        return None
    conf = head[: -len(suffix)]
    return conf if trace.is_regular(conf) else None


def split_trans(gid: str) -> tuple[str, str] | None:
    """``(prev gid, next gid)`` of a transitional gid, or None if it is not in that form."""
    parts = gid.split(TRANS_SEP)
    if len(parts) != 2 or not all(parts) or any(" " in part for part in parts):
        return None
    return parts[0], parts[1]


def regular_views(trace: Trace) -> dict[tuple[str, str], list[GView]]:
    """(group, gid) -> every delivered copy of that regular view, in time order."""
    out: dict[tuple[str, str], list[GView]] = {}
    for gvs in trace.gviews.values():
        for gv in gvs:
            if gv.kind == "regular":
                out.setdefault((gv.group, gv.gid), []).append(gv)
    for copies in out.values():
        copies.sort(key=lambda gv: gv.idx)
    return out


def _trans_before(trace: Trace, gv: GView) -> str | None:
    """The transitional configuration ``gv.d`` installed directly before the view's conf."""
    conf = regular_conf(trace, gv.gid, gv.group)
    pos = trace.install_pos(gv.d, conf) if conf is not None else None
    if not pos:
        return None
    before = trace.installs[gv.d][pos - 1]
    return None if before.regular else before.conf


# ---------------------------------------------------------------------------------- SP-VSSET


def _vs_shape(gv: GView) -> str | None:
    sets = [frozenset(v) for v in gv.vs_sets]
    if gv.cause == "NETWORK":
        union: set[str] = set().union(*sets)
        if sum(len(v) for v in sets) != len(union):
            return f"vs_sets {gv.vs_sets} overlap"
        if union != set(gv.members):
            return f"vs_sets cover {fmt(union)}, not the members {fmt(gv.members)}"
        if not any(gv.p in v for v in sets):
            return f"no vs_set contains the receiver {gv.p}"
        return None
    changed = frozenset(gv.changed)
    if sum(1 for v in sets if v == changed) != 1:
        return f"{gv.cause}: vs_sets {gv.vs_sets} do not contain exactly one {fmt(changed)}"
    return None


def network_origins(trace: Trace) -> dict[tuple[str, str], dict[str, Origin]]:
    """(group, gid) of each NETWORK view -> each receiver q -> (prev(q), T(q)).

    prev(q): the gid of the last regular view of the group q got before this one (None if it
    got none, or left the group since); T(q): the transitional configuration q's daemon
    installed directly before the view's regular configuration.
    """
    out: dict[tuple[str, str], dict[str, Origin]] = {}
    for p, gvs in trace.gviews.items():
        last: dict[str, str | None] = {}
        for gv in gvs:
            if gv.kind == "self_leave":
                last[gv.group] = None
            elif gv.kind == "regular":
                if gv.cause == "NETWORK":
                    origin = (last.get(gv.group), _trans_before(trace, gv))
                    out.setdefault((gv.group, gv.gid), {}).setdefault(p, origin)
                last[gv.group] = gv.gid
    return out


def _origin_text(origin: Origin) -> str:
    prev, trans = origin
    return f"(from {prev or 'no view'}, through {trans or 'no transitional configuration'})"


def _vs_content(gv: GView, origins: dict[str, Origin]) -> str | None:
    """Received members share a vs_set iff they have the same (prev, T)."""
    set_of: dict[str, int] = {}
    for i, vs in enumerate(gv.vs_sets):
        for q in vs:
            if q in origins:
                set_of.setdefault(q, i)
    by_set: dict[int, tuple[str, Origin]] = {}
    by_origin: dict[Origin, tuple[str, int]] = {}
    for q in sorted(set_of):
        i, origin = set_of[q], origins[q]
        mate = by_set.setdefault(i, (q, origin))
        if mate[1] != origin:
            return (
                f"vs_set {fmt_seq(gv.vs_sets[i])} holds {mate[0]} {_origin_text(mate[1])} "
                f"and {q} {_origin_text(origin)}"
            )
        other = by_origin.setdefault(origin, (q, i))
        if other[1] != i:
            return f"{other[0]} and {q} are in different vs_sets but both {_origin_text(origin)}"
    return None


def check_sp_vsset(trace: Trace) -> list[Violation]:
    """SP-VSSET: NETWORK views have disjoint vs_sets covering the members, one containing the
    receiver, and two members that received the view share a vs_set iff they come from the same
    previous regular view of the group through the same transitional daemon configuration;
    JOIN/LEAVE/DISCONNECT views have exactly one vs_set, equal to ``changed``."""
    out: list[Violation] = []
    origins = network_origins(trace)
    judged: set[tuple[str, str, tuple[tuple[str, ...], ...]]] = set()
    for p, gvs in trace.gviews.items():
        for gv in gvs:
            if gv.kind != "regular":
                continue
            msg = _vs_shape(gv)
            key = (gv.group, gv.gid, gv.vs_sets)
            if msg is None and gv.cause == "NETWORK" and key not in judged:
                judged.add(key)
                msg = _vs_content(gv, origins.get((gv.group, gv.gid), {}))
            if msg is not None:
                where = f"view {gv.gid} of {gv.group} at {p}"
                out.append(Violation("SP-VSSET", f"{where}: {msg}", gv.t))
    return out


# ----------------------------------------------------------------------------- SP-TRANS-PAIR


def _not_in(members: Collection[str], view: GView) -> set[str]:
    return set(members) - set(view.members)


def _trans_issues(tv: GView, prev: GView | None, pending: GView | None) -> Iterator[str]:
    """What is wrong with transitional view ``tv``, given the receiver's last regular view."""
    if pending is not None:
        yield f"{tv.p} got two transitional views of {tv.group} without a regular between"
    parts = split_trans(tv.gid)
    if parts is None:
        yield f"transitional view {tv.gid!r} of {tv.group} at {tv.p} is not '<prev> > <next>'"
        return
    where = f"transitional view {tv.gid} of {tv.group} at {tv.p}"
    if prev is None:
        yield f"{where} follows no regular view of {tv.group}"
    elif parts[0] != prev.gid:
        yield f"{where} names previous view {parts[0]}, but {tv.p} last got {prev.gid}"
    if tv.p not in tv.members:
        yield f"{where} does not list its receiver: {fmt_seq(tv.members)}"
    if prev is not None and (extra := _not_in(tv.members, prev)):
        yield f"{where} lists {fmt(extra)}, not members of the previous view {prev.gid}"


def _next_issues(tv: GView, reg: GView) -> Iterator[str]:
    parts = split_trans(tv.gid)
    if parts is None:
        return
    where = f"transitional view {tv.gid} of {tv.group} at {tv.p}"
    if parts[1] != reg.gid:
        yield f"{where} names next view {parts[1]}, but {tv.p} got {reg.gid} next"
    extra = _not_in(tv.members, reg)
    if extra:
        yield f"{where} lists {fmt(extra)}, not members of the next view {reg.gid}"


def _dangling(trace: Trace, p: str, pending: dict[str, GView]) -> list[Violation]:
    """Complete traces: an open connection of a live daemon closes every transition."""
    end = trace.end
    if end is None or p in trace.closes:
        return []
    return [
        Violation(
            "SP-TRANS-PAIR",
            f"transitional view {tv.gid} of {g} at {p} is never followed by a regular view",
            end.t,
        )
        for g, tv in sorted(pending.items())
        if tv.d in end.live and tv.d not in trace.crashes
    ]


def check_sp_trans_pair(trace: Trace) -> list[Violation]:
    """SP-TRANS-PAIR: per connection and group, a transitional view ``<prev> > <next>`` follows
    the regular view ``prev`` and is followed by the regular view ``next`` (or a self_leave)
    before any other view of the group; it lists its receiver, and only members of both; on
    complete traces an open connection of a live daemon gets that regular view."""
    out: list[Violation] = []
    for p, gvs in trace.gviews.items():
        last: dict[str, GView] = {}
        pending: dict[str, GView] = {}
        for gv in gvs:
            issues: Iterator[str] = iter(())
            if gv.kind == "transitional":
                issues = _trans_issues(gv, last.get(gv.group), pending.get(gv.group))
                pending[gv.group] = gv
            elif gv.kind == "regular":
                tv = pending.pop(gv.group, None)
                if tv is not None:
                    issues = _next_issues(tv, gv)
                last[gv.group] = gv
            else:
                pending.pop(gv.group, None)
                last.pop(gv.group, None)
            out.extend(Violation("SP-TRANS-PAIR", msg, gv.t) for msg in issues)
        out.extend(_dangling(trace, p, pending))
    return out


# ---------------------------------------------------------------------------------- GV-VIEWS


def _installed_at_views(trace: Trace) -> dict[int, Install | None]:
    """idx of each regular gview -> the configuration its daemon had installed then."""
    current: dict[str, Install] = {}
    out: dict[int, Install | None] = {}
    for e in trace.events:
        if isinstance(e, Install):
            current[e.d] = e
        elif isinstance(e, GView) and e.kind == "regular":
            out[e.idx] = current.get(e.d)
    return out


def _view_conf(trace: Trace, view: GView) -> tuple[str, str | None]:
    """(conf, None) for a well-formed regular gid, else ("", what is wrong with it)."""
    conf = regular_conf(trace, view.gid, view.group)
    if conf is None:
        return "", "does not name an installed regular configuration as <conf>/<group>/<n>"
    if view.cause == "NETWORK" and not view.gid.endswith("/1"):
        return "", f"is a NETWORK view of {conf} but not {conf}/{view.group}/1"
    return conf, None


def _step(trace: Trace, d: str, conf: str) -> str | None:
    """What ``d`` did after ``conf``: the next configuration it installed, "" if it is still in
    ``conf`` alive and connected at ``end``, or None (unknown: the trace stops first)."""
    nxt = trace.next_install(d, conf)
    if nxt is not None:
        return nxt.conf
    end = trace.end
    return "" if end is not None and d in end.live and d not in trace.crashes else None


def _bound(trace: Trace, view: GView, conf: str, qd: str, witnesses: set[str]) -> bool:
    """Must daemon ``qd`` (which installed ``conf``) deliver ``view`` to its member connections?

    A NETWORK view comes with the install itself. A JOIN/LEAVE/DISCONNECT view comes with its
    operation, which a daemon delivers in ``conf`` (EVS-4) when it leaves ``conf`` the same way
    as a daemon that delivered the view; delivered in a transitional configuration, the
    operation changes the membership silently.
    """
    if view.cause not in MEMBER_CAUSES:
        return trace.end is not None or trace.next_regular(qd, conf) is not None
    step = _step(trace, qd, conf)
    return step is not None and any(_step(trace, w, conf) == step for w in witnesses)


def _due(trace: Trace, view: GView, conf: str, qd: str) -> int:
    """Trace position by which ``qd`` has delivered ``view``, if it must (see ``_bound``)."""
    pos = trace.install_pos(qd, conf)
    if view.cause not in MEMBER_CAUSES and pos is not None:
        return trace.installs[qd][pos].idx
    nxt = trace.next_install(qd, conf)
    return nxt.idx if nxt is not None else len(trace.events)


def _missed(trace: Trace, copies: list[GView], conf: str) -> Iterator[str]:
    view = copies[0]
    receivers = {gv.p for gv in copies}
    witnesses = {gv.d for gv in copies}
    for q in view.members:
        opened = trace.opens.get(q)
        if q in receivers or opened is None:
            continue
        qd = opened.d
        if qd in trace.crashes or trace.install_pos(qd, conf) is None:
            continue
        closed = trace.closes.get(q)
        if closed is not None and closed.idx < _due(trace, view, conf, qd):
            continue
        if _bound(trace, view, conf, qd, witnesses):
            yield (
                f"{q} (on {qd}, which installed {conf}) never got {view.cause} view {view.gid} "
                f"of {view.group} that lists it; {fmt(receivers)} got it"
            )


def check_gv_views(trace: Trace) -> list[Violation]:
    """GV-VIEWS: a regular view's gid is ``<conf>/<group>/<n>`` (``n`` = 1 for NETWORK views),
    delivered while the receiver's daemon has that regular configuration installed (so none in
    a transitional configuration); and every member it lists gets it, unless the member closes
    before its daemon must deliver it, its daemon crashes or never installs ``conf``, or the
    trace stops before it must have (see ``_bound``)."""
    out: list[Violation] = []
    installed = _installed_at_views(trace)
    for (group, gid), copies in regular_views(trace).items():
        first = copies[0]
        conf, issue = _view_conf(trace, first)
        if issue is not None:
            out.append(Violation("GV-VIEWS", f"view {gid!r} of {group} {issue}", first.t))
            continue
        for gv in copies:
            now = installed.get(gv.idx)
            if now is None or now.conf != conf:
                held = f"{now.kind} {now.conf}" if now is not None else "nothing"
                msg = f"{gv.p} got view {gid} of {group} while {gv.d} had {held} installed"
                out.append(Violation("GV-VIEWS", msg, gv.t))
        out.extend(Violation("GV-VIEWS", msg, first.t) for msg in _missed(trace, copies, conf))
    return out
