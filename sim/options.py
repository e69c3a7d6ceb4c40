"""Run options: the whole configuration of one simulated run, and how a seed derives it.

Owns ``SimOptions`` (every knob of a run, validated: a bad value raises ``OptionsError`` naming
the field), ``FaultPlan`` and the fault kinds with their arguments, and ``random_options(seed)``,
the swarm's configuration for a seed. A seed alone reproduces a run; options that differ from
their seed's (flags, an options file) are reproduced by the full options (``sim.optionsfile``).

``random_options`` must keep giving every existing seed the very same run (CI's seeds and every
reported seed): new fields get defaults equal to the old behaviour and never draw from its
``rng`` stream; anything new that is random gets a stream of its own.

The opt-in modes (``Draws``: ``--nemesis``, ``--buggify``, ``--core``) follow the same rule: a
seed drawn with them is the seed's plain options changed by draws from streams of their own
(``nemesis-<seed>``, ``buggify-<seed>``, ``core-<seed>``), so the plain seed keeps its run and a
mode's run is reproduced by its full options (an options file), like any run that is not a
plain seed. The fault kinds, their arguments and the links each one cuts are in ``FAULT_ARGS``
and ``fault_links``; docs/simulation.md has the table.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from groupcomm.core.config import CoreConfig

# The simulator keeps the failure detector at 250 ms (the daemons ship with 1 s): its fault
# schedules (partitions, loss bursts, crashes) are sized against it, and a shorter timeout means
# more view changes, and more of the rounds the checkers exist for, per simulated second.
SIM_SUSPECT_TIMEOUT_MS = 250
QUIET_MS = 1500  # no client traffic at the end: every message must have settled by "end"

# CoreConfig settings a run may change: every one but the daemon's identity and tracing.
PROTOCOL_FIELDS: tuple[str, ...] = (
    "tick_ms",
    "heartbeat_ms",
    "suspect_timeout_ms",
    "flush_timeout_ms",
    "install_timeout_ms",
    "gather_timeout_ms",
    "window_msgs",
    "window_bytes",
    "batch_bytes",
    "max_message_bytes",
)
_CORE: dict[str, Any] = {f.name: f.default for f in fields(CoreConfig) if f.name in PROTOCOL_FIELDS}

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


class OptionsError(ValueError):
    """Options that cannot make a run; ``field`` is the offending option, which the message
    names."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


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


@dataclass(frozen=True, slots=True, kw_only=True)
class SimOptions:
    seed: int
    daemons: int = 3
    clients_per_daemon: int = 2
    groups: int = 3
    latency_min_ms: int = 1
    latency_max_ms: int = 4
    latency_tail: float = 0.02  # chance of a slow frame (x5 latency): reordering
    loss: float = 0.0
    duplication: float = 0.0
    safety_ms: int = 3000  # faults happen in [0, safety_ms)
    settle_ms: int = 3000  # after healing: workload for a while, then quiet
    quiet_ms: int = QUIET_MS  # the last part of settle_ms, without client traffic
    rate_per_client: float = 20.0  # operations per second per connection
    faults: tuple[FaultPlan, ...] = field(default=())
    churn: bool = True  # connections open/close, groups joined/left
    codec: bool = True  # every frame goes through the real msgpack codec
    # Protocol settings (groupcomm.core.config.CoreConfig), the same for every daemon.
    tick_ms: int = _CORE["tick_ms"]
    heartbeat_ms: int = _CORE["heartbeat_ms"]
    suspect_timeout_ms: int = SIM_SUSPECT_TIMEOUT_MS
    flush_timeout_ms: int = _CORE["flush_timeout_ms"]
    install_timeout_ms: int = _CORE["install_timeout_ms"]
    gather_timeout_ms: int = _CORE["gather_timeout_ms"]
    window_msgs: int = _CORE["window_msgs"]
    window_bytes: int = _CORE["window_bytes"]
    batch_bytes: int = _CORE["batch_bytes"]
    max_message_bytes: int = _CORE["max_message_bytes"]

    def __post_init__(self) -> None:
        check_options(self)

    @property
    def names(self) -> list[str]:
        return daemon_names(self.daemons)

    def protocol(self) -> dict[str, Any]:
        """The CoreConfig keyword arguments of this run's protocol settings."""
        return {name: getattr(self, name) for name in PROTOCOL_FIELDS}

    def describe(self) -> str:
        kinds = sorted({f.what for f in self.faults})
        text = (
            f"seed={self.seed} daemons={self.daemons} loss={self.loss:.2f} "
            f"dup={self.duplication:.2f} latency={self.latency_min_ms}-{self.latency_max_ms}ms "
            f"faults={len(self.faults)}({','.join(kinds)})"
        )
        if self.suspect_timeout_ms != SIM_SUSPECT_TIMEOUT_MS:
            text += f" suspect={self.suspect_timeout_ms}ms"
        changed = [
            f"{name.removesuffix('_ms')}={getattr(self, name)}"
            for name in PROTOCOL_FIELDS
            if name != "suspect_timeout_ms" and getattr(self, name) != _CORE[name]
        ]
        if changed:
            text += f" protocol({','.join(changed)})"
        return text


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


