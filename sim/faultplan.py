"""The fault kinds: what a ``FaultPlan`` may say, whether one is valid, and what it does to the
links between the daemons and when its effect ends.

Owns ``FaultPlan`` (one scheduled fault), the kinds with their arguments (``FAULT_ARGS``; which
kinds replace or add to the static cuts, which argument is a duration, the clock rate limits),
the daemon names of a run (``daemon_names``) and partitions given as sides (``side_labels``),
what is wrong with a plan (``fault_problem``; ``plan_problem`` and ``core_problem`` for the
faults of a run around a ``core`` phase), and a plan's reach: the links it cuts
(``fault_links``), when it ends on its own (``fault_end``), a swizzle's steps.
docs/simulation.md has the table of kinds. It does not own the run's other options
(``sim.options``), drawing faults from a seed (``sim.draws``), or carrying them out in a run
(``sim.faults``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# Fault kinds and their arguments: "name" a daemon name, "ms" a positive duration in ms, "nat"
# an integer >= 0, "rate" a probability, "factor" a clock rate in [MIN_CLOCK_RATE,
# MAX_CLOCK_RATE]; a last "names*" is one or more distinct daemon names, "names?" none or a
# permutation of every daemon, "pairs*" one or more pairs of daemon names (links).
FAULT_ARGS: dict[str, tuple[str, ...]] = {
    "partition": (),  # one side label (int >= 0) per daemon, in daemon order: checked apart
    "asymmetric": ("name", "name"),  # frames from the first to the second are dropped
    "heal": (),
    "crash": ("name", "ms"),  # down for ms, then restarted as a new incarnation
    "leave": ("name", "ms"),
    "pause": ("name", "ms"),
    "hold": ("name", "ms"),
    "loss": ("rate", "ms"),
    # Partition shapes (Jepsen's nemeses). Like "partition", each replaces the static cuts.
    "isolate": ("name",),  # the daemon alone on one side
    "majority": ("names*",),  # these daemons (a strict majority) on one side, the rest apart
    "ring": ("names?",),  # majorities ring over this order (default d1..dN): non-transitive
    "bridge": ("name",),  # the others split in two halves that only this daemon joins
    # Link cuts: added to the static cuts (like "asymmetric"), both directions.
    "cut": ("pairs*",),  # exactly these links: any non-transitive cut
    # Timed faults: they end on their own timers, not at a "heal".
    "flap": ("name", "ms", "ms"),  # isolated and reconnected every PERIOD for DURATION
    "flaplink": ("name", "name", "ms", "ms"),  # one link cut and restored every PERIOD
    "slow": ("name", "name", "ms", "ms"),  # EXTRA latency on a link (both ways) for DURATION
    "lossy": ("name", "name", "rate", "ms"),  # RATE loss on a link (both ways) for DURATION
    "swizzle": ("ms", "names*"),  # FoundationDB: clog each in turn every STEP, restore reversed
    "clock": ("name", "nat", "factor"),  # the daemon's clock jumps ahead and runs at a rate
    # Continuing-fault liveness: these daemons stay connected for DURATION (L4).
    "core": ("ms", "names*"),
}
# Kinds that replace the static cut set, and kinds that add links to it.
CUT_SHAPES = frozenset(("partition", "isolate", "majority", "ring", "bridge"))
CUT_LINKS = frozenset(("asymmetric", "cut"))
# The argument that is a fault's duration (what shrinking shortens), by kind.
DURATION_ARG: dict[str, int] = {
    "crash": 1,
    "leave": 1,
    "pause": 1,
    "hold": 1,
    "loss": 1,
    "flap": 2,
    "flaplink": 3,
    "slow": 3,
    "lossy": 3,
    "swizzle": 0,
    "core": 0,
}
MIN_CLOCK_RATE = 0.05
MAX_CLOCK_RATE = 20.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """One scheduled fault: at ``at_ms`` do ``what`` with ``args`` (see faults.py)."""

    at_ms: int
    what: str
    args: tuple[str | int | float, ...] = ()

    def sides(self, names: list[str]) -> list[list[str]]:
        """A partition's sides (daemon names), in order of their labels."""
        labels = sorted({int(a) for a in self.args})
        return [[n for n, a in zip(names, self.args, strict=True) if a == x] for x in labels]


