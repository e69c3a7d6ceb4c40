"""The ``groupcomm bench`` subcommand: options, the loop over runs, and the output.

``groupcomm.cli`` only registers the subparser (``add_arguments``) and calls ``main``; all of
the benchmark stays in this package. With ``--compare`` the groupcomm run and the zmq baseline
run alternate, so that both see the same machine conditions as far as possible.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from groupcomm.benchmark.placement import TRANSPORTS, transport_problem
from groupcomm.benchmark.report import (
    ProgressLine,
    json_line,
    ratio,
    ratio_line,
    summary,
    table,
)
from groupcomm.benchmark.runner import RunSpec, run_once
from groupcomm.benchmark.workload import (
    DEFAULT_MAX_MESSAGE_BYTES,
    FLOOD_BATCH,
    KINDS,
    MEMBER_GC,
    MODES,
    SERVICES,
    Workload,
    daemon_protocol,
    default_drain,
    format_size,
    parse_size,
)
from groupcomm.config import PROTOCOL_KEYS
from groupcomm.core.ids import decimal


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode",
        choices=MODES,
        default="all",
        help="all: every member sends and "
        "receives; one: 1 sender + 1 receiver per daemon (default all)",
    )
    p.add_argument(
        "--size",
        type=size_arg,
        default=100,
        metavar="SIZE",
        help="message size in bytes, header included, or with a unit: 100kB, 1MiB, 16MiB, "
        "64MiB (100). Above the daemons' max_message_bytes (1 MiB) the bench raises it for its "
        "daemons",
    )
    p.add_argument("--service", choices=SERVICES, default="agreed", help="service level (agreed)")
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="tput",
        help="tput: senders flood; lat: the group offers --lat-rate msg/s (tput)",
    )
    p.add_argument("--daemons", type=int, default=3, metavar="N", help="daemons (3)")
    p.add_argument("--runs", type=int, default=3, metavar="K", help="runs per system (3)")
    p.add_argument("--dur", type=float, default=7.0, metavar="S", help="send for S s (7)")
    p.add_argument(
        "--warm",
        type=float,
        default=1.0,
        metavar="S",
        help="the window starts S s after the start (1)",
    )
    p.add_argument(
        "--drain",
        type=float,
        default=None,
        metavar="S",
        help="after --dur, wait at most S s for messages still in flight (5; from 1 MiB: "
        "enough for two messages per sender at 10 MB/s)",
    )
    p.add_argument(
        "--lat-rate",
        type=float,
        default=1000.0,
        metavar="R",
        help="--kind lat: msg/s offered by the whole group (1000)",
    )
    p.add_argument(
        "--stagger",
        action="store_true",
        help="--kind lat: shift sender k's schedule by k/senders of its interval, so the "
        "group's messages come evenly spaced (default: the peer kit's schedule, every sender's "
        "message i due at the same instant: bursts of one message per sender)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--baseline",
        choices=("zmq",),
        help="run the raw pyzmq PUB/SUB baseline instead of groupcomm",
    )
    which.add_argument(
        "--compare",
        action="store_true",
        help="run groupcomm and the zmq baseline alternately; print the ratio",
    )
    p.add_argument("--json", action="store_true", help="one JSON line per run on stdout")
    p.add_argument("--out", metavar="FILE", help="also append the JSON lines to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    p.add_argument("--keep", action="store_true", help="keep each run's work directory")
    p.add_argument(
        "--protocol",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=protocol_setting,
        help="a daemon [protocol] setting, e.g. suspect_timeout_ms=1000 (repeatable; "
        "default: the daemons' defaults, docs/operations.md)",
    )
    p.add_argument(
        "--netns",
        action="store_true",
        help="one network namespace per daemon on a bridge (needs root), members next to "
        "their daemon; default: everything on loopback",
    )
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="tcp",
        help="the daemons' data plane: tcp (plain TCP links, default), zmq (the ZeroMQ "
        "PUB/SUB mesh) or epgm (PGM multicast; needs --netns and a pyzmq with PGM)",
    )
    p.add_argument(
        "--keys",
        action="store_true",
        help="secure the daemons' links (keys made per run, TLS 1.3 between daemons; "
        "--transport tcp only), to measure what security costs",
    )
    p.add_argument(
        "--member-gc",
        choices=MEMBER_GC,
        default="tuned",
        help="tuned: the member processes call groupcomm.client.tune_gc at start-up, as "
        "docs/client.md recommends for fast receivers (default); default: they leave "
        "Python's garbage collector as it is",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        metavar="N",
        help=f"--kind tput: messages per Connection.multicast_many call of a flooding sender "
        f"({FLOOD_BATCH}); 1 = one Connection.multicast per message",
    )


def size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def protocol_setting(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep or key not in PROTOCOL_KEYS or not decimal(value) or int(value) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected KEY=POSITIVE_INT with KEY one of {', '.join(PROTOCOL_KEYS)}"
        )
    return key, int(value)


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with options argparse alone cannot check (None: nothing)."""
    if args.runs < 1:
        return "--runs must be at least 1"
    if args.stagger and args.kind != "lat":
        return "--stagger applies to --kind lat only (flooding senders have no schedule)"
    if args.batch is not None and args.kind != "tput":
        return "--batch applies to --kind tput only (paced senders send one message per call)"
    if args.keys and (args.transport != "tcp" or args.baseline):
        return "--keys secures --transport tcp only (and the baseline has no keys)"
    return transport_problem(args.transport, args.netns)


