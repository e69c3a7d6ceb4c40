"""Shrinking a failing run: the smallest options that still fail the same property.

Owns the greedy, deterministic minimiser (Hypothesis-style delta debugging over ``SimOptions``),
the candidate reductions it tries, its budget (a number of runs), its progress lines, and the
report of a shrink: what was removed, the minimal run's violations, the options file it wrote and
the one command that reproduces it. The command line (``python -m sim shrink``) is in
``sim.__main__``; the swarm's ``--shrink`` uses ``shrink_report``.

The loop: run the base options; the target is ``--property`` or the id of the first violation.
Then the passes below are tried in order, each until none of its candidates fails the target
any more, and the whole round again until a round keeps nothing (or the budget is spent). A
candidate is kept when its run violates the target property (other properties may come and go).
Every candidate is a valid ``SimOptions`` (built through its validation; invalid ones are skipped
without a run), and every run is deterministic, so a shrink is reproducible.

Passes: drop faults (all, then halves, quarters, ... single ones); drop daemons (the top half,
then each one, renaming the ones above it down and dropping the faults that name it; a partition
left with one side becomes a heal, which has the very same effect); shorter phases (safety phase
down to its last fault; the settle phase and its quiet part, except for liveness properties,
which a short settle breaks by itself); a lighter workload (fewer client connections and groups,
a lower rate, no churn); a calmer network (no loss, duplication or slow tail, latency 1 ms);
smaller faults (shorter durations, every fault moved earlier); protocol settings back to their
defaults.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

from sim.checkers import Checker, check_all
from sim.faultplan import DURATION_ARG, FaultPlan, daemon_names
from sim.options import PROTOCOL_FIELDS, OptionsError, SimOptions
from sim.optionsfile import dump_options, save_options
from sim.run import simulate
from sim.trace import load_trace

DEFAULT_MAX_RUNS = 200
# Judged only after the settle phase: a short settle breaks them by itself, so these targets
# keep the settle and quiet phases of the failing run.
LIVENESS_PROPERTIES = frozenset({"L1", "L2", "L3", "SVC-REL"})

Probe = Callable[[SimOptions], Sequence[str]]
"""Runs options and returns their violations, each line starting with its property id."""

Candidate = tuple[str, SimOptions]


class ShrinkError(Exception):
    """Nothing to shrink: the run passes, or does not fail the property asked for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One kept reduction: at which run, what it changed, and the options it gave."""

    run: int
    what: str
    options: SimOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class ShrinkResult:
    original: SimOptions
    minimal: SimOptions
    target: str  # the property id kept failing
    runs: int  # runs made, the base run included
    max_runs: int
    steps: tuple[Step, ...]
    original_violations: tuple[str, ...]
    violations: tuple[str, ...]  # of the minimal run
    exhausted: bool  # the budget ended the shrink before a round kept nothing


# ------------------------------------------------------------------------------------ runs


def property_id(line: str) -> str:
    """The property id a violation line starts with (``EVS-3 t=12: ...`` -> ``EVS-3``)."""
    return line.split(" ", 1)[0]


def probe_run(options: SimOptions, checkers: Mapping[str, Checker] | None = None) -> list[str]:
    """Simulate ``options`` and check the trace with ``checkers`` (default: every property);
    ``CORE`` lines for the runner's anomalies, as ``sim.run.run`` reports them. An exception of
    the code under test is a finding too: ``EXCEPTION:<type>``, so a shrink keeps its type."""
    try:
        sim = simulate(options)
        violations = [str(v) for v in check_all(load_trace(sim.trace_lines()), checkers)]
    except Exception as exc:
        return [f"EXCEPTION:{type(exc).__name__} {exc!r}"]
    violations.extend(f"CORE {a}" for a in sim.anomalies)
    return violations


# ------------------------------------------------------------------------------------ loop


def shrink(
    options: SimOptions,
    *,
    prop: str | None = None,
    max_runs: int = DEFAULT_MAX_RUNS,
    probe: Probe | None = None,
    checkers: Mapping[str, Checker] | None = None,
    report: Callable[[str], None] | None = None,
    trying: Callable[[str], None] | None = None,
) -> ShrinkResult:
    """Minimise a failing run (see the module docstring). ``probe`` replaces the simulator (for
    tests); ``checkers`` replaces the property set of the default probe; ``report`` receives a
    progress line per kept reduction, ``trying`` one before every run (for a status line).
    Raises ``ShrinkError`` if there is nothing to shrink."""
    if max_runs < 1:
        raise ValueError(f"max_runs must be at least 1, got {max_runs}")
    run_probe: Probe = probe if probe is not None else partial(probe_run, checkers=checkers)
    first = tuple(run_probe(options))
    failed = list(dict.fromkeys(property_id(line) for line in first))
    if not first:
        raise ShrinkError("the run passes every property: nothing to shrink")
    target = prop if prop is not None else failed[0]
    if target not in failed:
        raise ShrinkError(f"the run does not fail {target} (it fails {', '.join(failed)})")
    state = _Loop(run_probe, target, max_runs, options, first)
    state.minimise(report or _silent, trying or _silent)
    return ShrinkResult(
        original=options,
        minimal=state.current,
        target=target,
        runs=state.runs,
        max_runs=max_runs,
        steps=tuple(state.steps),
        original_violations=first,
        violations=state.violations,
        exhausted=state.exhausted,
    )


class _Loop:
    """The mutable state of one shrink: current options, runs made, kept steps."""

    def __init__(
        self,
        probe: Probe,
        target: str,
        max_runs: int,
        options: SimOptions,
        violations: tuple[str, ...],
    ) -> None:
        self.probe = probe
        self.target = target
        self.max_runs = max_runs
        self.report: Callable[[str], None] = _silent  # set by minimise
        self.trying: Callable[[str], None] = _silent
        self.current = options
        self.violations = violations
        self.runs = 1
        self.tried: set[SimOptions] = {options}
        self.steps: list[Step] = []
        self.exhausted = False

    def minimise(self, report: Callable[[str], None], trying: Callable[[str], None]) -> None:
        self.report, self.trying = report, trying
        report(
            f"shrink: target {self.target}, budget {self.max_runs} runs; "
            f"start: {size_text(self.current)}"
        )
        progressed = True
        while progressed and not self.exhausted:
            progressed = False
            for make in PASSES:
                while not self.exhausted and self._one_step(make):
                    progressed = True

    def _one_step(self, make: Callable[[SimOptions, str], Iterator[Candidate]]) -> bool:
        """Try ``make``'s candidates in order; keep the first that fails the target."""
        for what, candidate in make(self.current, self.target):
            if candidate in self.tried:
                continue
            if self.runs >= self.max_runs:
                self.exhausted = True
                return False
            self.tried.add(candidate)
            self.runs += 1
            self.trying(f"shrink [run {self.runs}/{self.max_runs}] trying {what}")
            lines = tuple(self.probe(candidate))
            if any(property_id(line) == self.target for line in lines):
                self.current, self.violations = candidate, lines
                self.steps.append(Step(run=self.runs, what=what, options=candidate))
                self.report(
                    f"shrink [run {self.runs}/{self.max_runs}] {what}: {size_text(candidate)}"
                )
                return True
        return False