def daemon_names(daemons: int) -> list[str]:
    return [f"d{i + 1}" for i in range(daemons)]


def side_labels(sides: list[list[str]], names: list[str]) -> tuple[int, ...]:
    """A partition given as sides (lists of daemon names) as one side label per daemon. Every
    daemon must be on exactly one side: overlapping sides would be a non-transitive cut and an
    unlisted daemon an ambiguous one, so both raise ``ValueError`` naming the daemon."""
    if len(sides) < 2:
        raise ValueError(f"a partition needs at least two sides, got {sides!r}")
    label: dict[str, int] = {}
    for i, side in enumerate(sides):
        if not side:
            raise ValueError(f"side {i + 1} of the partition is empty")
        for name in side:
            if name not in names:
                raise ValueError(f"{name!r} is no daemon of this run ({', '.join(names)})")
            if name in label:
                raise ValueError(
                    f"{name} is on two sides (sides {label[name] + 1} and {i + 1}): sides must "
                    "not overlap (a non-transitive cut cannot be written as sides)"
                )
            label[name] = i
    missing = [n for n in names if n not in label]
    if missing:
        raise ValueError(f"{', '.join(missing)} on no side: list every daemon on exactly one side")
    return tuple(label[n] for n in names)


# ------------------------------------------------------------------------ validity of a plan


def plan_problem(
    plan: FaultPlan, faults: tuple[FaultPlan, ...], daemons: int, safety_ms: int
) -> str:
    """What is wrong with ``plan`` among ``faults`` ('' if nothing): ``fault_problem``, and for
    a core phase also that it ends in the safety phase and keeps its core (``core_problem``)."""
    problem = fault_problem(plan, daemons, safety_ms)
    if problem or plan.what != "core":
        return problem
    if fault_end(plan) > safety_ms:
        return f"must end in the safety phase (at_ms + duration <= {safety_ms})"
    return core_problem(plan, faults, daemon_names(daemons))


def fault_problem(plan: FaultPlan, daemons: int, safety_ms: int) -> str:
    """What is wrong with ``plan`` in a run of ``daemons`` daemons ('' if nothing)."""
    if not isinstance(plan, FaultPlan):
        return "is not a FaultPlan"
    if plan.what not in FAULT_ARGS:
        return f"is of unknown kind {plan.what!r} (known: {', '.join(FAULT_ARGS)})"
    at = plan.at_ms
    if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at < safety_ms:
        return f"must happen in the safety phase, 0 <= at_ms < {safety_ms}"
    args = plan.args
    if plan.what == "partition":
        if len(args) != daemons or not all(_is_int(a) and int(a) >= 0 for a in args):
            return f"needs one side label (an integer >= 0) per daemon ({daemons}), got {args!r}"
        return ""
    kinds = FAULT_ARGS[plan.what]
    tail = kinds[-1] if kinds and kinds[-1][-1] in "*?" else ""
    fixed = kinds[:-1] if tail else kinds
    if not tail and len(args) != len(kinds):
        return f"needs {len(kinds)} arguments ({', '.join(kinds)}), got {args!r}"
    if tail and len(args) < len(fixed) + (tail != "names?"):
        return f"needs {', '.join(kinds)}, got {args!r}"
    names = daemon_names(daemons)
    for kind, arg in zip(fixed, args, strict=False):
        problem = _arg_problem(kind, arg, names)
        if problem:
            return problem
    if tail:
        problem = _tail_problem(tail, args[len(fixed) :], names)
        if problem:
            return problem
    if plan.what in ("asymmetric", "flaplink", "slow", "lossy") and args[0] == args[1]:
        return f"cuts a daemon from itself: {args!r}"
    return _shape_problem(plan, names)


