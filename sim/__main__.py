"""The simulator's command line: one run (``python -m sim [--seed N] [option flags...]`` or
``--options FILE``), ``swarm``, ``shrink``, ``study FILE.toml``, ``scenario FILE`` and ``demo``.

Owns the flags (one per ``SimOptions`` field), how a run's options are built (the seed's, or a
file's, overridden by the flags), what a run prints (summary, metrics, verdict, the one line
that reproduces it and, for a failing run, the one that shrinks it) and the files it writes
(trace, metrics JSON, options file)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from sim.checkers.liveness import core_report
from sim.metrics import format_metrics, metrics_record
from sim.options import PLAIN, Draws, OptionsError, SimOptions, random_options, with_changes
from sim.optionsfile import (
    FAULT_SYNTAX,
    default_options_path,
    dump_options,
    is_plain_seed,
    load_options,
    options_to_json,
    parse_faults,
    repro_command,
    save_options,
)
from sim.run import RunResult, run
from sim.shrink import DEFAULT_MAX_RUNS, ShrinkError, shrink, shrink_command, shrink_report
from sim.swarm import default_jobs, parse_seeds, swarm
from sim.trace import load_trace

# Flags of SimOptions fields: (flag, field, type, metavar, help). --latency-ms, --faults and the
# two booleans are added apart.
_FLAGS: tuple[tuple[str, str, str, str, str], ...] = (
    ("--daemons", "daemons", "pos", "N", "number of daemons (d1..dN)"),
    ("--clients-per-daemon", "clients_per_daemon", "nat", "N", "client connections per daemon"),
    ("--groups", "groups", "pos", "N", "number of groups the workload uses"),
    ("--latency-tail", "latency_tail", "prob", "P", "chance of a slow frame (x5 latency)"),
    ("--loss", "loss", "prob", "P", "frame loss rate in the safety phase"),
    ("--duplication", "duplication", "prob", "P", "frame duplication rate"),
    ("--safety-ms", "safety_ms", "pos", "MS", "length of the safety phase (faults happen here)"),
    ("--settle-ms", "settle_ms", "pos", "MS", "length of the liveness phase after the heal"),
    ("--quiet-ms", "quiet_ms", "nat", "MS", "end of the settle phase without client traffic"),
    ("--rate", "rate_per_client", "rate", "R", "client operations per second per connection"),
    ("--tick-ms", "tick_ms", "pos", "MS", "protocol tick"),
    ("--heartbeat-ms", "heartbeat_ms", "pos", "MS", "heartbeat period"),
    ("--suspect-timeout-ms", "suspect_timeout_ms", "pos", "MS", "silence before suspicion"),
    ("--flush-timeout-ms", "flush_timeout_ms", "pos", "MS", "proposer waits for Flush reports"),
    ("--install-timeout-ms", "install_timeout_ms", "pos", "MS", "member waits for Install"),
    ("--gather-timeout-ms", "gather_timeout_ms", "pos", "MS", "wait for another's proposal"),
    ("--window-msgs", "window_msgs", "pos", "N", "own unstable messages in flight"),
    ("--window-bytes", "window_bytes", "pos", "B", "own unstable payload bytes in flight"),
    ("--batch-bytes", "batch_bytes", "pos", "B", "Data frames are cut at this size"),
    ("--max-message-bytes", "max_message_bytes", "pos", "B", "largest client message"),
    ("--fragment-bytes", "fragment_bytes", "pos", "B", "longer messages travel in fragments"),
    ("--star-members", "star_members", "pos", "N", "views this large use star acknowledgements"),
)
_FLAG_OF: dict[str, str] = {
    **{dest: flag for flag, dest, *_ in _FLAGS},
    "latency_min_ms": "--latency-ms",
    "latency_max_ms": "--latency-ms",
    "faults": "--faults",
    "seed": "--seed",
}


def _number(kind: str) -> Any:
    def convert(text: str) -> int | float:
        try:
            value: int | float = float(text) if kind in ("prob", "rate") else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if kind == "prob" and not 0 <= value <= 1:
            raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text}")
        if (kind == "pos" and value < 1) or (kind == "rate" and value <= 0):
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        if kind == "nat" and value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    return convert


def _latency(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        pair = (int(low), int(high if sep else low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not LO-HI in ms: {text!r}") from None
    if pair[0] < 0 or pair[0] > pair[1]:
        raise argparse.ArgumentTypeError(f"need 0 <= LO <= HI, got {text!r}")
    return pair


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sim",
        description="Run one simulated configuration: the seed's options (or an options file's), "
        "overridden by the flags. Other commands: swarm, shrink, study, scenario, demo "
        "(python -m sim CMD -h).",
        argument_default=argparse.SUPPRESS,
    )
    base = parser.add_argument_group("base")
    base.add_argument(
        "--seed", type=int, metavar="N", help="seed of every random choice (default 0)"
    )
    base.add_argument("--options", type=Path, metavar="FILE", help="options file (JSON)")
    _draw_flags(base)
    opts = parser.add_argument_group("options (override the base)")
    for flag, dest, kind, metavar, text in _FLAGS:
        opts.add_argument(flag, dest=dest, type=_number(kind), metavar=metavar, help=text)
        if dest == "groups":
            opts.add_argument(
                "--latency-ms",
                dest="latency",
                type=_latency,
                metavar="LO-HI",
                help="frame latency, uniform in [LO, HI] ms (or one value)",
            )
    opts.add_argument("--faults", metavar="SPEC", help=FAULT_SYNTAX)
    for name, text in (("churn", "clients close/reopen, leave/join"), ("codec", "msgpack frames")):
        opts.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, help=text)
    out = parser.add_argument_group("output")
    out.add_argument("--trace", type=Path, metavar="FILE", help="write the JSON Lines trace here")
    out.add_argument("--metrics", action="store_true", help="print the run's metrics")
    out.add_argument("--metrics-json", type=Path, metavar="FILE", help="write metrics as JSON")
    out.add_argument(
        "--save-options",
        type=Path,
        metavar="FILE",
        help="write the run's options here (default for runs that are not a plain seed: "
        "sim-options-SEED-DIGEST.json in the current directory)",
    )
    out.add_argument(
        "--show-options", action="store_true", help="print the options as JSON and exit"
    )
    return parser


_DRAW_HELP = {
    "nemesis": "the seed's faults plus partition shapes, link cuts, flaps, slow and lossy links, "
    "swizzles and clock faults (stream nemesis-SEED)",
    "buggify": "in half the seeds, random protocol settings within their valid ranges "
    "(stream buggify-SEED)",
    "core": "a continuing-fault liveness run: a majority core stays connected while the others "
    "flap, crash and are cut (L4; streams core-SEED, core-faults-SEED)",
    "star": "every view of two or more daemons uses star acknowledgements (star_members 2)",
}


def _draw_flags(group: Any, *, buggify_default: bool = False) -> None:
    for name, text in _DRAW_HELP.items():
        if name == "buggify" and buggify_default:
            # The swarm draws BUGGIFY's settings in half its seeds unless told not to (issue
            # 12: FoundationDB's simulation randomises in every run it can).
            group.add_argument(
                "--buggify",
                action=argparse.BooleanOptionalAction,
                default=True,
                help=f"{text}; on by default (--no-buggify: every seed with the defaults)",
            )
        else:
            group.add_argument(f"--{name}", action="store_true", help=text)


def _draws(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> Draws:
    try:
        return Draws(**{n: bool(getattr(ns, n, False)) for n in _DRAW_HELP})
    except OptionsError as exc:
        parser.error(f"argument --core: {exc}")


def build_options(
    ns: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[SimOptions, Path | None]:
    """The run's options and the options file they came from unchanged (or None). Bad input
    exits through ``parser.error`` naming the flag (or the options file and its field)."""
    given = vars(ns)
    source: Path | None = given.get("options")
    draws = _draws(ns, parser)
    if source and not draws.plain:
        parser.error(f"argument {draws.flags()[0]}: draws a seed's options, not with --options")
    try:
        base = load_options(source) if source else random_options(given.get("seed", 0), draws)
    except OptionsError as exc:
        parser.error(f"argument --options: {exc}")
    try:
        return _with_flags(base, given, source, draws)
    except OptionsError as exc:
        parser.error(f"argument {_FLAG_OF.get(exc.field, '--' + exc.field)}: {exc}")


def _with_flags(
    base: SimOptions, given: dict[str, Any], source: Path | None, draws: Draws = PLAIN
) -> tuple[SimOptions, Path | None]:
    changes: dict[str, Any] = {dest: given[dest] for _, dest, *_ in _FLAGS if dest in given}
    for name in ("seed", "churn", "codec"):
        if name in given and not (name == "seed" and source is None):
            changes[name] = given[name]
    if "latency" in given:
        changes["latency_min_ms"], changes["latency_max_ms"] = given["latency"]
    if "faults" in given:
        changes["faults"] = parse_faults(given["faults"], changes.get("daemons", base.daemons))
    options = with_changes(base, changes, redraw=source is None, draws=draws)
    return options, source if options == base else None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "swarm":
        return _swarm(args[1:])
    if args and args[0] == "shrink":
        return _shrink(args[1:])
    if args and args[0] == "study":
        from sim.study import main as study_main

        return study_main(args[1:])
    if args and args[0] == "scenario":
        from sim.scenario import main as scenario_main

        return scenario_main(args[1:])
    if args and args[0] == "demo":
        from sim.demo import main as demo_main

        return demo_main(args[1:])
    parser = _run_parser()
    ns = parser.parse_args(args)
    options, source = build_options(ns, parser)
    if getattr(ns, "show_options", False):
        print(dump_options(options), end="")
        return 0
    result = run(options)
    _write_outputs(ns, result)
    _report(result, getattr(ns, "metrics", False))
    path = _options_file(options, source, getattr(ns, "save_options", None))
    print(f"  reproduce: {repro_command(options, path)}")
    if not result.ok:
        print(f"  shrink: {shrink_command(options.seed, path)}")
    return 0 if result.ok else 1


def _options_file(options: SimOptions, source: Path | None, save: Path | None) -> Path | None:
    """Save the options where needed; the file that reproduces the run (None: its seed does)."""
    if save is not None:
        save_options(options, save)
        return save
    if is_plain_seed(options):
        return None
    if source is not None:
        return source
    path = default_options_path(options)
    save_options(options, path)
    return path


def _write_outputs(ns: argparse.Namespace, result: RunResult) -> None:
    trace: Path | None = getattr(ns, "trace", None)
    if trace is not None:
        trace.write_text("\n".join(result.trace_lines) + "\n")
    path: Path | None = getattr(ns, "metrics_json", None)
    if path is not None and result.metrics is not None:
        extra = {
            "options": options_to_json(result.options),
            "ok": result.ok,
            "violations": len(result.violations),
            "wall_s": round(result.wall_s, 3),
        }
        path.write_text(json.dumps(metrics_record(result.metrics, extra), indent=1) + "\n")


def _report(result: RunResult, metrics: bool) -> None:
    print(
        f"seed {result.options.seed}: {result.options.describe()}\n"
        f"  {result.events} events, {result.sends} sends, {result.deliveries} daemon deliveries, "
        f"{result.installs} installs, {result.wall_s:.2f} s"
    )
    if metrics and result.metrics is not None:
        for line in format_metrics(result.metrics):
            print(f"  {line}")
    if any(p.what == "core" for p in result.options.faults):
        for line in core_report(load_trace(result.trace_lines)):
            print(f"  {line}")
    if result.ok:
        print("  all properties hold")
    for line in result.violations[:50]:
        print(f"  VIOLATION {line}")


def _swarm(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim swarm", description="Run many random seeds in parallel."
    )
    parser.add_argument("--seeds", default="0-199", help="e.g. 0-999 or 1,5,9")
    parser.add_argument("--jobs", type=int, default=default_jobs())
    parser.add_argument(
        "--shrink",
        action="store_true",
        help="after the swarm, shrink every failing seed (in parallel) and print each result",
    )
    parser.add_argument(
        "--shrink-runs",
        type=_number("pos"),
        default=DEFAULT_MAX_RUNS,
        metavar="K",
        help=f"run budget of each shrink (default {DEFAULT_MAX_RUNS})",
    )
    _draw_flags(
        parser.add_argument_group("modes (a failing seed's repro: its options)"),
        buggify_default=True,
    )
    ns = parser.parse_args(args)
    return swarm(
        parse_seeds(ns.seeds),
        ns.jobs,
        shrink_runs=ns.shrink_runs if ns.shrink else None,
        draws=_draws(ns, parser),
    )


class _StatusLine:
    """Progress on ``err``: lines, and (on a terminal) a status line rewritten in place."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.shown = False

    def status(self, text: str) -> None:
        if self.shown or text:
            self.err.write(f"\r\x1b[K{text}")
            self.err.flush()
        self.shown = bool(text)

    def line(self, text: str) -> None:
        self.status("")
        print(text, file=self.err, flush=True)


