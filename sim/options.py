"""Run options: the whole configuration of one simulated run, and how a seed derives it.

Owns ``SimOptions`` (every knob of a run, validated: a bad value raises ``OptionsError`` naming
the field), the simulator's protocol defaults, and ``random_options(seed)``, the swarm's
configuration for a seed: which random stream draws which option, the opt-in modes (``Draws``),
BUGGIFY's protocol settings, and a seed's faults fitted to changed options (``with_changes``). A
seed alone reproduces a run; options that differ from their seed's (flags, an options file) are
reproduced by the full options (``sim.optionsfile``).

``random_options`` must keep giving every existing seed the very same run (CI's seeds and every
reported seed): new fields get defaults equal to the old behaviour and never draw from its
``rng`` stream; anything new that is random gets a stream of its own.

The opt-in modes (``Draws``: ``--nemesis``, ``--buggify``, ``--core``) follow the same rule: a
seed drawn with them is the seed's plain options changed by draws from streams of their own
(``nemesis-<seed>``, ``buggify-<seed>``, ``core-<seed>``), so the plain seed keeps its run and a
mode's run is reproduced by its full options (an options file), like any run that is not a
plain seed.

It does not own the fault kinds, their arguments, what makes a fault valid and the links each
one cuts (``sim.faultplan``, whose ``FaultPlan`` is importable from here too; docs/simulation.md
has the table), nor the fault schedules drawn from a seed (``sim.draws``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields, replace
from typing import Any

from groupcomm.core.config import CoreConfig
from sim.draws import core_faults, merged_faults, nemesis_faults, random_faults, with_holds
from sim.faultplan import FaultPlan as FaultPlan  # re-exported: part of SimOptions
from sim.faultplan import daemon_names, plan_problem

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
    "fragment_bytes",
    "star_members",
)
_CORE: dict[str, Any] = {f.name: f.default for f in fields(CoreConfig) if f.name in PROTOCOL_FIELDS}


class OptionsError(ValueError):
    """Options that cannot make a run; ``field`` is the offending option, which the message
    names."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


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
    fragment_bytes: int = _CORE["fragment_bytes"]
    star_members: int = _CORE["star_members"]

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


# --------------------------------------------------------------------------- random options


@dataclass(frozen=True, slots=True)
class Draws:
    """The opt-in random modes of a seed (``--nemesis``, ``--buggify``, ``--core``), each drawn
    from a stream of its own on top of the seed's plain options (module docstring)."""

    nemesis: bool = False  # add partition shapes, flaps, link faults, swizzles, clock faults
    buggify: bool = False  # in half the seeds, randomise protocol settings (``buggify_settings``)
    core: bool = False  # a continuing-fault liveness run (``core_faults``), replaces the faults
    star: bool = False  # every view of two or more daemons uses star acknowledgements

    def __post_init__(self) -> None:
        if self.nemesis and self.core:
            raise OptionsError("core", "core draws its own faults: not with nemesis")

    @property
    def plain(self) -> bool:
        return not (self.nemesis or self.buggify or self.core or self.star)

    def flags(self) -> list[str]:
        return [f"--{n}" for n in ("nemesis", "buggify", "core", "star") if getattr(self, n)]


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
        opt = replace(opt, faults=merged_faults(opt.faults, extra))
    if draws.buggify:
        settings: dict[str, Any] = dict(buggify_settings(seed))
        opt = replace(opt, **settings)
    if draws.star:
        # The swarm's 3-7 daemons are below the default star_members: this makes every view
        # of two or more a star view (protocol/membership.md section 2).
        opt = replace(opt, star_members=2)
    return opt


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
        return merged_faults(plain, nemesis_faults(seed, daemons, safety_ms))
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
    # Small enough that the workload's 0..24-byte payloads travel in fragments (SVC-FRAG).
    "fragment_bytes": (12, 256 << 10),
    # The swarm's views have 1-7 members: these make most of them star views.
    "star_members": (2, 3, 4),
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
    for name in (
        "window_msgs",
        "window_bytes",
        "batch_bytes",
        "max_message_bytes",
        "fragment_bytes",
        "star_members",
    ):
        drawn[name] = pick(name, rng.choice(choices[name]))
    return {name: value for name, value in drawn.items() if value != defaults[name]}
