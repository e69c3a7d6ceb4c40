"""EVS configuration properties EVS-2.1 .. EVS-2.6, checked over daemon configurations.

As in Spread/Totem, EVS configurations are the daemon-level ring configurations: the processes
are daemon tokens ``name:incarnation``. Regular ids are ordered by their ``epoch`` field; a
transitional install carries the epoch of the regular configuration it precedes, so within one
daemon the key ``(epoch, 0 for transitional / 1 for regular)`` must strictly increase.
"""

from __future__ import annotations

import itertools

from sim.checkers.base import Violation, fmt
from sim.trace import Install, Trace


def _key(inst: Install) -> tuple[int, int]:
    return (inst.epoch, 1 if inst.regular else 0)


def check_evs_2_1(trace: Trace) -> list[Violation]:
    """EVS-2.1: a daemon is a member of every configuration it installs."""
    return [
        Violation("EVS-2.1", f"daemon {i.d} installed {i.conf} not being in {fmt(i.members)}", i.t)
        for insts in trace.installs.values()
        for i in insts
        if i.d not in i.members
    ]


def check_evs_2_2(trace: Trace) -> list[Violation]:
    """EVS-2.2: installs with the same configuration id agree on members, kind and epoch."""
    out: list[Violation] = []
    for insts in trace.installs.values():
        for i in insts:
            ref = trace.confs[i.conf]
            if i is ref:
                continue
            if sorted(i.members) != sorted(ref.members):
                msg = (
                    f"{i.conf} installed by {i.d} with {fmt(i.members)} "
                    f"but by {ref.d} with {fmt(ref.members)}"
                )
                out.append(Violation("EVS-2.2", msg, i.t))
            if (i.kind, i.epoch) != (ref.kind, ref.epoch):
                msg = (
                    f"{i.conf} installed by {i.d} as {i.kind}/epoch {i.epoch} "
                    f"but by {ref.d} as {ref.kind}/epoch {ref.epoch}"
                )
                out.append(Violation("EVS-2.2", msg, i.t))
    return out


def check_evs_2_3(trace: Trace) -> list[Violation]:
    """EVS-2.3: per daemon, configuration ids strictly increase (by epoch, transitional before
    the regular configuration of the same epoch)."""
    out: list[Violation] = []
    for d, insts in trace.installs.items():
        for prev, cur in itertools.pairwise(insts):
            if _key(cur) <= _key(prev):
                msg = (
                    f"daemon {d} installed {cur.kind} {cur.conf} (epoch {cur.epoch}) after "
                    f"{prev.kind} {prev.conf} (epoch {prev.epoch})"
                )
                out.append(Violation("EVS-2.3", msg, cur.t))
    return out


def _check_between(d: str, c1: Install, c2: Install, trans: list[Install]) -> list[Violation]:
    if len(trans) != 1:
        msg = f"daemon {d} went {c1.conf} -> {c2.conf} with {len(trans)} transitional installs"
        return [Violation("EVS-2.4", msg, c2.t)]
    t = trans[0]
    allowed = set(c1.members) & set(c2.members)
    if d in t.members and set(t.members) <= allowed:
        return []
    msg = (
        f"daemon {d}: transitional {t.conf} members {fmt(t.members)} are not within "
        f"{c1.conf} and {c2.conf} (common {fmt(allowed)}) or miss the daemon"
    )
    return [Violation("EVS-2.4", msg, t.t)]


def check_evs_2_4(trace: Trace) -> list[Violation]:
    """EVS-2.4: a daemon's first event is a regular install (its first join); between two
    consecutive regular installs c1 -> c2 there is exactly one transitional t with
    d in t.members and t.members within c1.members & c2.members."""
    out: list[Violation] = []
    for d, evs in trace.daemon_events.items():
        first = evs[0]
        if not isinstance(first, Install) or not first.regular:
            msg = f"daemon {d}'s first event is not a regular install"
            out.append(Violation("EVS-2.4", msg, first.t))
        prev: Install | None = None
        trans: list[Install] = []
        for inst in trace.installs.get(d, ()):
            if not inst.regular:
                trans.append(inst)
                if len(trans) == 2:
                    msg = f"daemon {d} installed two transitional configurations in a row"
                    out.append(Violation("EVS-2.4", msg, inst.t))
                continue
            if prev is not None:
                out.extend(_check_between(d, prev, inst, trans))
            prev, trans = inst, []
    return out


