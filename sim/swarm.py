"""Many random configurations in parallel; reports every violating seed with its repro line."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from sim.options import random_options
from sim.run import run


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


def run_seed(seed: int) -> SeedOutcome:
    options = random_options(seed)
    try:
        result = run(options)
    except Exception as exc:  # a crash of the protocol under test is a finding, not an abort
        return SeedOutcome(seed, False, options.describe(), (f"EXCEPTION {exc!r}",), 0.0)
    return SeedOutcome(seed, result.ok, options.describe(), result.violations, result.wall_s)


def swarm(seeds: list[int], jobs: int, out: TextIO = sys.stdout) -> int:
    started = time.perf_counter()
    failures: list[SeedOutcome] = []
    done = 0
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for outcome in pool.imap_unordered(run_seed, seeds, chunksize=2):
            done += 1
            if not outcome.ok:
                failures.append(outcome)
                print(f"FAIL seed {outcome.seed}: {outcome.summary}", file=out)
                for line in outcome.violations[:5]:
                    print(f"    {line}", file=out)
                print(f"    reproduce: python -m sim --seed {outcome.seed}", file=out)
    wall = time.perf_counter() - started
    print(
        f"swarm: {done} seeds, {len(failures)} failed, {wall:.1f} s wall, {jobs} jobs",
        file=out,
    )
    return 1 if failures else 0


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)))