# ------------------------------------------------------------------------------- validation


def check_options(opt: SimOptions) -> None:
    """Raise ``OptionsError`` for the first option that cannot make a run."""
    for name, low in (("daemons", 1), ("clients_per_daemon", 0), ("groups", 1)):
        _at_least(name, getattr(opt, name), low)
    for name in ("latency_min_ms", "latency_max_ms", "quiet_ms"):
        _at_least(name, getattr(opt, name), 0)
    for name in ("safety_ms", "settle_ms"):
        _at_least(name, getattr(opt, name), 1)
    if opt.latency_min_ms > opt.latency_max_ms:
        raise OptionsError("latency_min_ms", "latency_min_ms must not exceed latency_max_ms")
    if opt.quiet_ms > opt.settle_ms:
        raise OptionsError("quiet_ms", f"quiet_ms must not exceed settle_ms ({opt.settle_ms})")
    for name in ("latency_tail", "loss", "duplication"):
        value = getattr(opt, name)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise OptionsError(name, f"{name} must be a probability in [0, 1], got {value!r}")
    rate = opt.rate_per_client
    if not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0:
        raise OptionsError("rate_per_client", f"rate_per_client must be positive, got {rate!r}")
    for name in ("churn", "codec"):
        if not isinstance(getattr(opt, name), bool):
            raise OptionsError(name, f"{name} must be a boolean, got {getattr(opt, name)!r}")
    try:
        CoreConfig(name="d1", incarnation=0, peers=("d1",), **opt.protocol())
    except ValueError as exc:
        text = str(exc)
        culprit = next((n for n in PROTOCOL_FIELDS if text.startswith(n)), "suspect_timeout_ms")
        raise OptionsError(culprit, text) from None
    for i, plan in enumerate(opt.faults):
        problem = plan_problem(plan, opt.faults, opt.daemons, opt.safety_ms)
        if problem:
            raise OptionsError(
                "faults", f"fault {i + 1} ({plan.what} at {plan.at_ms} ms) {problem}"
            )


