"""``python -m groupcomm.benchmark.sweep``: run a grid of ``groupcomm bench`` runs and write
what docs/performance.md needs.

Why a separate command: the published tables are a grid (sizes x service levels x daemon
counts, with the zmq baseline at each size), and a latency-vs-load curve; running them by hand
one ``groupcomm bench`` at a time loses runs, mixes machine states and invites copying errors.
The sweep prints its plan and an estimate of the time first, then runs everything through the
same ``run_once`` as ``groupcomm bench``, appending every record to ``runs.jsonl`` as soon as it
exists and rewriting ``results.md`` (and ``latency.png``) after every run, so an interrupted
sweep still leaves usable files; ``--report FILE`` renders them again from a JSON-lines file.
The grid itself is in ``sweepgrid``, the tables in ``sweepreport``, the plot in ``plot``;
``--peer-runs FILE`` adds the peer kit's latency curves (corosync CPG, ...) from ``peerkit``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groupcomm.benchmark.command import protocol_setting, size_arg
from groupcomm.benchmark.peerkit import PeerCurves, load_curves
from groupcomm.benchmark.placement import TRANSPORTS, transport_problem
from groupcomm.benchmark.report import ProgressLine, json_line
from groupcomm.benchmark.runner import RunSpec, run_once
from groupcomm.benchmark.sweepgrid import Cell, Grid, describe, estimate_s
from groupcomm.benchmark.sweepreport import lat_points, normalize, render
from groupcomm.benchmark.workload import FLOOD_BATCH, SERVICES, parse_size
from groupcomm.config import (
    DEFAULT_SESSION_SEND_WINDOW,
    DEFAULT_SLOW_CONSUMER_BYTES,
    ProtocolConfig,
)

RUNS_FILE = "runs.jsonl"
REPORT_FILE = "results.md"
PLOT_FILE = "latency.png"
META_FILE = "meta.json"


def _sizes(text: str) -> tuple[int, ...]:
    """``100,1000,1MiB``: message sizes, each as ``groupcomm bench --size`` takes it."""
    try:
        values = tuple(parse_size(x.replace("_", "")) for x in text.split(",") if x.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected sizes like 100,1000,1MiB")
    return values


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(float(x.replace("_", ""))) for x in text.split(",") if x.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers like 100,1000") from e
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be positive")
    return values


def _services(text: str) -> tuple[str, ...]:
    if text == "all":
        return SERVICES
    names = tuple(x.strip().lower() for x in text.split(",") if x.strip())
    bad = [n for n in names if n not in SERVICES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected 'all' or a list of {', '.join(SERVICES)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m groupcomm.benchmark.sweep",
        description="Run a grid of groupcomm bench runs; write runs.jsonl, results.md "
        "(tables for docs/performance.md) and, with --lat-sweep, latency.png.",
    )
    g = p.add_argument_group("the grid")
    g.add_argument("--sizes", type=_sizes, default=(100, 1000, 10_000, 100_000), metavar="LIST")
    g.add_argument("--services", type=_services, default=SERVICES, metavar="all|LIST")
    g.add_argument("--daemons", type=_ints, default=(3, 5), metavar="LIST")
    g.add_argument("--runs", type=int, default=3, metavar="K", help="runs per cell (3)")
    g.add_argument("--dur", type=float, default=7.0, metavar="S", help="as groupcomm bench (7)")
    g.add_argument("--warm", type=float, default=1.0, metavar="S", help="(1)")
    g.add_argument("--drain", type=float, default=5.0, metavar="S", help="(5)")
    g.add_argument("--batch", type=int, default=FLOOD_BATCH, metavar="N", help="(100)")
    g.add_argument("--no-baseline", action="store_true", help="no zmq baseline runs")
    g.add_argument("--no-tput", action="store_true", help="skip the throughput grid")
    g.add_argument(
        "--lat-sweep",
        type=_ints,
        default=(),
        metavar="RATES",
        help="also latency vs offered load at these msg/s (AGREED and the baseline)",
    )
    g.add_argument("--lat-size", type=size_arg, default=100, metavar="SIZE", help="(100)")
    g.add_argument("--lat-daemons", type=int, default=3, metavar="N", help="(3)")
    g.add_argument(
        "--flood-sizes",
        type=_sizes,
        default=(100, 100_000),
        metavar="LIST",
        help="sizes of the one-sender flood check, per --daemons (100,100000)",
    )
    g.add_argument("--no-flood", action="store_true", help="skip the flood check")
    w = p.add_argument_group("where")
    w.add_argument("--netns", action="store_true", help="one namespace host per daemon (root)")
    w.add_argument("--transport", choices=TRANSPORTS, default="tcp")
    w.add_argument(
        "--protocol", action="append", default=[], metavar="KEY=VALUE", type=protocol_setting
    )
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, metavar="DIR", help="default: ./sweep-<date>-<time>")
    o.add_argument("--dry-run", action="store_true", help="print the plan and the estimate only")
    o.add_argument(
        "--report",
        type=Path,
        metavar="RUNS.jsonl",
        help="render results.md from earlier runs (a sweep's, or groupcomm bench --out FILE)",
    )
    o.add_argument(
        "--peer-runs",
        type=Path,
        action="append",
        default=[],
        metavar="PEER_RUNS.jsonl",
        help="add the peer kit's latency runs (bench.py ... --mode all --kind lat, e.g. corosync "
        "CPG) at the latency size to the latency table and plot; repeatable",
    )
    o.add_argument(
        "--peer-labels",
        type=lambda text: tuple(x.strip() for x in text.split(",") if x.strip()),
        default=(),
        metavar="LIST",
        help="only these peer kit labels, or short names like cpg (default: every label)",
    )
    o.add_argument("--quiet", action="store_true", help="no progress line")
    return p


@dataclass(frozen=True, slots=True)
class Peers:
    """What ``--peer-runs`` asks for; read again for every report (the sweep's rates and size
    decide which runs count and where they go)."""

    paths: tuple[Path, ...] = ()
    labels: tuple[str, ...] = ()

    def curves(self, size: int, rates: Sequence[float]) -> PeerCurves | None:
        if not self.paths:
            return None
        return load_curves(self.paths, size, rates, self.labels)


def grid_from(args: argparse.Namespace) -> Grid:
    parts = tuple(
        part
        for part, on in (
            ("tput", not args.no_tput),
            ("lat", bool(args.lat_sweep)),
            ("flood", not args.no_flood),
        )
        if on
    )
    return Grid(
        sizes=args.sizes,
        services=args.services,
        daemons=args.daemons,
        runs=args.runs,
        dur=args.dur,
        warm=args.warm,
        drain=args.drain,
        batch=args.batch,
        baseline=not args.no_baseline,
        lat_rates=tuple(float(r) for r in args.lat_sweep),
        lat_size=args.lat_size,
        lat_daemons=args.lat_daemons,
        flood_sizes=args.flood_sizes,
        parts=parts,
    )


def flow_limits(protocol: dict[str, int]) -> tuple[int, int, int]:
    """The flow-control settings the memory bound uses: ``window_bytes`` (the daemons' default
    or the ``--protocol`` override), ``session_send_window`` and ``slow_consumer_bytes`` (the
    daemons' defaults: the benchmark does not change them)."""
    window = int(protocol.get("window_bytes", ProtocolConfig().window_bytes))
    return window, DEFAULT_SESSION_SEND_WINDOW, DEFAULT_SLOW_CONSUMER_BYTES


def machine() -> str:
    import zmq

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
        f"pyzmq {zmq.__version__} / libzmq {zmq.zmq_version()} (PGM {zmq.has('pgm')}), "
        f"load average at the start {load}"
    )