def _shrink(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim shrink",
        description="Minimise a failing run: fewer faults, daemons, clients, shorter phases, "
        "while it still fails the same property. Writes the minimal options and prints the "
        "command that reproduces them. Exit 0 when shrunk, 1 when the run does not fail (the "
        "property), 2 on bad input.",
    )
    base = parser.add_mutually_exclusive_group(required=True)
    base.add_argument("--seed", type=int, metavar="N", help="shrink the seed's run")
    base.add_argument("--options", type=Path, metavar="FILE", help="shrink this options file")
    parser.add_argument(
        "--property",
        metavar="ID",
        help="property id to keep failing (default: the first violation's, e.g. EVS-3)",
    )
    parser.add_argument(
        "--max-runs",
        type=_number("pos"),
        default=DEFAULT_MAX_RUNS,
        metavar="K",
        help=f"run budget, the first run included (default {DEFAULT_MAX_RUNS})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write the minimal options here (default sim-shrunk-SEED-DIGEST.json)",
    )
    ns = parser.parse_args(args)
    try:
        options = load_options(ns.options) if ns.options else random_options(ns.seed)
    except OptionsError as exc:
        parser.error(f"argument --options: {exc}")

    status = _StatusLine(sys.stderr)
    try:
        result = shrink(
            options,
            prop=ns.property,
            max_runs=ns.max_runs,
            report=status.line,
            trying=status.status if sys.stderr.isatty() else None,
        )
    except ShrinkError as exc:
        print(f"shrink: {exc}")
        return 1
    finally:
        status.status("")
    for line in shrink_report(result, ns.out):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
