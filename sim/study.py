"""Studies: a grid of run options x seeds, run in parallel, resumable, summarised and plotted.

``python -m sim study FILE.toml [--out DIR] [--jobs J] [--restart] [--report-only] [--dry-run]``

Owns the study file (TOML, below; refused with a message naming the table and key when it is
wrong), the plan (cells of the grid x seeds, each an ordinary ``SimOptions``), running it (the
same ``sim.run.run`` as ``python -m sim``, one process per job, a progress bar with an ETA on
stderr), ``runs.jsonl`` (one JSON line per finished run, appended as it ends, so an interrupted
study resumes where it stopped: a run is done when a line with its cell and seed is there), and
the outputs: ``summary.csv``, ``summary.md`` (``sim.studyreport``) and one PNG per plot
(``sim.studyplot``). ``docs/simulation.md`` ("Studies") documents the format; two examples are
in ``docs/studies/``.

A study file::

    [study]
    title = "Detection and merge time"
    description = "..."            # optional, shown at the top of summary.md
    seeds = 6                      # seeds 0..5; or a list [1, 2, 3]; or "10-15"
    metrics = ["detect_ms", "merge_ms"]    # sim.studyreport.STUDY_METRICS names
    notes = "..."                  # optional, shown at the end of summary.md

    [base]                         # any SimOptions field but seed; the rest keep their
    safety_ms = 4000               # defaults (not a seed's random options)
    latency_ms = "1-4"             # latency_min_ms and latency_max_ms at once
    faults = "none"                # the --faults syntax, or a list of fault objects

    [grid]                         # axis = non-empty list of values; cells = the product
    loss = [0.0, 0.1]              # any SimOptions field but seed and faults,
    daemons = [3, 5]               # latency_ms, and partition (its faults, by name)
    partition = ["majority"]

    [shape]                        # timing of the built-in partition shapes
    at_ms = 500                    # the cut
    heal_ms = 1500                 # a heal fault (omit: the final heal ends the cut)

    [partitions]                   # optional: more partition names, as --faults specs
    first-alone = "500:partition:d1/d2,d3 1500:heal"

    [[plot]]
    x = "loss"                     # an axis
    y = ["detect_ms", "merge_ms"]  # metrics, on one set of axes, with 95 % error bars
    series = "daemons"             # optional: one line per value of this axis
    where = { partition = "majority" }   # fixes the axes that are neither x nor series
    file = "times.png"             # optional; also title, ylabel, log_x, log_y

Built-in partition names (``SHAPES``): ``majority`` (d1..dk | the rest, k = n // 2 + 1),
``isolate-one`` (everyone | the last daemon) and ``none`` (no faults). Extension point: a shape
the ``--faults`` syntax learns (sim.optionsfile: e.g. a majorities ring or a bridge) is usable
at once through ``[partitions]``; one whose sides depend on the daemon count is a function in
``SHAPES``. Every field ``SimOptions`` gains (e.g. a service mix) is an axis with no change here.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import signal
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sim.options import FaultPlan, OptionsError, SimOptions, daemon_names, side_labels
from sim.optionsfile import (
    FIELD_TYPES,
    options_from_json,
    options_to_json,
    parse_faults,
    parse_fields,
)
from sim.run import run
from sim.studyreport import (
    COST_METRICS,
    STUDY_METRICS,
    CellSummary,
    flat_metrics,
    fmt,
    label,
    markdown_table,
    metric_glossary,
    summarise,
    write_csv,
)

RUNS = "runs.jsonl"
DEFAULT_METRICS = ("detect_ms", "merge_ms", "views", "agreed_p50_ms", "safe_p50_ms")


class StudyError(ValueError):
    """A study file (or its runs.jsonl) that cannot make a study; the message says where."""


# ------------------------------------------------------------------------- partition shapes


def _majority(names: list[str]) -> list[list[str]]:
    k = len(names) // 2 + 1
    return [names[:k], names[k:]]


def _isolate_one(names: list[str]) -> list[list[str]]:
    return [names[:-1], names[-1:]]


# name -> sides for a daemon list; the cut happens at [shape].at_ms, the heal at heal_ms.
SHAPES: dict[str, Callable[[list[str]], list[list[str]]]] = {
    "majority": _majority,
    "isolate-one": _isolate_one,
}
NO_FAULTS = "none"


def faults_text(faults: Sequence[FaultPlan], daemons: int) -> str:
    """Faults in the ``--faults`` syntax (partitions as sides)."""
    if not faults:
        return "none"
    names = daemon_names(daemons)
    out = []
    for p in faults:
        if p.what == "partition":
            sides = "/".join(",".join(s) for s in p.sides(names))
            out.append(f"{p.at_ms}:partition:{sides}")
        else:
            out.append(":".join(str(x) for x in (p.at_ms, p.what, *p.args)))
    return " ".join(out)


# ------------------------------------------------------------------------------ the file


@dataclass(frozen=True, slots=True)
class PlotSpec:
    file: str
    x: str
    y: tuple[str, ...]
    series: str | None
    where: Mapping[str, Any]
    title: str
    ylabel: str | None
    log_x: bool
    log_y: bool


@dataclass(frozen=True, slots=True)
class Study:
    path: Path
    title: str
    description: str
    notes: str
    seeds: tuple[int, ...]
    metrics: tuple[str, ...]  # as listed, then the cost metrics
    base: Mapping[str, Any]  # typed SimOptions fields (faults still as given)
    axes: tuple[tuple[str, tuple[Any, ...]], ...]  # (axis, typed values), in file order
    partitions: Mapping[str, str]  # custom partition names -> --faults spec
    shape_at_ms: int
    shape_heal_ms: int | None
    plots: tuple[PlotSpec, ...]

    @property
    def axis_names(self) -> list[str]:
        return [name for name, _ in self.axes]

    def cells(self) -> list[dict[str, Any]]:
        """Every combination of axis values, the last axis varying fastest."""
        names = self.axis_names
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(values for _, values in self.axes))
        ]

    def options(self, cell: Mapping[str, Any], seed: int) -> SimOptions:
        """The run of ``cell`` and ``seed``: ``SimOptions`` defaults, the base, the cell."""
        values = {**self.base, **{k: v for k, v in cell.items() if k != "partition"}}
        if "latency_ms" in values:
            low, high = _latency_pair(values.pop("latency_ms"))
            values["latency_min_ms"], values["latency_max_ms"] = low, high
        daemons = values.get("daemons", 3)
        if "partition" in cell:
            values["faults"] = self.partition_faults(str(cell["partition"]), daemons)
        elif isinstance(values.get("faults"), str):
            values["faults"] = parse_faults(values["faults"], daemons)
        return SimOptions(seed=seed, **values)

    def partition_faults(self, name: str, daemons: int) -> tuple[FaultPlan, ...]:
        if name in self.partitions:
            return parse_faults(self.partitions[name], daemons)
        if name == NO_FAULTS:
            return ()
        names = daemon_names(daemons)
        try:
            labels = side_labels(SHAPES[name](names), names)
        except ValueError as exc:
            raise OptionsError("faults", f"{name} with {daemons} daemons: {exc}") from None
        plans = [FaultPlan(at_ms=self.shape_at_ms, what="partition", args=labels)]
        if self.shape_heal_ms is not None:
            plans.append(FaultPlan(at_ms=self.shape_heal_ms, what="heal"))
        return tuple(plans)


_TABLES = ("study", "base", "grid", "shape", "partitions", "plot")
_STUDY_KEYS = ("title", "description", "seeds", "metrics", "notes")
_PLOT_KEYS = ("file", "x", "y", "series", "where", "title", "ylabel", "log_x", "log_y")
_OPTION_FIELDS = tuple(f for f in FIELD_TYPES if f != "seed")
_AXIS_FIELDS = tuple(f for f in _OPTION_FIELDS if f != "faults")


def load_study(path: Path) -> Study:
    """The study in ``path``; ``StudyError`` names the first problem."""
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise StudyError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: invalid TOML ({exc})") from None
    try:
        return _study(path, doc)
    except StudyError as exc:
        raise StudyError(f"{path}: {exc}") from None


def _study(path: Path, doc: dict[str, Any]) -> Study:
    for key in doc:
        if key not in _TABLES:
            raise StudyError(f"unknown table [{key}] (known: {', '.join(_TABLES)})")
    meta = _table(doc, "study")
    _known_keys("[study]", meta, _STUDY_KEYS)
    base = _base(_table(doc, "base"))
    axes = _axes(_table(doc, "grid"))
    shape = _table(doc, "shape")
    _known_keys("[shape]", shape, ("at_ms", "heal_ms"))
    at_ms = _int(shape.get("at_ms", 500), "[shape] at_ms")
    heal = shape.get("heal_ms")
    heal_ms = None if heal is None else _int(heal, "[shape] heal_ms")
    if heal_ms is not None and heal_ms <= at_ms:
        raise StudyError(f"[shape] heal_ms ({heal_ms}) must come after at_ms ({at_ms})")
    partitions = _table(doc, "partitions")
    for name, spec in partitions.items():
        if not isinstance(spec, str):
            raise StudyError(f"[partitions] {name} must be a --faults spec string, got {spec!r}")
    metrics = _metrics(meta.get("metrics", list(DEFAULT_METRICS)))
    study = Study(
        path=path,
        title=_str(meta.get("title", path.stem), "[study] title"),
        description=_str(meta.get("description", ""), "[study] description"),
        notes=_str(meta.get("notes", ""), "[study] notes"),
        seeds=_seeds(meta.get("seeds", 3)),
        metrics=metrics,
        base=base,
        axes=axes,
        partitions=partitions,
        shape_at_ms=at_ms,
        shape_heal_ms=heal_ms,
        plots=(),
    )
    if "partition" in study.axis_names and "faults" in base:
        raise StudyError("[base] faults and a partition axis: the partition axis sets the faults")
    _check_partition_names(study)
    plots = doc.get("plot", [])
    if not isinstance(plots, list):
        raise StudyError("plots are [[plot]] tables")
    specs = tuple(_plot(study, i, p) for i, p in enumerate(plots))
    files = [p.file for p in specs]
    for name in files:
        if files.count(name) > 1:
            raise StudyError(f"two plots write {name}: give one a different file")
    study = replace(study, plots=specs)
    for cell in study.cells():  # every cell must make a valid run
        try:
            study.options(cell, study.seeds[0])
        except OptionsError as exc:
            where = ", ".join(f"{k}={label(v)}" for k, v in cell.items())
            raise StudyError(f"cell {where or '(the base)'}: {exc}") from None
    return study


def _table(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise StudyError(f"[{name}] must be a table")
    return value


def _known_keys(where: str, table: Mapping[str, Any], known: Sequence[str]) -> None:
    for key in table:
        if key not in known:
            raise StudyError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")


def _int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StudyError(f"{where} must be an integer >= 0, got {value!r}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise StudyError(f"{where} must be a string, got {value!r}")
    return value


def _seeds(value: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    if isinstance(value, str):
        try:
            seeds: list[int] = []
            for part in value.split(","):
                low, sep, high = part.partition("-")
                seeds.extend(range(int(low), int(high) + 1) if sep else [int(low)])
        except ValueError:
            raise StudyError(f"[study] seeds: not 'A-B' or 'A,B,...': {value!r}") from None
        value = seeds
    if (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        if len(set(value)) != len(value):
            raise StudyError(f"[study] seeds: a seed is listed twice in {value!r}")
        return tuple(value)
    raise StudyError(
        f"[study] seeds must be a count >= 1, a non-empty list of integers or 'A-B', got {value!r}"
    )


def _metrics(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(m, str) for m in value):
        raise StudyError(f"[study] metrics must be a non-empty list of names, got {value!r}")
    for name in value:
        if name not in STUDY_METRICS:
            raise StudyError(
                f"[study] metrics: unknown metric {name!r} (known: {', '.join(STUDY_METRICS)})"
            )
    return tuple(dict.fromkeys([*value, *COST_METRICS]))


def _typed(name: str, value: object, where: str) -> Any:
    """One option value checked against its SimOptions field (``latency_ms``: 'LO-HI')."""
    if name == "latency_ms":
        try:
            low, high = _latency_pair(value)
        except ValueError as exc:
            raise StudyError(f"{where}: {exc}") from None
        return f"{low}-{high}"
    try:
        return parse_fields({name: value}, _OPTION_FIELDS, where)[name]
    except OptionsError as exc:
        raise StudyError(str(exc)) from None


def _latency_pair(value: object) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    if isinstance(value, str):
        low, sep, high = value.partition("-")
        if low.strip().isdigit() and (not sep or high.strip().isdigit()):
            return int(low), int(high if sep else low)
    raise ValueError(f"latency_ms must be MS, 'LO-HI' or [LO, HI], got {value!r}")


def _base(table: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key == "seed":
            raise StudyError("[base] seed: the seeds come from [study] seeds")
        if key not in (*_OPTION_FIELDS, "latency_ms"):
            raise StudyError(
                f"[base]: unknown option {key!r} (known: latency_ms, {', '.join(_OPTION_FIELDS)})"
            )
        if key == "faults" and isinstance(value, str):
            out[key] = value  # parsed per cell: sides need the cell's daemon count
        else:
            out[key] = _typed(key, value, "[base]")
    if "latency_ms" in out and ({"latency_min_ms", "latency_max_ms"} & out.keys()):
        raise StudyError("[base]: give latency_ms or latency_min_ms/latency_max_ms, not both")
    return out


def _axes(table: Mapping[str, Any]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    axes = []
    for name, values in table.items():
        if name in ("seed", "faults"):
            raise StudyError(
                f"[grid] {name}: not an axis ("
                + ("the seeds come from [study] seeds" if name == "seed" else "use partition")
                + ")"
            )
        if name not in (*_AXIS_FIELDS, "latency_ms", "partition"):
            raise StudyError(
                f"[grid]: unknown axis {name!r} (an option field, latency_ms or partition: "
                f"{', '.join(_AXIS_FIELDS)})"
            )
        if not isinstance(values, list) or not values:
            raise StudyError(f"[grid] {name} must be a non-empty list of values, got {values!r}")
        if name == "partition":
            typed = [_str(v, f"[grid] partition[{i}]") for i, v in enumerate(values)]
        else:
            typed = [_typed(name, v, f"[grid] {name}[{i}]") for i, v in enumerate(values)]
        if len(set(map(label, typed))) != len(typed):
            raise StudyError(f"[grid] {name} lists a value twice: {values!r}")
        axes.append((name, tuple(typed)))
    if "latency_ms" in table and {"latency_min_ms", "latency_max_ms"} & table.keys():
        raise StudyError("[grid]: latency_ms and latency_min_ms/latency_max_ms are one axis")
    return tuple(axes)


def _check_partition_names(study: Study) -> None:
    for name, values in study.axes:
        if name != "partition":
            continue
        for value in values:
            if value not in study.partitions and value not in SHAPES and value != NO_FAULTS:
                known = [*SHAPES, NO_FAULTS, *study.partitions]
                raise StudyError(
                    f"[grid] partition: unknown shape {value!r} (built in or in [partitions]: "
                    f"{', '.join(known)})"
                )


def _plot(study: Study, i: int, table: object) -> PlotSpec:
    where = f"[[plot]] {i + 1}"
    if not isinstance(table, dict):
        raise StudyError(f"{where} must be a table")
    _known_keys(where, table, _PLOT_KEYS)
    axes = dict(study.axes)
    x = table.get("x")
    if x not in axes:
        raise StudyError(f"{where}: x must be an axis of [grid] ({', '.join(axes)}), got {x!r}")
    ys = table.get("y")
    ys = [ys] if isinstance(ys, str) else ys
    if not isinstance(ys, list) or not ys:
        raise StudyError(f"{where}: y must be a metric or a non-empty list of metrics")
    for y in ys:
        if y not in STUDY_METRICS:
            raise StudyError(
                f"{where}: y: unknown metric {y!r} (known: {', '.join(STUDY_METRICS)})"
            )
    series = table.get("series")
    if series is not None and (series not in axes or series == x):
        raise StudyError(f"{where}: series must be another axis of [grid], got {series!r}")
    fixed = table.get("where", {})
    if not isinstance(fixed, dict):
        raise StudyError(f"{where}: where must be a table axis = value")
    typed_fixed: dict[str, Any] = {}
    for axis, value in fixed.items():
        if axis not in axes or axis in (x, series):
            raise StudyError(f"{where}: where: {axis!r} is not an axis other than x and series")
        typed = value if axis == "partition" else _typed(axis, value, f"{where}: where")
        if label(typed) not in map(label, axes[axis]):
            raise StudyError(f"{where}: where: {axis} = {value!r} is not a value of that axis")
        typed_fixed[axis] = typed
    for axis, values in study.axes:
        if len(values) > 1 and axis not in (x, series, *typed_fixed):
            raise StudyError(
                f"{where}: axis {axis!r} has several values: make it the series or fix it "
                f"with where = {{ {axis} = ... }}"
            )
    flags = {k: table.get(k, False) for k in ("log_x", "log_y")}
    for k, v in flags.items():
        if not isinstance(v, bool):
            raise StudyError(f"{where}: {k} must be true or false")
    ylabel = table.get("ylabel")
    return PlotSpec(
        file=_str(table.get("file", f"{ys[0]}-vs-{x}.png"), f"{where}: file"),
        x=str(x),
        y=tuple(ys),
        series=series,
        where=typed_fixed,
        title=_str(table.get("title", f"{', '.join(ys)} against {x}"), f"{where}: title"),
        ylabel=None if ylabel is None else _str(ylabel, f"{where}: ylabel"),
        log_x=flags["log_x"],
        log_y=flags["log_y"],
    )


# ---------------------------------------------------------------------------------- runs


@dataclass(frozen=True, slots=True)
class Task:
    index: int  # of the cell in grid order
    cell: Mapping[str, Any]
    seed: int
    options: Mapping[str, Any]  # options_to_json
    key: str
    weight: float  # a guess at its cost, for the order and the ETA


def run_key(cell: Mapping[str, Any], seed: int) -> str:
    return json.dumps(
        {"cell": {k: label(v) for k, v in cell.items()}, "seed": seed}, sort_keys=True
    )


def plan(study: Study) -> list[Task]:
    tasks = []
    for index, cell in enumerate(study.cells()):
        for seed in study.seeds:
            opt = study.options(cell, seed)
            # Cost grows about as daemons^3 per simulated second (issue 12, measured again
            # in docs/studies/delivery-scale); the constant is start-up and checking.
            weight = (opt.daemons**3 + 30) * (opt.safety_ms + opt.settle_ms)
            tasks.append(Task(index, cell, seed, options_to_json(opt), run_key(cell, seed), weight))
    return tasks


def same_options(recorded: object, planned: Mapping[str, Any]) -> bool:
    """Whether a recorded run's options are the planned ones. A field the record lacks (one
    ``SimOptions`` gained since) matches when the plan keeps its default."""
    if not isinstance(recorded, Mapping):
        return False
    defaults = options_to_json(SimOptions(seed=0))
    return all(
        _plain(recorded[k]) == _plain(v) if k in recorded else _plain(v) == _plain(defaults[k])
        for k, v in planned.items()
    )


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def run_task(task: Task) -> dict[str, Any]:
    """One run of the study, as its ``runs.jsonl`` record."""
    options = options_from_json(task.options)
    wall, cpu = time.perf_counter(), time.process_time()
    error = None
    try:
        result = run(options)
    except Exception as exc:  # a crash of the protocol under test is a finding, not an abort
        result, error = None, repr(exc)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    violations = list(result.violations) if result else []
    metrics = flat_metrics(
        result.metrics if result else None,
        options.daemons,
        len(violations),
        result.events if result else 0,
        wall,
        cpu,
    )
    return {
        "key": task.key,
        "cell": {k: task.cell[k] for k in task.cell},
        "seed": task.seed,
        "ok": error is None and not violations,
        "error": error,
        "violations": violations[:5],
        "metrics": metrics,
        "options": task.options,
    }


def load_runs(path: Path, err: TextIO | None = None) -> list[dict[str, Any]]:
    """The records of ``runs.jsonl``. A last line cut short by an interrupt is dropped (and
    cut off the file, so appending goes on cleanly); any other bad line is an error."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "key" not in record:
                raise ValueError("not a run record")
        except ValueError:
            if i == len(lines) - 1:  # unterminated: the run that was being written
                path.write_text(text[: len(text) - len(line)])
                if err is not None:
                    print(f"study: dropped an unfinished last line of {path}", file=err)
                break
            raise StudyError(f"{path}:{i + 1}: not a run record") from None
        records.append(record)
    return records


