"""``python -m sim --seed N [--trace FILE]`` and ``python -m sim swarm --seeds 0-999``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.options import random_options
from sim.run import run
from sim.swarm import default_jobs, parse_seeds, swarm


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "swarm":
        return _swarm(args[1:])
    if args and args[0] == "demo":
        from sim.demo import main as demo_main

        return demo_main(args[1:])
    parser = argparse.ArgumentParser(prog="python -m sim", description="Run one simulated seed.")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--trace", type=Path, help="write the JSON Lines trace here")
    ns = parser.parse_args(args)
    result = run(random_options(ns.seed))
    if ns.trace:
        ns.trace.write_text("\n".join(result.trace_lines) + "\n")
    print(
        f"seed {ns.seed}: {result.options.describe()}\n"
        f"  {result.events} events, {result.sends} sends, {result.deliveries} daemon deliveries, "
        f"{result.installs} installs, {result.wall_s:.2f} s"
    )
    if result.ok:
        print("  all properties hold")
        return 0
    for line in result.violations[:50]:
        print(f"  VIOLATION {line}")
    print(f"  reproduce: {result.reproduce()}")
    return 1


def _swarm(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim swarm", description="Run many random seeds in parallel."
    )
    parser.add_argument("--seeds", default="0-199", help="e.g. 0-999 or 1,5,9")
    parser.add_argument("--jobs", type=int, default=default_jobs())
    ns = parser.parse_args(args)
    return swarm(parse_seeds(ns.seeds), ns.jobs)


if __name__ == "__main__":
    sys.exit(main())
