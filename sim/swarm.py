"""Many random configurations in parallel; reports every violating seed with its repro and
shrink lines on stdout, and a progress line (done/total, failures, ETA) on stderr. With
``shrink_runs`` (``--shrink``), every failing seed is then shrunk (``sim.shrink``), in parallel.
With opt-in ``draws`` (``--nemesis``, ``--buggify``, ``--core``) a failing seed's options are not
the plain seed's: they are saved to an options file, which its repro and shrink lines name."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from functools import partial
from multiprocessing.pool import Pool
from pathlib import Path
from typing import TextIO

from sim.options import PLAIN, Draws, SimOptions, random_options
from sim.optionsfile import default_options_path, save_options
from sim.progress import StatusLine
from sim.run import run
from sim.shrink import ShrinkError, shrink, shrink_command, shrink_report


@dataclass(frozen=True, slots=True)
class SeedOutcome:
    seed: int
    ok: bool
    summary: str
    violations: tuple[str, ...]
    wall_s: float


def parse_seeds(text: str) -> list[int]:
    """'0-999' or '1,5,9' or '3' -> seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            seeds.extend(range(int(low), int(high) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def _options(seed: int, draws: Draws) -> SimOptions:
    return random_options(seed) if draws.plain else random_options(seed, draws)


def run_seed(seed: int, draws: Draws = PLAIN) -> SeedOutcome:
    options = _options(seed, draws)
    try:
        result = run(options)
    except Exception as exc:  # a crash of the protocol under test is a finding, not an abort
        return SeedOutcome(seed, False, options.describe(), (f"EXCEPTION {exc!r}",), 0.0)
    return SeedOutcome(seed, result.ok, options.describe(), result.violations, result.wall_s)


class Progress(StatusLine):
    """``swarm: done/total seeds, failed, elapsed, ETA`` (see ``StatusLine``)."""

    def text(self, done: int, failed: int) -> str:
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (self.total - done) if done else 0.0
        return (
            f"swarm: {done}/{self.total} seeds, {failed} failed, "
            f"{elapsed:.0f} s elapsed, ETA {eta:.0f} s"
        )


def shrink_seed(task: tuple[int, int] | tuple[int, int, Draws]) -> str:
    """Shrink one failing seed (drawn with ``draws``, default plain) with a budget of
    ``max_runs``; its report, as text."""
    seed, max_runs = task[0], task[1]
    draws = task[2] if len(task) > 2 else PLAIN
    try:
        result = shrink(_options(seed, draws), max_runs=max_runs)
    except ShrinkError as exc:
        return f"SHRINK seed {seed}: {exc}"
    first, *rest = shrink_report(result)
    return "\n".join([f"SHRINK seed {seed}: {first}", *(f"  {line}" for line in rest)])


def _shrink_failures(
    pool: Pool,
    failures: list[SeedOutcome],
    max_runs: int,
    out: TextIO,
    err: TextIO | None,
    draws: Draws = PLAIN,
) -> None:
    if err is not None:
        print(f"swarm: shrinking {len(failures)} failing seeds, {max_runs} runs each", file=err)
    tasks = [(f.seed, max_runs, draws) for f in sorted(failures, key=lambda f: f.seed)]
    for text in pool.imap(shrink_seed, tasks):
        print(text, file=out)
        out.flush()


def swarm(
    seeds: list[int],
    jobs: int,
    out: TextIO = sys.stdout,
    err: TextIO | None = sys.stderr,
    shrink_runs: int | None = None,
    draws: Draws = PLAIN,
) -> int:
    """Run ``seeds`` (drawn with ``draws``) on ``jobs`` processes; exit status 1 if any failed.
    ``shrink_runs``: also shrink every failing seed with that run budget."""
    started = time.perf_counter()
    failures: list[SeedOutcome] = []
    done = 0
    progress = Progress(len(seeds), err)
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for outcome in pool.imap_unordered(partial(run_seed, draws=draws), seeds, chunksize=2):
            done += 1
            if not outcome.ok:
                progress.clear()
                failures.append(outcome)
                print(f"FAIL seed {outcome.seed}: {outcome.summary}", file=out)
                for line in outcome.violations[:5]:
                    print(f"    {line}", file=out)
                path = _saved_options(outcome.seed, draws)
                repro = f"--options {path}" if path else f"--seed {outcome.seed}"
                print(f"    reproduce: python -m sim {repro}", file=out)
                print(f"    shrink: {shrink_command(outcome.seed, path)}", file=out)
                out.flush()
            progress.update(done, len(failures))
        progress.clear()
        if shrink_runs is not None and failures:
            _shrink_failures(pool, failures, shrink_runs, out, err, draws)
    wall = time.perf_counter() - started
    modes = "" if draws.plain else f" ({' '.join(draws.flags())})"
    print(
        f"swarm: {done} seeds{modes}, {len(failures)} failed, {wall:.1f} s wall, {jobs} jobs",
        file=out,
    )
    return 1 if failures else 0


def _saved_options(seed: int, draws: Draws) -> Path | None:
    """A failing seed drawn with opt-in modes: its options, saved (``sim-options-SEED-DIGEST.json``
    in the current directory); None for a plain seed (its seed reproduces it)."""
    if draws.plain:
        return None
    options = _options(seed, draws)
    path = default_options_path(options)
    save_options(options, path)
    return path


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)))