def _neighbours(trace: Trace, d: str, t: Install) -> tuple[str | None, str | None]:
    insts = trace.installs[d]
    pos = trace.install_pos(d, t.conf)
    assert pos is not None
    before = next((i.conf for i in reversed(insts[:pos]) if i.regular), None)
    after = next((i.conf for i in insts[pos + 1 :] if i.regular), None)
    return before, after


def check_evs_2_5(trace: Trace) -> list[Violation]:
    """EVS-2.5: daemons that install the same transitional t came from the same regular c1 and
    (if they install one) go to the same regular c2."""
    out: list[Violation] = []
    came: dict[str, tuple[str, str | None]] = {}
    went: dict[str, tuple[str, str]] = {}
    for insts in trace.installs.values():
        for t in insts:
            if t.regular:
                continue
            before, after = _neighbours(trace, t.d, t)
            ref = came.setdefault(t.conf, (t.d, before))
            if ref[1] != before:
                msg = f"{t.conf}: {t.d} came from {before} but {ref[0]} came from {ref[1]}"
                out.append(Violation("EVS-2.5", msg, t.t))
            if after is None:
                continue
            other = went.setdefault(t.conf, (t.d, after))
            if other[1] != after:
                msg = f"{t.conf}: {t.d} went on to {after} but {other[0]} went on to {other[1]}"
                out.append(Violation("EVS-2.5", msg, t.t))
    return out


def _installs_between(trace: Trace, p: str, ca: str, cb_key: tuple[int, int]) -> list[Install]:
    """Configurations ``p`` installed after ``ca`` whose key does not exceed ``cb_key``."""
    pos = trace.install_pos(p, ca)
    assert pos is not None
    out: list[Install] = []
    for inst in trace.installs[p][pos + 1 :]:
        if _key(inst) > cb_key:
            break
        out.append(inst)
    return out


def _check_pair(trace: Trace, mid: str, p: str, ca: Install, q: str, cb: Install) -> str | None:
    """m delivered by p while ``ca`` was installed and by q while ``cb`` was (key(ca) < key(cb))."""
    q_cb = trace.install_pos(q, cb.conf)
    assert q_cb is not None
    for inst in _installs_between(trace, p, ca.conf, _key(cb)):
        q_pos = trace.install_pos(q, inst.conf)
        if q_pos is not None and q_pos <= q_cb:
            return (
                f"{mid} is delivered before {inst.conf} at {p} (in {ca.conf}) "
                f"but after it at {q} (in {cb.conf})"
            )
    return None


def check_evs_2_6(trace: Trace) -> list[Violation]:
    """EVS-2.6: for daemons p, q that both install c', a message both deliver is before c' at p
    iff it is before c' at q (configuration changes are totally ordered with messages)."""
    out: list[Violation] = []
    for mid, dels in trace.delivers_of.items():
        where: dict[str, list[tuple[str, Install]]] = {}
        for e in dels:
            cur = trace.current_install(e)
            if cur is not None:
                where.setdefault(cur.conf, []).append((e.d, cur))
        if len(where) < 2:
            continue
        groups = sorted(where.values(), key=lambda lst: _key(lst[0][1]))
        for a, ga in enumerate(groups):
            for gb in groups[a + 1 :]:
                for p, ca in ga:
                    for q, cb in gb:
                        msg = _check_pair(trace, mid, p, ca, q, cb) if p != q else None
                        if msg is not None:
                            t = max(e.t for e in dels if e.d in (p, q))
                            out.append(Violation("EVS-2.6", msg, t))
    return out
