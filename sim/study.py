"""The study command: a grid of run options x seeds, run in parallel, resumable, summarised and
plotted.

``python -m sim study FILE.toml [--out DIR] [--jobs J] [--restart] [--report-only] [--dry-run]``

Owns the command line only. The study file, its format (documented in that module and in
``docs/simulation.md``, "Studies"; two examples are in ``docs/studies/``) and its model are
``sim.studyfile``; the plan, the runs, ``runs.jsonl``, resuming and writing the outputs are
``sim.studyrun``; the numbers and the CSV and Markdown summaries are ``sim.studyreport``; the
plots are ``sim.studyplot``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.studyfile import StudyError, load_study
from sim.studyrun import dry_run, run_study


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
            return dry_run(study, out_dir)
        return run_study(study, out_dir, ns.jobs, restart=ns.restart, run_new=not ns.report_only)
    except StudyError as exc:
        print(f"study: {exc}", file=sys.stderr)
        return 2