class Progress:
    """``study: [#####-----] done/total runs, failed, elapsed, ETA`` on ``err``: rewritten in
    place on a terminal, a plain line every ``every_s`` seconds elsewhere. The ETA weighs the
    runs left by their expected cost (``Task.weight``)."""

    def __init__(self, total: int, resumed: int, weight: float, err: TextIO | None,
                 every_s: float = 30.0) -> None:  # fmt: skip
        self.total, self.resumed, self.weight = total, resumed, weight
        self.err = err
        self.tty = err is not None and err.isatty()
        self.every_s = every_s
        self.started = self.last = time.perf_counter()
        self.done_weight = 0.0

    def text(self, done: int, failed: int) -> str:
        elapsed = time.perf_counter() - self.started
        share = done / self.total if self.total else 1.0
        bar = "#" * round(24 * share) + "-" * (24 - round(24 * share))
        eta = (
            _duration(elapsed * (self.weight - self.done_weight) / self.done_weight)
            if self.done_weight
            else "?"
        )
        resumed = f" ({self.resumed} resumed)" if self.resumed else ""
        return (
            f"study: [{bar}] {done}/{self.total} runs{resumed}, {failed} failed, "
            f"{_duration(elapsed)} elapsed, ETA {eta}"
        )

    def update(self, done: int, failed: int, weight: float = 0.0) -> None:
        self.done_weight += weight
        if self.err is None:
            return
        now = time.perf_counter()
        if self.tty:
            self.err.write(f"\r\x1b[K{self.text(done, failed)}")
        elif now - self.last >= self.every_s and done < self.total:
            self.err.write(self.text(done, failed) + "\n")
        else:
            return
        self.last = now
        self.err.flush()

    def clear(self) -> None:
        if self.err is not None and self.tty:
            self.err.write("\r\x1b[K")
            self.err.flush()


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _quiet_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