def _at_least(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise OptionsError(name, f"{name} must be an integer >= {low}, got {value!r}")


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


# --------------------------------------------------------------------------- random options


@dataclass(frozen=True, slots=True)
class Draws:
    """The opt-in random modes of a seed (``--nemesis``, ``--buggify``, ``--core``), each drawn
    from a stream of its own on top of the seed's plain options (module docstring)."""

    nemesis: bool = False  # add partition shapes, flaps, link faults, swizzles, clock faults
    buggify: bool = False  # in half the seeds, randomise protocol settings (``buggify_settings``)
    core: bool = False  # a continuing-fault liveness run (``core_faults``), replaces the faults

    def __post_init__(self) -> None:
        if self.nemesis and self.core:
            raise OptionsError("core", "core draws its own faults: not with nemesis")

    @property
    def plain(self) -> bool:
        return not (self.nemesis or self.buggify or self.core)

    def flags(self) -> list[str]:
        return [f"--{n}" for n in ("nemesis", "buggify", "core") if getattr(self, n)]


PLAIN = Draws()


def random_options(seed: int, draws: Draws = PLAIN) -> SimOptions:
    """A random configuration for swarm testing: 3 to 7 daemons, random faults and workload;
    ``draws`` adds the opt-in modes (``Draws``). ``random_options(seed)`` never changes."""
    opt = _plain_options(seed)
    if draws.core:
        rng = random.Random(f"core-{seed}")
        daemons = rng.randint(5, 7)
        safety_ms = rng.choice((3000, 4000, 5000))
        opt = replace(
            opt,
            daemons=daemons,
            safety_ms=safety_ms,
            loss=rng.choice((0.0, 0.0, 0.01)),
            faults=core_faults(seed, daemons, safety_ms),
        )
    elif draws.nemesis:
        extra = nemesis_faults(seed, opt.daemons, opt.safety_ms)
        opt = replace(opt, faults=_merged(opt.faults, extra))
    if draws.buggify:
        settings: dict[str, Any] = dict(buggify_settings(seed))
        opt = replace(opt, **settings)
    return opt


def _merged(*lists: tuple[FaultPlan, ...]) -> tuple[FaultPlan, ...]:
    return tuple(sorted((p for plans in lists for p in plans), key=lambda p: (p.at_ms, p.what)))


def _plain_options(seed: int) -> SimOptions:
    rng = random.Random(f"options-{seed}")
    daemons = rng.randint(3, 7)
    safety_ms = rng.choice((1500, 2500, 3500))
    return SimOptions(
        seed=seed,
        daemons=daemons,
        clients_per_daemon=rng.randint(1, 3),
        groups=rng.randint(1, 4),
        latency_min_ms=rng.randint(0, 2),
        latency_max_ms=rng.randint(3, 12),
        latency_tail=rng.choice((0.0, 0.02, 0.1)),
        loss=rng.choice((0.0, 0.0, 0.01, 0.05, 0.15)),
        duplication=rng.choice((0.0, 0.0, 0.02, 0.1)),
        safety_ms=safety_ms,
        rate_per_client=rng.choice((5.0, 20.0, 60.0)),
        faults=with_holds(seed, random_faults(rng, daemons, safety_ms), daemons, safety_ms),
        churn=rng.random() < 0.8,
    )


def redrawn_faults(
    seed: int, daemons: int, safety_ms: int, draws: Draws = PLAIN
) -> tuple[FaultPlan, ...]:
    """The seed's random faults for another daemon count or safety phase, drawn from streams of
    their own (``faults-<seed>``, ``holds-<seed>``, and the modes' own): ``random_options`` is
    untouched. A run of one daemon or a safety phase under 150 ms is too small for them: no
    faults."""
    if daemons < 2 or safety_ms < 150:
        return ()
    if draws.core:
        return core_faults(seed, daemons, safety_ms) if daemons >= 3 else ()
    rng = random.Random(f"faults-{seed}")
    plain = with_holds(seed, random_faults(rng, daemons, safety_ms), daemons, safety_ms)
    if draws.nemesis:
        return _merged(plain, nemesis_faults(seed, daemons, safety_ms))
    return plain


def with_changes(
    base: SimOptions, changes: dict[str, Any], redraw: bool, draws: Draws = PLAIN
) -> SimOptions:
    """``base`` with ``changes`` applied. When the daemon count or the safety phase changes and
    the faults are not given, the base's faults are kept if they still fit; otherwise they are
    drawn again from the seed (``redraw``, for a base that is a seed's random options, drawn
    with ``draws``) or the change is refused (a base with scripted faults: give the faults
    too)."""
    if "faults" not in changes and ({"daemons", "safety_ms"} & changes.keys()):
        daemons = changes.get("daemons", base.daemons)
        safety_ms = changes.get("safety_ms", base.safety_ms)
        misfit = [p for p in base.faults if plan_problem(p, base.faults, daemons, safety_ms)]
        if misfit and redraw:
            seed = changes.get("seed", base.seed)
            changes = {**changes, "faults": redrawn_faults(seed, daemons, safety_ms, draws)}
        elif misfit:
            problem = plan_problem(misfit[0], base.faults, daemons, safety_ms)
            raise OptionsError(
                "faults", f"{misfit[0].what} at {misfit[0].at_ms} ms {problem}; give the faults too"
            )
    return replace(base, **changes)


def with_holds(
    seed: int, faults: tuple[FaultPlan, ...], daemons: int, safety_ms: int
) -> tuple[FaultPlan, ...]:
    """``faults`` plus, in half the seeds, one to three "hold" faults: a daemon's local client
    lags for a while (``BacklogChanged``), so the daemon holds deliveries and receipt acks
    (protocol/ordering.md section 7) while everything else goes on. Drawn from their own random
    stream, so every other option of a seed stays what it was."""
    rng = random.Random(f"holds-{seed}")
    if rng.random() < 0.5:
        return faults
    holds = [
        FaultPlan(
            at_ms=rng.randint(100, safety_ms - 50),
            what="hold",
            args=(f"d{rng.randint(1, daemons)}", rng.randint(50, 1500)),
        )
        for _ in range(rng.randint(1, 3))
    ]
    return tuple(sorted((*faults, *holds), key=lambda p: (p.at_ms, p.what)))


def random_faults(rng: random.Random, daemons: int, safety_ms: int) -> tuple[FaultPlan, ...]:
    names = [f"d{i + 1}" for i in range(daemons)]
    plans: list[FaultPlan] = []
    for _ in range(rng.randint(0, 6)):
        at = rng.randint(100, safety_ms - 50)
        kind = rng.choice(
            ("partition", "partition", "asymmetric", "heal", "crash", "pause", "loss", "leave")
        )
        if kind == "partition":
            parts = rng.randint(2, min(3, daemons))
            labels = [rng.randrange(parts) for _ in names]
            plans.append(FaultPlan(at_ms=at, what="partition", args=tuple(labels)))
        elif kind == "asymmetric":
            src, dst = rng.sample(names, 2)
            plans.append(FaultPlan(at_ms=at, what="asymmetric", args=(src, dst)))
        elif kind == "heal":
            plans.append(FaultPlan(at_ms=at, what="heal"))
        elif kind in ("crash", "leave"):
            victim = rng.choice(names)
            down_ms = rng.randint(100, 1200)
            plans.append(FaultPlan(at_ms=at, what=kind, args=(victim, down_ms)))
        elif kind == "pause":
            plans.append(
                FaultPlan(at_ms=at, what="pause", args=(rng.choice(names), rng.randint(100, 600)))
            )
        else:
            plans.append(
                FaultPlan(
                    at_ms=at,
                    what="loss",
                    args=(rng.choice((0.05, 0.2, 0.4)), rng.randint(100, 800)),
                )
            )
    return tuple(sorted(plans, key=lambda p: (p.at_ms, p.what)))


# ------------------------------------------------------------------- opt-in random modes


def nemesis_faults(seed: int, daemons: int, safety_ms: int) -> tuple[FaultPlan, ...]:
    """``--nemesis``: one to four faults of the kinds the plain seeds never draw (partition
    shapes, link cuts, flaps, per-link latency and loss, swizzles, clock jumps and drift), some
    followed by a heal, from the stream ``nemesis-<seed>``."""
    rng = random.Random(f"nemesis-{seed}")
    names = daemon_names(daemons)
    if daemons < 2 or safety_ms < 150:
        return ()
    kinds = ["isolate", "cut", "flap", "flaplink", "slow", "lossy", "swizzle", "clock"]
    if daemons >= 3:
        kinds += ["majority", "bridge", "bridge"]
    if daemons >= 4:
        kinds += ["ring", "ring"]
    plans: list[FaultPlan] = []
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(100, safety_ms - 50)
        kind = rng.choice(kinds)
        a, b = rng.sample(names, 2)
        args: tuple[str | int | float, ...]
        if kind in ("isolate", "bridge"):
            args = (rng.choice(names),)
        elif kind == "majority":
            chosen = rng.sample(names, daemons // 2 + 1)
            args = tuple(n for n in names if n in chosen)
        elif kind == "ring":
            args = tuple(rng.sample(names, daemons))
        elif kind == "cut":
            pairs: set[Link] = set()
            for _ in range(rng.randint(1, 3)):
                x, y = rng.sample(names, 2)
                pairs.add(link(x, y, names))
            args = tuple(d for pair in sorted(pairs) for d in pair)
        elif kind == "flap":
            args = (rng.choice(names), rng.randint(100, 800), rng.randint(300, 2500))
        elif kind == "flaplink":
            args = (a, b, rng.randint(100, 800), rng.randint(300, 2500))
        elif kind == "slow":
            args = (a, b, rng.choice((20, 60, 150, 400)), rng.randint(200, 2000))
        elif kind == "lossy":
            args = (a, b, rng.choice((0.2, 0.5, 0.9, 1.0)), rng.randint(200, 2000))
        elif kind == "swizzle":
            order = rng.sample(names, rng.randint(1, daemons - 1))
            args = (rng.randint(50, 400), *order)
        else:  # clock: mostly a drift the timers absorb, sometimes one they cannot
            rate = rng.choice((0.5, 0.8, 1.0, 1.25, 2.0, 0.2, 5.0))
            args = (rng.choice(names), rng.choice((0, 0, 50, 5000)), rate)
        plans.append(FaultPlan(at_ms=at, what=kind, args=args))
        if kind in CUT_SHAPES | CUT_LINKS and rng.random() < 0.5:
            heal_at = at + rng.randint(200, 1500)
            if heal_at < safety_ms:
                plans.append(FaultPlan(at_ms=heal_at, what="heal"))
    return _merged(tuple(plans))


# Protocol settings BUGGIFY may choose (besides the relations drawn in buggify_settings). The
# windows stay large enough to drain the workload's backlog in the quiet phase: with 1 or 4
# messages in flight seeds 6 and 20 still had undelivered messages at "end" (SVC-REL, GV-SAFE),
# and passed with a window of 16 or a 4 s quiet phase.
BUGGIFY_CHOICES: dict[str, tuple[int, ...]] = {
    "heartbeat_ms": (15, 25, 40, 60, 80),
    "tick_ms": (1, 2, 5, 10, 20),
    "window_msgs": (16, 64, 256, 4096),
    "window_bytes": (512, 4096, 65536, 1 << 20),
    "batch_bytes": (64, 300, 1500, 60_000),
    "max_message_bytes": (16, 64, 1024, 1 << 20),
}


def buggify_settings(seed: int) -> dict[str, int]:
    """``--buggify`` (FoundationDB's BUGGIFY for settings): in half the seeds, each protocol
    setting is, with probability 1/2, drawn from its valid range instead of its default; the
    other half keep every default (``{}``). Drawn from the stream ``buggify-<seed>``. The ranges
    keep the relations the timers need to stay live (docs/simulation.md, "BUGGIFY"): tick <=
    heartbeat, suspect >= 4 heartbeats and >= 160 ms, flush >= 100 ms (two slow frames),
    install >= flush + 2 heartbeats (a member waits out the proposer's flush timeout)."""
    rng = random.Random(f"buggify-{seed}")
    if rng.random() < 0.5:
        return {}
    defaults: dict[str, int] = {**_CORE, "suspect_timeout_ms": SIM_SUSPECT_TIMEOUT_MS}

    def pick(name: str, draw: int) -> int:
        return draw if rng.random() < 0.5 else defaults[name]

    choices = BUGGIFY_CHOICES
    heartbeat = pick("heartbeat_ms", rng.choice(choices["heartbeat_ms"]))
    tick = min(pick("tick_ms", rng.choice(choices["tick_ms"])), heartbeat)
    low = max(4 * heartbeat, 160)
    suspect = max(pick("suspect_timeout_ms", rng.randint(low, low + 500)), low)
    flush = pick("flush_timeout_ms", rng.randint(100, 400))
    floor = flush + 2 * heartbeat
    install = max(pick("install_timeout_ms", rng.randint(floor, flush + 600)), floor)
    drawn = {
        "tick_ms": tick,
        "heartbeat_ms": heartbeat,
        "suspect_timeout_ms": suspect,
        "flush_timeout_ms": flush,
        "install_timeout_ms": install,
        "gather_timeout_ms": pick("gather_timeout_ms", rng.randint(50, 300)),
    }
    for name in ("window_msgs", "window_bytes", "batch_bytes", "max_message_bytes"):
        drawn[name] = pick(name, rng.choice(choices[name]))
    return {name: value for name, value in drawn.items() if value != defaults[name]}


def core_faults(seed: int, daemons: int, safety_ms: int) -> tuple[FaultPlan, ...]:
    """``--core``: a continuing-fault liveness run (TigerBeetle's VOPR liveness mode). A random
    majority of the daemons is the core: it stays connected from a start in [300, 800] ms to the
    end of the safety phase (a ``core`` fault, checked by L4), while the daemons outside it
    flap, crash, leave, pause, are isolated, swizzled or partitioned among themselves (every cut
    keeps the core on one side, so every cut is transitive). Stream ``core-faults-<seed>``."""
    rng = random.Random(f"core-faults-{seed}")
    names = daemon_names(daemons)
    core = sorted(rng.sample(names, daemons // 2 + 1), key=names.index)
    outside = [n for n in names if n not in core]
    start = min(rng.randint(300, 800), safety_ms // 2)
    plans = [FaultPlan(at_ms=start, what="core", args=(safety_ms - start, *core))]
    kinds = ("flap", "flap", "crash", "leave", "pause", "partition", "heal", "isolate", "swizzle")
    for _ in range(rng.randint(2, 6)):
        at = rng.randint(start, max(start, safety_ms - 100))
        kind = rng.choice(kinds)
        victim = rng.choice(outside)
        args: tuple[str | int | float, ...] = ()
        if kind == "flap":
            args = (victim, rng.randint(150, 1000), rng.randint(300, 2500))
        elif kind in ("crash", "leave"):
            args = (victim, rng.randint(100, 1200))
        elif kind == "pause":
            args = (victim, rng.randint(100, 600))
        elif kind == "partition":
            args = tuple(0 if n in core else rng.randrange(3) for n in names)
        elif kind == "isolate":
            args = (victim,)
        elif kind == "swizzle":
            order = rng.sample(outside, rng.randint(1, len(outside)))
            args = (rng.randint(50, 300), *order)
        plans.append(FaultPlan(at_ms=at, what=kind, args=args))
    return _merged(tuple(plans))