def lat_setting(records: Sequence[dict[str, Any]], meta: dict[str, Any]) -> tuple[int, list[float]]:
    """The latency part's message size and offered rates: from the sweep's latency runs, else
    from ``meta`` (a live sweep's plan), else 100 B and none."""
    lat = [r for r in records if r.get("part") == "lat"]
    sizes = sorted({int(r["size"]) for r in lat if r.get("size")})
    size = sizes[0] if sizes else int(meta.get("lat_size") or 100)
    rates = {float(r["lat_rate"]) for r in lat if r.get("lat_rate")}
    rates |= {float(x) for x in meta.get("lat_rates") or ()}
    return size, sorted(rates)


def write_report(
    out: Path,
    records: Sequence[dict[str, Any]],
    meta: dict[str, Any],
    peers: PeerCurves | None = None,
) -> list[str]:
    """Rewrite results.md (and latency.png when there are latency runs, or ``peers`` curves, and
    matplotlib); returns notes for the user (e.g. why there is no plot)."""
    notes: list[str] = []
    stamps = sorted(str(r.get("ts")) for r in records if r.get("ts"))

    def seen(key: str, rs: Sequence[dict[str, Any]] = records) -> str:
        values = {json.dumps(r[key], sort_keys=True) for r in rs if r.get(key) not in (None, {})}
        return ", ".join(sorted(v.strip('"') for v in values))

    floods = [r for r in records if r.get("system") == "groupcomm" and r.get("kind") == "tput"]
    started = meta.get("started") or (stamps[0] if stamps else "?")
    setup = (
        f"Placement: {seen('placement') or '?'}, transport: {seen('transport') or '?'}, "
        f"protocol overrides: {seen('protocol') or 'none'}, "
        f"flood batch: {seen('batch', floods) or '-'} messages per call."
    )
    header = [f"### Sweep {started} - {stamps[-1] if stamps else '?'}", ""]
    if "command" in meta:
        header += [f"Command (from `{meta.get('cwd', '?')}`): `{meta['command']}`", ""]
        setup = f"Machine: {meta.get('machine', '?')}. {setup}"
    header.append(setup)
    window, send_window, slow = flow_limits(dict(meta.get("protocol") or {}))
    points = {**lat_points(records), **(peers.points if peers else {})}
    if peers is not None and not peers.points:
        notes.append(f"no peer kit latency runs (--mode all --kind lat) in {peers.source}")
    if points:
        try:
            from groupcomm.benchmark.plot import PlotUnavailable, plot_latency

            plot_latency(points, out / PLOT_FILE, plot_title(records, meta, peers))
            header += ["", f"![latency vs offered load]({PLOT_FILE})"]
        except PlotUnavailable as e:
            notes.append(str(e))
    text = render(
        records,
        header,
        window,
        send_window,
        slow,
        peers.points if peers else None,
        peers.describe() if peers else "",
    )
    (out / REPORT_FILE).write_text(text)
    return notes


