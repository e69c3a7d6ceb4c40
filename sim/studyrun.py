"""Running a study: the plan (every cell of the grid x every seed, a ``Task`` each), the runs
(the same ``sim.run.run`` as ``python -m sim``, one process per job, a progress bar with an ETA
on stderr), ``runs.jsonl`` and resuming from it, and the outputs written from its records.

``runs.jsonl`` has one JSON line per finished run, appended as it ends, so an interrupted study
resumes where it stopped: a run is done when a line with its cell and seed is there (made with
the options the study file gives now). The outputs are ``summary.csv`` and ``summary.md``
(numbers and tables from ``sim.studyreport``) and one PNG per plot (``sim.studyplot``). It does
not own the study file and its model (``sim.studyfile``) or the command line (``sim.study``).
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sim.options import SimOptions
from sim.optionsfile import options_from_json, options_to_json
from sim.progress import StatusLine
from sim.run import run
from sim.studyfile import Study, StudyError, faults_text
from sim.studyreport import (
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


class Progress(StatusLine):
    """``study: [#####-----] done/total runs, failed, elapsed, ETA`` (see ``StatusLine``). The
    ETA weighs the runs left by their expected cost (``Task.weight``)."""

    def __init__(self, total: int, resumed: int, weight: float, err: TextIO | None,
                 every_s: float = 30.0) -> None:  # fmt: skip
        super().__init__(total, err, every_s)
        self.resumed, self.weight = resumed, weight
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
        super().update(done, failed)


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


def dry_run(study: Study, out_dir: Path) -> int:
    """``--dry-run``: the plan, each cell's options and how many of its runs are still to do."""
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