def run_study(
    study: Study,
    out_dir: Path,
    jobs: int,
    restart: bool = False,
    run_new: bool = True,
    out: TextIO = sys.stdout,
    err: TextIO | None = sys.stderr,
) -> int:
    """Run what ``out_dir/runs.jsonl`` lacks (none with ``run_new`` False), then write the
    summaries and plots. Exit status 0 when every run passed, 1 when one violated a property
    or raised, 130 when interrupted (what finished is kept)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_path = out_dir / RUNS
    if restart and runs_path.exists():
        runs_path.unlink()
    tasks = plan(study)
    records = load_runs(runs_path, err)
    done = _check_resume(tasks, records, runs_path)
    todo = [t for t in tasks if t.key not in done] if run_new else []
    if todo:
        todo.sort(key=lambda t: -t.weight)  # longest first: no straggler at the end
        if not _execute(todo, len(tasks), len(done), runs_path, jobs, records, err):
            print(
                f"study: interrupted; {len(_check_resume(tasks, records, runs_path))} of "
                f"{len(tasks)} runs are in {runs_path}: run the same command to resume",
                file=out,
            )
            return 130
    written = write_outputs(study, out_dir, tasks, records)
    failed = [r for r in _latest(records, tasks).values() if not r.get("ok")]
    for r in failed:
        first = r.get("error") or (r.get("violations") or ["?"])[0]
        print(f"FAIL {r['key']}: {first}", file=out)
    print(
        f"study: {len(_latest(records, tasks))}/{len(tasks)} runs, {len(failed)} failed; "
        f"wrote {', '.join(str(p) for p in written)}",
        file=out,
    )
    return 1 if failed else 0


def _check_resume(
    tasks: Sequence[Task], records: Sequence[Mapping[str, Any]], path: Path
) -> set[str]:
    """Keys of the planned runs already recorded. A record of a planned cell and seed made
    with other options (the study file changed) is refused."""
    planned = {t.key: t for t in tasks}
    done = set()
    for r in records:
        task = planned.get(r["key"])
        if task is None:
            continue
        if not same_options(r.get("options"), task.options):
            raise StudyError(
                f"{path} holds a run of {r['key']} with other options than the study file "
                "gives now (it changed since): use --restart to run everything again, or "
                "--out DIR for a new study"
            )
        done.add(task.key)
    return done


def _execute(
    todo: Sequence[Task],
    total: int,
    resumed: int,
    runs_path: Path,
    jobs: int,
    records: list[dict[str, Any]],
    err: TextIO | None,
) -> bool:
    """Run ``todo``, appending each record as it ends; False when interrupted."""
    if err is not None:
        already = f", {resumed} already in {runs_path}" if resumed else ""
        print(f"study: {len(todo)} of {total} runs to do{already}, {jobs} jobs", file=err)
    progress = Progress(total, resumed, sum(t.weight for t in todo), err)
    weights = {t.key: t.weight for t in todo}
    failed = sum(1 for r in records if not r.get("ok"))
    done = resumed
    progress.update(done, failed)
    pool = multiprocessing.get_context("fork").Pool(jobs, _quiet_worker) if jobs > 1 else None
    try:
        results = pool.imap_unordered(run_task, todo) if pool else map(run_task, todo)
        with runs_path.open("a") as f:
            for record in results:
                f.write(json.dumps(record, sort_keys=True) + "\n")
                f.flush()
                records.append(record)
                done += 1
                failed += 0 if record["ok"] else 1
                progress.update(done, failed, weights[record["key"]])
    except KeyboardInterrupt:
        progress.clear()
        if pool:
            pool.terminate()
        return False
    finally:
        progress.clear()
        if pool:
            pool.close()
            pool.join()
    return True


def _latest(
    records: Sequence[Mapping[str, Any]], tasks: Sequence[Task]
) -> dict[str, Mapping[str, Any]]:
    """The last record of every planned run."""
    planned = {t.key for t in tasks}
    return {r["key"]: r for r in records if r["key"] in planned}


# ------------------------------------------------------------------------------- outputs


def write_outputs(
    study: Study, out_dir: Path, tasks: Sequence[Task], records: Sequence[Mapping[str, Any]]
) -> list[Path]:
    """summary.csv, summary.md and the plots of the recorded runs; the paths written."""
    latest = _latest(records, tasks)
    index = {t.key: t.index for t in tasks}
    by_cell: dict[int, list[Mapping[str, Any]]] = {}
    for key, record in latest.items():
        by_cell.setdefault(index[key], []).append(record)
    cells = study.cells()
    rows = summarise(cells, by_cell, study.metrics)
    written = [out_dir / RUNS, out_dir / "summary.csv", out_dir / "summary.md"]
    if not written[0].exists():  # --report-only before any run
        written.pop(0)
    write_csv(out_dir / "summary.csv", study.axis_names, study.metrics, rows)
    plot_lines: list[str] = []
    try:
        from sim.studyplot import PlotUnavailable, write_plot

        for spec in study.plots:
            write_plot(spec, rows, study.axes, out_dir / spec.file)
            written.append(out_dir / spec.file)
            plot_lines += [f"![{spec.title}]({spec.file})", ""]
    except PlotUnavailable as exc:
        plot_lines = [f"(no plots: {exc})", ""]
    extra = len(records) - len(latest)
    (out_dir / "summary.md").write_text(
        "\n".join(_markdown(study, tasks, latest, rows, plot_lines, extra, out_dir)) + "\n"
    )
    return written


def _markdown(
    study: Study,
    tasks: Sequence[Task],
    latest: Mapping[str, Mapping[str, Any]],
    rows: Sequence[CellSummary],
    plot_lines: list[str],
    extra: int,
    out_dir: Path,
) -> list[str]:
    cpu = [float(r["metrics"]["cpu_s"]) for r in latest.values()]
    failed = sum(1 for r in latest.values() if not r.get("ok"))
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [f"# {study.title}", ""]
    if study.description:
        lines += [study.description.strip(), ""]
    lines += [
        f"Generated by `python -m sim study {study.path}` on {date}: {len(rows)} cells x "
        f"{len(study.seeds)} seeds = {len(tasks)} runs, {len(latest)} recorded "
        f"({failed} failed), {fmt(sum(cpu))} CPU-s in total (`{out_dir / RUNS}` has every run, "
        "with its full options).",
        "",
    ]
    if len(latest) < len(tasks):
        lines += [f"**Incomplete**: {len(tasks) - len(latest)} runs are not recorded yet.", ""]
    if extra:
        lines += [f"({extra} records of cells no longer in the grid are ignored.)", ""]
    lines += ["## Setup", ""]
    base = ", ".join(f"{k}={_show(v)}" for k, v in study.base.items()) or "(none)"
    lines.append(f"- base options: {base}; every other option keeps its `SimOptions` default")
    for name, values in study.axes:
        lines.append(f"- axis `{name}`: {', '.join(label(v) for v in values)}")
    seeds = study.seeds
    contiguous = seeds == tuple(range(seeds[0], seeds[0] + len(seeds)))
    shown = (
        f"{seeds[0]}-{seeds[-1]}" if contiguous and len(seeds) > 2 else ", ".join(map(str, seeds))
    )
    lines.append(f"- seeds: {shown} (the same seeds in every cell)")
    lines += _shape_lines(study)
    lines += ["", "## Results", ""]
    lines += markdown_table(study.axis_names, study.metrics, rows)
    lines += [
        "Mean over the runs of a cell ± the half-width of its 95 % Student t interval; "
        "`[k/n missing]`: k of the n runs had no value for the metric (see its definition) and "
        "are left out of the mean, never counted as 0.",
        "",
    ]
    if plot_lines:
        lines += ["## Plots", "", "Error bars: 95 % intervals.", "", *plot_lines]
    lines += ["## Metrics", "", *metric_glossary(study.metrics), ""]
    if study.notes:
        lines += ["## Notes", "", study.notes.strip(), ""]
    return lines


def _show(value: Any) -> str:
    return f"`{value}`" if isinstance(value, str) else label(value)


def _shape_lines(study: Study) -> list[str]:
    axes = dict(study.axes)
    if "partition" not in axes:
        return []
    counts = sorted({int(c.get("daemons", study.base.get("daemons", 3))) for c in study.cells()})
    lines = ["- partitions (as `--faults` specs, per daemon count):"]
    for name in axes["partition"]:
        specs = [f"{n}: `{faults_text(study.partition_faults(name, n), n)}`" for n in counts]
        lines.append(f"  - `{name}`: " + "; ".join(specs))
    return lines


# ---------------------------------------------------------------------------- command line


def main(args: list[str]) -> int:
    from sim.swarm import default_jobs

    parser = argparse.ArgumentParser(
        prog="python -m sim study",
        description="Run a study: a grid of options x seeds (a TOML file, docs/simulation.md "
        "'Studies'), in parallel, resuming from DIR/runs.jsonl; write summary.csv, summary.md "
        "(means, 95 % intervals) and the PNG plots. Exit 0 when every run passed, 1 when one "
        "failed, 2 on a bad study file, 130 when interrupted.",
    )
    parser.add_argument("file", type=Path, metavar="FILE.toml")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="output directory (default: FILE without .toml)"
    )
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="parallel runs")
    parser.add_argument("--restart", action="store_true", help="discard DIR/runs.jsonl first")
    parser.add_argument(
        "--report-only", action="store_true", help="no new runs: summarise what is recorded"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    ns = parser.parse_args(args)
    if ns.jobs < 1:
        parser.error("argument --jobs: must be >= 1")
    out_dir: Path = ns.out or ns.file.with_suffix("")
    try:
        study = load_study(ns.file)
        if ns.dry_run:
            return _dry_run(study, out_dir)
        return run_study(study, out_dir, ns.jobs, restart=ns.restart, run_new=not ns.report_only)
    except StudyError as exc:
        print(f"study: {exc}", file=sys.stderr)
        return 2


def _dry_run(study: Study, out_dir: Path) -> int:
    tasks = plan(study)
    done = _check_resume(tasks, load_runs(out_dir / RUNS), out_dir / RUNS)
    print(
        f"{study.title}: {len(study.cells())} cells x {len(study.seeds)} seeds = {len(tasks)} runs"
    )
    for i, cell in enumerate(study.cells()):
        opt = study.options(cell, study.seeds[0])
        where = " ".join(f"{k}={label(v)}" for k, v in cell.items())
        left = sum(1 for t in tasks if t.index == i and t.key not in done)
        print(f"  {where or '(base)'}: {opt.describe()} [{left} to run]")
    print(f"{len(tasks) - len(done)} runs to do; outputs in {out_dir}")
    return 0