def plot_title(
    records: Sequence[dict[str, Any]], meta: dict[str, Any], peers: PeerCurves | None
) -> str:
    first = next((r for r in records if r.get("part") == "lat"), None)
    size, _ = lat_setting(records, meta)
    ours = (
        ""
        if first is None
        else f"{first.get('nodes')} daemons, {first.get('placement')}/"
        f"{meta.get('transport', 'tcp')}"
    )
    if not peers or not peers.points:
        return f"groupcomm latency vs offered load: {size} B, {ours}, all-to-all"
    kit = ", ".join(
        dict.fromkeys(
            f"{r.system} ({r.setup})" if r.setup else r.system
            for r in peers.runs
            if r.system in peers.points
        )
    )
    return (
        f"latency vs offered load: {size} B, all-to-all"
        + (f"; groupcomm {ours}" if ours else "")
        + f"\npeer kit (3 members): {kit}"
    )


def _label(run: int, cell: Cell, runs: int) -> str:
    w = cell.work
    what = f"{cell.part} {cell.system} {w.size}B"
    if cell.system == "groupcomm":
        what += f" {w.service}"
    if w.kind == "lat":
        what += f" @{w.lat_rate:,.0f}/s"
    return f"{what} {w.daemons}d run {run + 1}/{runs}"