def _arg_problem(kind: str, arg: object, names: list[str]) -> str:
    if kind == "name" and arg not in names:
        return f"names no daemon of this run: {arg!r} (d1..d{len(names)})"
    if kind in ("ms", "nat"):
        low = 1 if kind == "ms" else 0
        if not isinstance(arg, int) or isinstance(arg, bool) or arg < low:
            if kind == "ms":
                return f"needs a positive duration in ms, got {arg!r}"
            return f"needs an integer >= 0 (ms), got {arg!r}"
    if kind == "rate" and not (
        isinstance(arg, int | float) and not isinstance(arg, bool) and 0 <= arg <= 1
    ):
        return f"needs a loss rate in [0, 1], got {arg!r}"
    if kind == "factor" and not (
        isinstance(arg, int | float)
        and not isinstance(arg, bool)
        and MIN_CLOCK_RATE <= arg <= MAX_CLOCK_RATE
    ):
        return f"needs a clock rate in [{MIN_CLOCK_RATE}, {MAX_CLOCK_RATE:g}], got {arg!r}"
    return ""


def _tail_problem(tail: str, rest: tuple[object, ...], names: list[str]) -> str:
    unknown = [a for a in rest if a not in names]
    if unknown:
        return f"names no daemon of this run: {unknown[0]!r} (d1..d{len(names)})"
    if tail == "pairs*":
        if len(rest) % 2:
            return f"needs pairs of daemon names (links), got {len(rest)} names"
        ends = zip(rest[::2], rest[1::2], strict=True)
        pairs = [tuple(sorted((str(a), str(b)))) for a, b in ends]
        if any(a == b for a, b in pairs):
            return "cuts a daemon from itself"
        if len(set(pairs)) != len(pairs):
            return "names a link twice"
        return ""
    if len(set(rest)) != len(rest):
        return f"names a daemon twice: {list(rest)!r}"
    if tail == "names?" and rest and len(rest) != len(names):
        return f"needs no daemon or every daemon once (a ring order), got {list(rest)!r}"
    return ""


def _shape_problem(plan: FaultPlan, names: list[str]) -> str:
    n = len(names)
    if plan.what == "majority" and not n / 2 < len(plan.args) < n:
        return (
            f"needs a strict majority of the {n} daemons and not all of them, got {len(plan.args)}"
        )
    if plan.what == "ring" and n < 4:
        return f"needs at least 4 daemons (with {n} every daemon sees a majority of all)"
    if plan.what == "bridge" and n < 3:
        return f"needs at least 3 daemons (a bridge and two sides), got {n}"
    if (plan.what in CUT_SHAPES or plan.what in ("flap", "swizzle")) and n < 2:
        return "needs at least 2 daemons"
    return ""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------- links of a fault

Link = tuple[str, str]


def link(a: str, b: str, names: list[str]) -> Link:
    """The undirected link between ``a`` and ``b``, in daemon order."""
    return (a, b) if names.index(a) < names.index(b) else (b, a)


def isolation_links(daemon: str, names: list[str]) -> list[Link]:
    return [link(daemon, other, names) for other in names if other != daemon]