def _silent(_line: str) -> None:
    pass


# ------------------------------------------------------------------------------ candidates


def _variant(opt: SimOptions, **changes: Any) -> SimOptions | None:
    """``opt`` with ``changes`` if that is valid and different, else None."""
    try:
        candidate = replace(opt, **changes)
    except OptionsError:
        return None
    return None if candidate == opt else candidate


def _ladder(current: int, low: int, unit: int) -> list[int]:
    """Smaller values to try, smallest first: the floor, half-way and three quarters of the way
    down from ``current`` (rounded up to ``unit``). A kept value starts a new ladder, so repeated
    halving reaches the floor; small integers get every value below them (3: 0, 1, 2)."""
    span = current - low
    steps = (low + span // 2, low + (3 * span) // 4)
    values = {low, *(-(-v // unit) * unit for v in steps)}
    return sorted(v for v in values if low <= v < current)


def _fewer_faults(opt: SimOptions, target: str) -> Iterator[Candidate]:
    faults, n = opt.faults, len(opt.faults)
    if not n:
        return
    sizes = [n]
    while sizes[-1] > 1:
        sizes.append(sizes[-1] // 2)
    names = opt.names
    for size in sizes:
        for start in range(0, n, size):
            dropped = faults[start : start + size]
            what = (
                f"drop fault {fault_text(dropped[0], names)}"
                if size == 1
                else f"drop faults {start + 1}-{start + len(dropped)} of {n}"
            )
            candidate = _variant(opt, faults=faults[:start] + faults[start + size :])
            if candidate is not None:
                yield what, candidate


def _fewer_daemons(opt: SimOptions, target: str) -> Iterator[Candidate]:
    n = opt.daemons
    half = n // 2
    if half > 1:
        candidate = without_daemons(opt, range(n - half, n))
        if candidate is not None:
            yield f"drop daemons d{n - half + 1}-d{n}", candidate
    for k in reversed(range(n)):
        candidate = without_daemons(opt, [k])
        if candidate is not None:
            renamed = f" (d{k + 2}.. renamed down)" if k + 1 < n else ""
            yield f"drop daemon d{k + 1}{renamed}", candidate


def without_daemons(opt: SimOptions, gone: Sequence[int] | range) -> SimOptions | None:
    """``opt`` without the daemons at indexes ``gone``: the others renamed d1..dM in order, the
    faults that name a removed daemon dropped, partitions relabelled (one side left: a heal,
    which has the very same effect on the links)."""
    names = opt.names
    keep = [i for i in range(len(names)) if i not in set(gone)]
    if not keep or len(keep) == len(names):
        return None
    rename = dict(zip((names[i] for i in keep), daemon_names(len(keep)), strict=True))
    faults: list[FaultPlan] = []
    for plan in opt.faults:
        if plan.what == "partition":
            labels = [int(plan.args[i]) for i in keep]
            sides = sorted(set(labels))
            if len(sides) < 2:
                faults.append(FaultPlan(at_ms=plan.at_ms, what="heal"))
            else:
                args = tuple(sides.index(label) for label in labels)
                faults.append(FaultPlan(at_ms=plan.at_ms, what="partition", args=args))
            continue
        named = [a for a in plan.args if isinstance(a, str) and a in names]
        if any(a not in rename for a in named):
            continue
        args2 = tuple(rename[a] if isinstance(a, str) and a in rename else a for a in plan.args)
        faults.append(replace(plan, args=args2))
    return _variant(opt, daemons=len(keep), faults=tuple(faults))


def _shorter_phases(opt: SimOptions, target: str) -> Iterator[Candidate]:
    last = max((p.at_ms for p in opt.faults), default=0)
    floor = max(100, -(-(last + 1) // 100) * 100)
    for value in _ladder(opt.safety_ms, min(floor, opt.safety_ms), 100):
        yield from _named(f"safety_ms {opt.safety_ms} -> {value}", _variant(opt, safety_ms=value))
    if target in LIVENESS_PROPERTIES:
        return
    for value in _ladder(opt.quiet_ms, 0, 100):
        yield from _named(f"quiet_ms {opt.quiet_ms} -> {value}", _variant(opt, quiet_ms=value))
    low = min(opt.settle_ms, max(100, opt.quiet_ms))
    for value in _ladder(opt.settle_ms, low, 100):
        yield from _named(f"settle_ms {opt.settle_ms} -> {value}", _variant(opt, settle_ms=value))


def _lighter_workload(opt: SimOptions, target: str) -> Iterator[Candidate]:
    cpd = opt.clients_per_daemon
    for value in _ladder(cpd, 0, 1):
        yield from _named(
            f"clients_per_daemon {cpd} -> {value}", _variant(opt, clients_per_daemon=value)
        )
    for value in _ladder(opt.groups, 1, 1):
        yield from _named(f"groups {opt.groups} -> {value}", _variant(opt, groups=value))
    rate = opt.rate_per_client
    for step in _ladder(int(rate), 1, 5) if rate > 1 else []:
        yield from _named(f"rate {rate:g} -> {step}", _variant(opt, rate_per_client=float(step)))
    yield from _named("churn off", _variant(opt, churn=False))


def _calmer_network(opt: SimOptions, target: str) -> Iterator[Candidate]:
    for name in ("loss", "duplication", "latency_tail"):
        yield from _named(f"{name} {getattr(opt, name):g} -> 0", _variant(opt, **{name: 0.0}))
    yield from _named(
        f"latency {opt.latency_min_ms}-{opt.latency_max_ms} -> 1 ms",
        _variant(opt, latency_min_ms=1, latency_max_ms=1),
    )


def _smaller_faults(opt: SimOptions, target: str) -> Iterator[Candidate]:
    names = opt.names
    for i, plan in enumerate(opt.faults):
        k = DURATION_ARG.get(plan.what)  # crash, leave, pause, hold, loss, the timed shapes
        if k is None:
            continue
        duration = int(plan.args[k])
        for value in _ladder(duration, 10, 10):
            shorter = replace(plan, args=(*plan.args[:k], value, *plan.args[k + 1 :]))
            faults = (*opt.faults[:i], shorter, *opt.faults[i + 1 :])
            what = f"{fault_text(plan, names)} -> {value} ms"
            yield from _named(what, _variant(opt, faults=faults))
    first = min((p.at_ms for p in opt.faults), default=0)
    shift = (first - 100) // 100 * 100
    if shift > 0:
        moved = tuple(replace(p, at_ms=p.at_ms - shift) for p in opt.faults)
        yield from _named(f"every fault {shift} ms earlier", _variant(opt, faults=moved))


def _default_protocol(opt: SimOptions, target: str) -> Iterator[Candidate]:
    defaults = {f.name: f.default for f in fields(SimOptions) if f.name in PROTOCOL_FIELDS}
    for name in PROTOCOL_FIELDS:
        value = defaults[name]
        what = f"{name} {getattr(opt, name)} -> {value} (default)"
        yield from _named(what, _variant(opt, **{name: value}))


def _named(what: str, candidate: SimOptions | None) -> Iterator[Candidate]:
    if candidate is not None:
        yield what, candidate


PASSES: tuple[Callable[[SimOptions, str], Iterator[Candidate]], ...] = (
    _fewer_faults,
    _fewer_daemons,
    _shorter_phases,
    _lighter_workload,
    _calmer_network,
    _smaller_faults,
    _default_protocol,
)


# ---------------------------------------------------------------------------------- output


def fault_text(plan: FaultPlan, names: list[str]) -> str:
    """A fault in the ``--faults`` syntax (a partition as its sides)."""
    if plan.what == "partition" and len(plan.args) == len(names):
        sides = "/".join(",".join(side) for side in plan.sides(names))
        return f"{plan.at_ms}:partition:{sides}"
    return ":".join(str(x) for x in (plan.at_ms, plan.what, *plan.args))


def size_text(opt: SimOptions) -> str:
    """The size of a run, as the progress lines show it."""
    return (
        f"{_count(opt.daemons, 'daemon')}, {_count(len(opt.faults), 'fault')}, "
        f"{opt.clients_per_daemon} clients/daemon, {_count(opt.groups, 'group')}, "
        f"phases {opt.safety_ms}+{opt.settle_ms} ms"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def changes_text(original: SimOptions, minimal: SimOptions) -> list[str]:
    """What the shrink changed, one item per option (the faults kept, in the flag syntax)."""
    out: list[str] = []
    for f in fields(SimOptions):
        old, new = getattr(original, f.name), getattr(minimal, f.name)
        if old == new:
            continue
        if f.name == "faults":
            kept = " ".join(fault_text(p, minimal.names) for p in new) or "none"
            out.append(f"faults {len(old)} -> {len(new)} ({kept})")
        else:
            out.append(f"{f.name} {old} -> {new}")
    return out


def shrunk_options_path(opt: SimOptions) -> Path:
    """``sim-shrunk-<seed>-<digest>.json`` in the current directory: one name per options."""
    digest = hashlib.sha256(dump_options(opt).encode()).hexdigest()[:8]
    return Path(f"sim-shrunk-{opt.seed}-{digest}.json")


def shrink_command(seed: int, options_file: Path | None) -> str:
    """The command that shrinks a run: its seed's (``options_file`` None), or its file's."""
    if options_file is None:
        return f"python -m sim shrink --seed {seed}"
    return f"python -m sim shrink --options {options_file}"


def shrink_report(result: ShrinkResult, path: Path | None = None, shown: int = 5) -> list[str]:
    """Save the minimal options (to ``path``, default ``shrunk_options_path``) and describe the
    shrink: how it ended, what it changed, the minimal run's violations, the repro command."""
    path = path if path is not None else shrunk_options_path(result.minimal)
    save_options(result.minimal, path)
    ending = (
        f"budget of {result.max_runs} runs spent (smaller, perhaps not minimal)"
        if result.exhausted
        else f"no smaller candidate fails {result.target}"
    )
    ours = [v for v in result.violations if property_id(v) == result.target]
    lines = [
        f"shrunk {result.target} in {result.runs} runs, {len(result.steps)} kept: {ending}",
        f"  from: {size_text(result.original)}",
        f"  to:   {size_text(result.minimal)}",
    ]
    lines.extend(f"  changed: {item}" for item in changes_text(result.original, result.minimal))
    lines.append(
        f"  the minimal run has {_count(len(result.violations), 'violation')}, "
        f"{len(ours)} of {result.target}:"
    )
    lines.extend(f"    VIOLATION {v}" for v in ours[:shown])
    lines.append(f"  options: {path}")
    lines.append(f"  reproduce: python -m sim --options {path}")
    return lines
