"""A study file: its format, its model (``Study``: the grid of options x seeds, the plots) and
the parsing that refuses a wrong file with a message naming the table and key.

Owns the TOML format (below; ``docs/simulation.md``, "Studies", documents it and two examples
are in ``docs/studies/``), the built-in partition shapes (``SHAPES``), and how a cell and a seed
make an ordinary ``SimOptions`` (``Study.options``). It does not run anything (``sim.studyrun``:
the plan, the runs, resume and the outputs) and has no command line (``sim.study``).

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

import itertools
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sim.faultplan import FaultPlan, daemon_names, side_labels
from sim.options import OptionsError, SimOptions
from sim.optionsfile import FIELD_TYPES, parse_faults, parse_fields
from sim.studyreport import COST_METRICS, STUDY_METRICS, label

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