def run_sweep(args: argparse.Namespace, grid: Grid, out: Path, peers: Peers = Peers()) -> int:
    order = grid.runs_in_order()
    protocol = tuple(sorted(dict(args.protocol).items()))
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": shlex.join(["python", "-m", "groupcomm.benchmark.sweep", *sys.argv[1:]]),
        "cwd": os.getcwd(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "placement": "netns" if args.netns else "loopback",
        "transport": args.transport,
        "protocol": dict(protocol),
        "batch": grid.batch,
        "lat_size": grid.lat_size,
        "lat_rates": list(grid.lat_rates),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    progress = ProgressLine(False if args.quiet else None)
    records: list[dict[str, Any]] = []
    t0 = time.monotonic()
    try:
        for i, (run, cell) in enumerate(order):
            left, _ = estimate_s(order[i:], args.netns)
            progress.prefix = f"[{i + 1}/{len(order)}, ~{left / 60:.0f} min left] " + _label(
                run, cell, grid.runs
            )
            spec = RunSpec(
                cell.work,
                cell.system,
                run,
                netns=args.netns,
                protocol=protocol,
                transport=args.transport,
            )
            record = {**run_once(spec, progress), "part": cell.part, "nodes": cell.nodes}
            progress.clear()
            records.append(record)
            with (out / RUNS_FILE).open("a") as f:
                f.write(json_line(record) + "\n")
            for note in report_notes(out, records, meta, peers):
                print(f"sweep: {note}", file=sys.stderr)
    except KeyboardInterrupt:
        progress.clear()
        print(f"sweep: interrupted after {len(records)} of {len(order)} runs", file=sys.stderr)
        return 130
    finally:
        progress.clear()
    ok = sum(1 for r in records if r.get("ok"))
    print(
        f"sweep: {len(records)} runs in {(time.monotonic() - t0) / 60:.1f} min, {ok} ok; "
        f"wrote {out / RUNS_FILE}, {out / REPORT_FILE}"
        + (f", {out / PLOT_FILE}" if (out / PLOT_FILE).exists() else "")
    )
    return 0 if ok == len(records) else 1


def report_notes(
    out: Path, records: Sequence[dict[str, Any]], meta: dict[str, Any], peers: Peers
) -> list[str]:
    """``write_report`` with the peer curves read (again) at the sweep's latency size and
    rates; a peer file that cannot be read is a note, and the report is written without it."""
    size, rates = lat_setting(records, meta)
    try:
        curves = peers.curves(size, rates)
    except (OSError, ValueError) as e:
        return [f"cannot read the peer runs: {e}", *write_report(out, records, meta)]
    return write_report(out, records, meta, curves)


def report_only(path: Path, out: Path | None, peers: Peers = Peers()) -> int:
    try:
        lines = path.read_text().splitlines()
        records = [normalize(json.loads(line)) for line in lines if line.strip()]
    except (OSError, ValueError) as e:
        print(f"sweep: cannot read {path}: {e}", file=sys.stderr)
        return 2
    dest = out or path.parent
    dest.mkdir(parents=True, exist_ok=True)
    meta_path = path.parent / META_FILE
    meta: dict[str, Any] = {}
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
    try:
        curves = peers.curves(*lat_setting(records, meta))
    except (OSError, ValueError) as e:
        print(f"sweep: cannot read the peer runs: {e}", file=sys.stderr)
        return 2
    for note in write_report(dest, records, meta, curves):
        print(f"sweep: {note}", file=sys.stderr)
    extra = "" if curves is None else f" and {len(curves.runs)} peer kit runs"
    print(f"sweep: wrote {dest / REPORT_FILE} from {len(records)} runs{extra}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    peers = Peers(tuple(args.peer_runs), args.peer_labels)
    if args.report is not None:
        return report_only(args.report, args.out, peers)
    if args.runs < 1:
        print("sweep: --runs must be at least 1", file=sys.stderr)
        return 2
    problem = transport_problem(args.transport, args.netns)
    if problem is not None:
        print(f"sweep: {problem}", file=sys.stderr)
        return 2
    grid = grid_from(args)
    try:
        order = grid.runs_in_order()
    except ValueError as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    if not order:
        print("sweep: nothing to run (every part is switched off)", file=sys.stderr)
        return 2
    if grid.lat_rates:
        from groupcomm.benchmark.plot import plot_problem

        if (why := plot_problem()) is not None:
            print(f"sweep: {why}; the latency table is still written", file=sys.stderr)
    if peers.paths:
        try:
            curves = peers.curves(grid.lat_size, grid.lat_rates)
        except (OSError, ValueError) as e:
            print(f"sweep: cannot read the peer runs: {e}", file=sys.stderr)
            return 2
        assert curves is not None
        if not curves.points:  # before a long sweep rather than a note after every run
            print(
                f"sweep: no peer kit latency runs (--mode all --kind lat --size "
                f"{grid.lat_size}) in {curves.source}",
                file=sys.stderr,
            )
            return 2
        found = ", ".join(f"{s} at {len(ps)} rates" for s, ps in curves.points.items())
        print(f"peer kit curves ({grid.lat_size} B): {found}")
    out = args.out or Path(time.strftime("sweep-%Y%m%d-%H%M%S"))
    print(f"sweep plan ({'netns' if args.netns else 'loopback'}, transport {args.transport}):")
    print(describe(order, args.netns), flush=True)
    if args.dry_run:
        return 0
    print(f"writing to {out}/", flush=True)
    return run_sweep(args, grid, out, peers)


if __name__ == "__main__":
    sys.exit(main())
