"""``python -m groupcomm.benchmark.fanout``: options, the loop over systems and parts, output.

The fan-out part runs every ``--systems`` entry (groupcomm once per ``--services`` entry) on one
namespace LAN, one after the other, with the same job. ``--catchup`` adds the catch-up part: the
same job with the last consumer away for ``--away`` seconds, then resuming from its stored
position; Redis Streams always, groupcomm once the client has replay (``replay``), Redis
pub/sub never (it keeps nothing for an absent subscriber).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import Any

from groupcomm.benchmark.fanout.aggregate import skipped
from groupcomm.benchmark.fanout.plan import SERVICES, SYSTEMS, FanoutConfig
from groupcomm.benchmark.fanout.redisserver import redis_problem
from groupcomm.benchmark.fanout.report import json_line, table
from groupcomm.benchmark.fanout.runner import FanoutRun, find_redis_python, run_system
from groupcomm.benchmark.placement import Placement, make_placement
from groupcomm.benchmark.report import ProgressLine

PUBSUB_NO_CATCHUP = (
    "pub/sub keeps nothing for a subscriber that is away: the lines sent meanwhile are lost, "
    "there is no position to resume from"
)


def _csv(choices: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(choices)}")
        return items

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m groupcomm.benchmark.fanout",
        description="Log fan-out: publishers replaying access-log lines to many consumers, "
        "groupcomm against Redis pub/sub and Redis Streams (docs/performance.md).",
    )
    d = FanoutConfig()
    p.add_argument(
        "--systems",
        type=_csv(SYSTEMS),
        default=list(SYSTEMS),
        help=f"comma list of {', '.join(SYSTEMS)} (all)",
    )
    p.add_argument(
        "--services",
        type=_csv(SERVICES),
        default=["agreed"],
        help="groupcomm services to run, comma list (agreed); e.g. agreed,fifo,reliable",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=d.rate,
        metavar="LINES_S",
        help=f"lines/s offered by all publishers together ({d.rate:,.0f})",
    )
    p.add_argument(
        "--flood",
        action="store_true",
        help="publishers send as fast as the system takes (--batch lines per call)",
    )
    p.add_argument("--publishers", type=int, default=d.publishers, metavar="N")
    p.add_argument("--consumers", type=int, default=d.consumers, metavar="N")
    p.add_argument(
        "--daemons",
        type=int,
        default=d.daemons,
        metavar="N",
        help="namespace hosts, one groupcomm daemon each (3)",
    )
    p.add_argument("--dur", type=float, default=d.dur, metavar="S", help="publish for S s (15)")
    p.add_argument(
        "--warm",
        type=float,
        default=d.warm,
        metavar="S",
        help="the window starts S s after the start (2)",
    )
    p.add_argument(
        "--drain",
        type=float,
        default=d.drain,
        metavar="S",
        help="after --dur, consumers wait at most S s for lines in flight (5)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="the log lines' seed (1)")
    p.add_argument(
        "--pool",
        type=int,
        default=d.pool,
        metavar="N",
        help=f"distinct lines per publisher, replayed in a cycle ({d.pool})",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=d.batch,
        metavar="N",
        help=f"most lines per send call or pipeline ({d.batch})",
    )
    p.add_argument(
        "--stream-maxlen",
        type=int,
        default=d.stream_maxlen,
        metavar="N",
        help=f"Redis Streams retention, XADD MAXLEN ~ N ({d.stream_maxlen:,})",
    )
    p.add_argument(
        "--loopback",
        action="store_true",
        help="everything on loopback instead of one namespace host per daemon",
    )
    p.add_argument(
        "--catchup",
        action="store_true",
        help="also measure the catch-up of a consumer away for --away s",
    )
    p.add_argument("--catchup-only", action="store_true", help="only the catch-up part")
    p.add_argument(
        "--away",
        type=float,
        default=60.0,
        metavar="S",
        help="catch-up: how long the consumer is away (60)",
    )
    p.add_argument(
        "--away-at",
        type=float,
        default=5.0,
        metavar="S",
        help="catch-up: it leaves S s after the start (5)",
    )
    p.add_argument(
        "--catchup-tail",
        type=float,
        default=20.0,
        metavar="S",
        help="catch-up: publishers go on S s after it resumed, and consumers drain at least "
        "S s after that (20)",
    )
    p.add_argument(
        "--caught-up-ms",
        type=float,
        default=1000.0,
        metavar="MS",
        help="catch-up: it is caught up at the first line it gets at most MS ms after the "
        "line was sent (1000)",
    )
    p.add_argument(
        "--redis-python",
        default="",
        metavar="PATH",
        help="interpreter with hiredis for the Redis members (default: this one, "
        "else the peer kit's /tmp/pbvenv/bin/python)",
    )
    p.add_argument("--out", metavar="FILE", help="append one JSON line per record to FILE")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout instead of tables")
    p.add_argument("--keep", action="store_true", help="keep each run's work directory")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    return p


def config_of(args: argparse.Namespace) -> FanoutConfig:
    return FanoutConfig(
        rate=0.0 if args.flood else args.rate,
        publishers=args.publishers,
        consumers=args.consumers,
        daemons=args.daemons,
        dur=args.dur,
        warm=args.warm,
        drain=args.drain,
        seed=args.seed,
        pool=args.pool,
        batch=args.batch,
        stream_maxlen=args.stream_maxlen,
    )


def plan_runs(args: argparse.Namespace, cfg: FanoutConfig) -> list[FanoutRun | dict[str, Any]]:
    """Every run of the command in order, or the record saying why a part is skipped."""
    out: list[FanoutRun | dict[str, Any]] = []
    if not args.catchup_only:
        for system in args.systems:
            for service in args.services if system == "groupcomm" else ["agreed"]:
                out.append(FanoutRun(cfg, system, service))
    if args.catchup or args.catchup_only:
        away = (args.away_at, args.away)
        long = dataclasses.replace(
            cfg,
            dur=args.away_at + args.away + args.catchup_tail,
            drain=max(cfg.drain, args.catchup_tail),
        )
        for system in args.systems:
            if system == "redis-pubsub":
                out.append(skipped(system, "catchup", PUBSUB_NO_CATCHUP))
            else:
                out.append(FanoutRun(long, system, args.services[0], away, args.caught_up_ms))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = config_of(args)
        catchup = args.catchup or args.catchup_only
        if catchup and min(args.away, args.catchup_tail, args.caught_up_ms) <= 0:
            raise ValueError("--away, --catchup-tail and --caught-up-ms must be positive")
        if catchup and args.away_at <= cfg.warm:
            raise ValueError("--away-at must be after --warm")
    except ValueError as e:
        print(f"fanout: {e}", file=sys.stderr)
        return 2
    runs = plan_runs(args, cfg)
    redis_python = ""
    if any(isinstance(r, FanoutRun) and r.system != "groupcomm" for r in runs):
        problem = redis_problem()
        if problem is None:
            redis_python, problem = find_redis_python(args.redis_python)
        if problem is not None:
            print(f"fanout: Redis runs skipped: {problem}", file=sys.stderr)
            runs = [
                skipped(r.system, "catchup" if r.away[1] else "fanout", problem)
                if isinstance(r, FanoutRun) and r.system != "groupcomm"
                else r
                for r in runs
            ]
    progress = ProgressLine(False if args.quiet else None)
    records: list[dict[str, Any]] = []
    place: Placement | None = None
    try:
        if any(isinstance(r, FanoutRun) for r in runs):
            progress("creating the namespace LAN" if not args.loopback else "loopback")
            place = make_placement(not args.loopback, cfg.daemons)
        for item in runs:
            if isinstance(item, dict):
                record = {**item, "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            else:
                assert place is not None
                run = dataclasses.replace(item, redis_python=redis_python, keep=args.keep)
                part = "catchup" if run.away[1] else "fanout"
                progress.prefix = f"{run.system} {part}"
                record = run_system(run, place, progress)
                progress.clear()
            records.append(record)
            _emit(record, args)
    except RuntimeError as e:  # no namespaces here
        progress.clear()
        print(f"fanout: {e}", file=sys.stderr)
        return 2
    finally:
        progress.clear()
        if place is not None:
            place.close()
    if not args.json:
        print(table(records))
    return 0 if all(r.get("ok") is not False for r in records) else 1


def _emit(record: dict[str, Any], args: argparse.Namespace) -> None:
    line = json_line(record)
    if args.json:
        print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
