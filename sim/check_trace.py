"""Command line: ``python -m sim.check_trace FILE [FILE...]`` runs every checker over a trace.

Several files (e.g. one per live daemon) are merged by ``t``, stably. Exit status: 0 when every
property holds, 1 on violations, 2 when a file cannot be read or is not a valid trace.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

from sim.checkers import CHECKERS, check_all
from sim.checkers.base import Checker
from sim.checkers.liveness import L3_MAX_REGULAR_INSTALLS, check_l3
from sim.trace import TraceError, load_traces


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m sim.check_trace",
        description="Check an observable groupcomm trace (JSON Lines) against SEMANTICS.md.",
    )
    ap.add_argument("files", nargs="+", metavar="FILE", help="trace file(s); merged by t")
    ap.add_argument(
        "--max-per-property",
        type=int,
        default=20,
        metavar="N",
        help="print at most N violations per property (default 20; 0 = all)",
    )
    ap.add_argument(
        "--l3-max-regular",
        type=int,
        default=L3_MAX_REGULAR_INSTALLS,
        metavar="N",
        help="L3 bound: regular installs per live daemon after 'stable' (default %(default)s)",
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        trace = load_traces(args.files)
    except (OSError, TraceError) as exc:
        print(f"bad trace: {exc}", file=sys.stderr)
        return 2
    checkers: dict[str, Checker] = dict(CHECKERS)
    checkers["L3"] = functools.partial(check_l3, max_regular=args.l3_max_regular)
    violations = check_all(trace, checkers)
    if not violations:
        print(f"OK: {len(trace.events)} events, {len(checkers)} properties checked")
        return 0
    shown: dict[str, int] = {}
    for v in violations:
        shown[v.prop] = shown.get(v.prop, 0) + 1
        if args.max_per_property <= 0 or shown[v.prop] <= args.max_per_property:
            print(v)
    for prop, n in sorted(shown.items()):
        if 0 < args.max_per_property < n:
            print(f"{prop}: {n - args.max_per_property} more violation(s) not shown")
    n_events = len(trace.events)
    print(f"FAIL: {len(violations)} violation(s) of {len(shown)} properties in {n_events} events")
    return 1


if __name__ == "__main__":
    sys.exit(main())
