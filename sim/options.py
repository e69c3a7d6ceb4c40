"""Run options: the whole configuration of one simulated run, and how a seed derives it.

Owns ``SimOptions`` (every knob of a run, validated: a bad value raises ``OptionsError`` naming
the field), ``FaultPlan`` and the fault kinds with their arguments, and ``random_options(seed)``,
the swarm's configuration for a seed. A seed alone reproduces a run; options that differ from
their seed's (flags, an options file) are reproduced by the full options (``sim.optionsfile``).

``random_options`` must keep giving every existing seed the very same run (CI's seeds and every
reported seed): new fields get defaults equal to the old behaviour and never draw from its
``rng`` stream; anything new that is random gets a stream of its own.
"""

from __future__ import annotations

import random
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

# Fault kinds and their arguments ("name" a daemon name, "ms" a positive duration in ms).
FAULT_ARGS: dict[str, tuple[str, ...]] = {
    "partition": (),  # one side label (int >= 0) per daemon, in daemon order: checked apart
    "asymmetric": ("name", "name"),  # frames from the first to the second are dropped
    "heal": (),
    "crash": ("name", "ms"),  # down for ms, then restarted as a new incarnation
    "leave": ("name", "ms"),
    "pause": ("name", "ms"),
    "hold": ("name", "ms"),
    "loss": ("rate", "ms"),
}


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
        problem = fault_problem(plan, opt.daemons, opt.safety_ms)
        if problem:
            raise OptionsError(
                "faults", f"fault {i + 1} ({plan.what} at {plan.at_ms} ms) {problem}"
            )


def _at_least(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise OptionsError(name, f"{name} must be an integer >= {low}, got {value!r}")


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
    if len(args) != len(kinds):
        return f"needs {len(kinds)} arguments ({', '.join(kinds)}), got {args!r}"
    names = daemon_names(daemons)
    for kind, arg in zip(kinds, args, strict=True):
        if kind == "name" and arg not in names:
            return f"names no daemon of this run: {arg!r} (d1..d{daemons})"
        if kind == "ms" and not (_is_int(arg) and int(arg) > 0):
            return f"needs a positive duration in ms, got {arg!r}"
        if kind == "rate" and not (
            isinstance(arg, int | float) and not isinstance(arg, bool) and 0 <= arg <= 1
        ):
            return f"needs a loss rate in [0, 1], got {arg!r}"
    if plan.what == "asymmetric" and args[0] == args[1]:
        return f"cuts a daemon from itself: {args!r}"
    return ""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- random options


def random_options(seed: int) -> SimOptions:
    """A random configuration for swarm testing: 3 to 7 daemons, random faults and workload."""
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


def redrawn_faults(seed: int, daemons: int, safety_ms: int) -> tuple[FaultPlan, ...]:
    """The seed's random faults for another daemon count or safety phase, drawn from streams of
    their own (``faults-<seed>``, ``holds-<seed>``): ``random_options`` is untouched. A run of
    one daemon or a safety phase under 150 ms is too small for them: no faults."""
    if daemons < 2 or safety_ms < 150:
        return ()
    rng = random.Random(f"faults-{seed}")
    return with_holds(seed, random_faults(rng, daemons, safety_ms), daemons, safety_ms)


def with_changes(base: SimOptions, changes: dict[str, Any], redraw: bool) -> SimOptions:
    """``base`` with ``changes`` applied. When the daemon count or the safety phase changes and
    the faults are not given, the base's faults are kept if they still fit; otherwise they are
    drawn again from the seed (``redraw``, for a base that is a seed's random options) or the
    change is refused (a base with scripted faults: give the faults too)."""
    if "faults" not in changes and ({"daemons", "safety_ms"} & changes.keys()):
        daemons = changes.get("daemons", base.daemons)
        safety_ms = changes.get("safety_ms", base.safety_ms)
        misfit = [p for p in base.faults if fault_problem(p, daemons, safety_ms)]
        if misfit and redraw:
            seed = changes.get("seed", base.seed)
            changes = {**changes, "faults": redrawn_faults(seed, daemons, safety_ms)}
        elif misfit:
            problem = fault_problem(misfit[0], daemons, safety_ms)
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