def ring_links(order: list[str], names: list[str]) -> list[Link]:
    """Jepsen's majorities ring over ``order``: every daemon keeps the links to its nearest
    neighbours on the ring, enough of them that it sees a majority (itself included), and loses
    the others; no two daemons see the same majority, so the cut is not transitive."""
    n = len(order)
    reach = math.ceil((n // 2) / 2)  # neighbours kept on each side: 1 + 2 * reach > n / 2
    cut: list[Link] = []
    for i in range(n):
        for j in range(i + 1, n):
            if min(j - i, n - (j - i)) > reach:
                cut.append(link(order[i], order[j], names))
    return sorted(cut, key=lambda ln: (names.index(ln[0]), names.index(ln[1])))


def bridge_sides(bridge: str, names: list[str]) -> tuple[list[str], list[str]]:
    """The two sides a bridge joins: the other daemons in name order, split in halves."""
    others = [n for n in names if n != bridge]
    half = (len(others) + 1) // 2
    return others[:half], others[half:]


def fault_links(plan: FaultPlan, names: list[str]) -> list[Link]:
    """The links a fault cuts (or, for ``slow`` and ``lossy``, degrades), each once and in
    daemon order, both directions; ``asymmetric`` gives its one directed link (from, to). A
    ``swizzle`` gives every link it cuts at its peak; a ``flap`` the links it toggles."""
    args = plan.args
    what = plan.what
    if what == "partition":
        return [
            (a, b)
            for i, a in enumerate(names)
            for j, b in enumerate(names)
            if i < j and args[i] != args[j]
        ]
    if what == "asymmetric":
        return [(str(args[0]), str(args[1]))]
    if what in ("isolate", "flap"):
        return isolation_links(str(args[0]), names)
    if what == "majority":
        inside = {str(a) for a in args}
        return [
            (a, b)
            for i, a in enumerate(names)
            for b in names[i + 1 :]
            if (a in inside) != (b in inside)
        ]
    if what == "ring":
        return ring_links([str(a) for a in args] or names, names)
    if what == "bridge":
        left, right = bridge_sides(str(args[0]), names)
        return sorted(link(a, b, names) for a in left for b in right)
    if what == "cut":
        pairs = {link(str(a), str(b), names) for a, b in zip(args[::2], args[1::2], strict=True)}
        return sorted(pairs, key=lambda ln: (names.index(ln[0]), names.index(ln[1])))
    if what in ("flaplink", "slow", "lossy"):
        return [link(str(args[0]), str(args[1]), names)]
    if what == "swizzle":
        links: set[Link] = set()
        for d in args[1:]:
            links.update(isolation_links(str(d), names))
        return sorted(links, key=lambda ln: (names.index(ln[0]), names.index(ln[1])))
    return []


def fault_end(plan: FaultPlan) -> float:
    """When a fault's effect ends on its own (``inf``: at the next heal or never)."""
    args = plan.args
    if plan.what in ("crash", "leave", "pause", "hold", "loss", "core"):
        return plan.at_ms + int(args[1] if plan.what != "core" else args[0])
    if plan.what in ("flap", "flaplink", "slow", "lossy"):
        return plan.at_ms + int(args[-1])
    if plan.what == "swizzle":
        return plan.at_ms + 2 * (len(args) - 1) * int(args[0])
    return math.inf


def swizzle_steps(plan: FaultPlan) -> list[tuple[int, str, bool]]:
    """A swizzle's schedule: (at_ms, daemon, cut) for each daemon clogged in turn every step,
    then restored in reverse order."""
    step = int(plan.args[0])
    order = [str(d) for d in plan.args[1:]]
    k = len(order)
    steps = [(plan.at_ms + i * step, d, True) for i, d in enumerate(order)]
    steps += [(plan.at_ms + (k + j) * step, d, False) for j, d in enumerate(reversed(order))]
    return steps


def core_problem(core: FaultPlan, others: Iterable[FaultPlan], names: list[str]) -> str:
    """What keeps a ``core`` phase from being one: a fault that cuts a link between two core
    daemons, or stops, pauses, holds or skews a core daemon, while the phase lasts (static cuts
    made before it are fine: the phase starts by restoring the core's links), a global loss
    burst during it, or another core phase overlapping it ('' if nothing)."""
    start, end = core.at_ms, fault_end(core)
    members = {str(a) for a in core.args[1:]}
    for plan in others:
        if plan is core:
            continue
        overlaps = plan.at_ms < end and fault_end(plan) > start
        if plan.what in CUT_SHAPES or plan.what in CUT_LINKS:
            overlaps = start <= plan.at_ms < end
        if not overlaps:
            continue
        where = f"{plan.what} at {plan.at_ms} ms"
        if plan.what == "core":
            return f"overlaps another core phase ({where})"
        if plan.what == "loss":
            return f"overlaps a loss burst on every link ({where})"
        if plan.what in ("crash", "leave", "pause", "hold") and plan.args[0] in members:
            return f"loses core daemon {plan.args[0]} ({where})"
        if plan.what == "clock" and plan.args[0] in members and plan.args[2] != 1:
            return f"skews the clock of core daemon {plan.args[0]} ({where})"
        cut = [ln for ln in fault_links(plan, names) if ln[0] in members and ln[1] in members]
        if cut:
            return f"cuts core link {cut[0][0]}-{cut[0][1]} ({where})"
    return ""