def main(args: argparse.Namespace) -> int:
    problem = usage_problem(args)
    if problem is not None:
        print(f"groupcomm bench: {problem}", file=sys.stderr)
        return 2
    senders = args.daemons if args.mode == "all" else 1
    try:
        work = Workload(
            mode=args.mode,
            size=args.size,
            service=args.service,
            kind=args.kind,
            daemons=args.daemons,
            dur=args.dur,
            warm=args.warm,
            drain=args.drain if args.drain is not None else default_drain(args.size, senders),
            lat_rate=args.lat_rate,
            batch=FLOOD_BATCH if args.batch is None else args.batch,
            member_gc=args.member_gc,
            stagger=args.stagger,
        )
    except ValueError as e:
        print(f"groupcomm bench: {e}", file=sys.stderr)
        return 2
    systems = ["zmq"] if args.baseline else ["groupcomm", "zmq"] if args.compare else ["groupcomm"]
    given = dict(args.protocol)
    try:
        effective = daemon_protocol(work.size, given) if "groupcomm" in systems else given
    except ValueError as e:
        print(f"groupcomm bench: {e}", file=sys.stderr)
        return 2
    if effective.get("max_message_bytes") != given.get("max_message_bytes") and not args.quiet:
        print(
            f"groupcomm bench: --size {format_size(work.size)} is above the daemons' default "
            f"max_message_bytes ({format_size(DEFAULT_MAX_MESSAGE_BYTES)}): the daemons run "
            f"with [protocol] max_message_bytes = {effective['max_message_bytes']}",
            file=sys.stderr,
        )
    protocol = tuple(sorted(given.items()))  # the runner adds max_message_bytes for the size
    progress = ProgressLine(False if args.quiet else None)
    records: list[dict[str, Any]] = []
    try:
        for run in range(args.runs):
            for system in systems:
                progress.prefix = f"{system} run {run + 1}/{args.runs}"
                spec = RunSpec(
                    work,
                    system,
                    run,
                    keep=args.keep,
                    netns=args.netns,
                    protocol=protocol,
                    transport=args.transport,
                    keys=args.keys,
                )
                record = run_once(spec, progress)
                progress.clear()
                records.append(record)
                _emit(record, args)
    finally:
        progress.clear()
    if args.compare and args.json:
        ratios = {"compare": ratio(records), "mode": work.mode, "size": work.size}
        print(json_line({**ratios, "service": work.service, "kind": work.kind}), flush=True)
    if not args.json:
        print(table(records))
        if args.runs > 1 or args.compare:
            print(summary(records))
        if args.compare:
            print(ratio_line(ratio(records)))
    return 0 if all(r["ok"] for r in records) else 1


def _emit(record: dict[str, Any], args: argparse.Namespace) -> None:
    line = json_line(record)
    if args.json:
        print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
