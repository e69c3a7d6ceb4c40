"""One benchmark run, start to finish: placement (loopback or a namespace LAN), daemons
(groupcomm) or ports (zmq baseline), member processes, the start handshake, sampling during the
run, collection, analysis.

Every run gets a fresh placement, cluster and members, so runs are independent and a daemon's
peak RSS (VmHWM) belongs to that run. The orchestrator itself only sleeps and reads ``/proc``
while the members run: CPU (and, on a LAN, every host's traffic counters) at the window's edges,
RSS every ``MEM_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groupcomm import compiled
from groupcomm.benchmark.analysis import RunInputs, summarize
from groupcomm.benchmark.members import MemberError, MemberGroup
from groupcomm.benchmark.placement import Placement, make_placement
from groupcomm.benchmark.procstat import CpuWindow, PeakMemory
from groupcomm.benchmark.recorder import read_keys
from groupcomm.benchmark.wirecost import WireSample
from groupcomm.benchmark.workload import Workload, daemon_protocol, member_plan, zmq_window
from groupcomm.client.connection import GroupcommError, query_status
from groupcomm.core.ids import token_name
from groupcomm.localcluster import LocalCluster, free_ports

Progress = Callable[[str], None]
SYSTEMS = ("groupcomm", "zmq")
DAEMON_VIEW_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 60.0
START_LEAD_S = 0.3  # from handing out the start time to the start
MEM_EVERY_S = 0.25
FINISH_MARGIN_S = 15.0  # beyond dur + drain before stragglers are killed


@dataclass(frozen=True)
class RunSpec:
    work: Workload
    system: str = "groupcomm"
    run: int = 0
    keep: bool = False  # keep the work directory (logs, member results)
    netns: bool = False  # one namespace host per daemon instead of loopback
    protocol: tuple[tuple[str, int], ...] = ()  # daemons' [protocol] overrides
    transport: str = "tcp"  # the daemons' data plane: "tcp" (mesh) or "epgm" (needs netns)
    keys: bool = False  # secured links: TLS between daemons ([security], tcp only)

    @property
    def record_transport(self) -> str:
        """What the record's ``transport`` says: the baseline is always PUB/SUB over TCP."""
        return self.transport if self.system == "groupcomm" else "tcp"


def run_once(spec: RunSpec, progress: Progress) -> dict[str, Any]:
    """Run once; a run that cannot even start (no view, a member that never got ready, no
    namespaces) still yields a record, with ``ok`` false and the reason in ``problems``."""
    workdir = Path(tempfile.mkdtemp(prefix=f"gcbench-{spec.system}-"))
    place: Placement | None = None
    try:
        if spec.netns:
            progress("creating the namespace LAN")
        place = make_placement(spec.netns, spec.work.daemons)
        if spec.system == "groupcomm":
            record = _run_groupcomm(spec, place, workdir, progress)
        else:
            record = _run_zmq(spec, place, workdir, progress)
    except (TimeoutError, RuntimeError, OSError, ValueError) as e:
        record = failed(spec, f"{type(e).__name__}: {e}")
    finally:
        if place is not None:
            place.close()
        if not spec.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if spec.keep:
        record["workdir"] = str(workdir)
    if spec.system == "groupcomm":
        record["keys"] = spec.keys
    return record


def failed(spec: RunSpec, reason: str) -> dict[str, Any]:
    work = spec.work
    return {
        "system": spec.system,
        "mode": work.mode,
        "kind": work.kind,
        "size": work.size,
        "service": work.service if spec.system == "groupcomm" else "none",
        "placement": "netns" if spec.netns else "loopback",
        "transport": spec.record_transport,
        "batch": work.send_batch(spec.system),
        "daemons": work.daemons if spec.system == "groupcomm" else 0,
        "members": len(work.members()),
        "run": spec.run,
        "ok": False,
        "problems": [reason],
        "deliver_rate_min": None,
        "mbytes_per_s": None,
        "mbytes_per_s_sum": None,
        "p50_us": None,
        "p99_us": None,
        "order_same": None,
        "loss": None,
        "send_rate": None,
        "daemon_rss_mb": [],
        "member_rss_mb": {},
        "dur": work.dur,
        "lat_rate": work.lat_rate if work.kind == "lat" else None,
        "stagger": work.stagger,
        # the daemons' build: the same checkout and environment as this process
        "compiled": compiled.active() if spec.system == "groupcomm" else None,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --------------------------------------------------------------------------------- groupcomm


def _run_groupcomm(
    spec: RunSpec, place: Placement, workdir: Path, progress: Progress
) -> dict[str, Any]:
    work = spec.work
    names = tuple(f"d{i + 1}" for i in range(work.daemons))
    protocol = daemon_protocol(work.size, dict(spec.protocol))  # large sizes: max_message_bytes
    cluster = place.cluster(workdir, names, protocol, spec.transport)
    cluster.keys = spec.keys
    progress("starting daemons")
    group = MemberGroup(workdir)
    cluster.start()
    try:
        sequencer = asyncio.run(wait_daemons(cluster, names, DAEMON_VIEW_TIMEOUT_S))
        for m in work.members():
            plan = member_plan(m, work, str(workdir / f"m{m.id}.json"))
            endpoint = cluster.endpoints[names[m.node]]
            argv = [sys.executable, "-m", "groupcomm.benchmark.member", *plan.to_argv()]
            group.spawn(m.id, [*place.prefix(m.node), *argv, "--endpoint", endpoint])
        daemon_pids = {name: cluster.procs[name].pid for name in names}
        inputs = _timed(spec, place, group, daemon_pids, workdir, progress, names)
        inputs.daemon_trace = bool(cluster.traces)
        inputs.protocol = protocol
        inputs.sequencer = sequencer
        inputs.problems += _daemon_problems(cluster, names)
        return summarize(inputs)
    finally:
        group.kill()
        progress("stopping daemons")
        cluster.stop()


async def wait_daemons(cluster: LocalCluster, names: tuple[str, ...], timeout: float) -> str | None:
    """Until every daemon reports one view holding all of ``names``; returns the name of that
    view's coordinator (the sequencer), if the status says it."""
    deadline = time.monotonic() + timeout
    want = set(names)
    while True:
        seen = []
        view = ""
        for name in names:
            try:
                status = await query_status(cluster.endpoints[name], 0.5)
            except GroupcommError:
                break
            members = status.get("members")
            view = str(status.get("view", ""))
            seen.append(
                {str(m).split(":", 1)[0] for m in members or ()}
                if isinstance(members, list)
                else set()
            )
        if len(seen) == len(names) and all(s == want for s in seen):
            return coordinator_name(view)
        if time.monotonic() > deadline:
            raise TimeoutError(f"daemons {sorted(want)} did not form one view in {timeout:.0f} s")
        await asyncio.sleep(0.1)


def coordinator_name(view: str) -> str | None:
    """``"3.d3:1795454919910"`` (a view id as the status shows it) -> ``"d3"``."""
    _, dot, coord = view.partition(".")
    name = token_name(coord)
    return name if dot and name else None


def _daemon_problems(cluster: LocalCluster, names: tuple[str, ...]) -> list[str]:
    """Daemons that died during the run."""
    return [
        f"daemon {name} exited with status {cluster.procs[name].poll()}"
        for name in names
        if cluster.procs[name].poll() is not None
    ]


# ---------------------------------------------------------------------------------------- zmq


def _run_zmq(spec: RunSpec, place: Placement, workdir: Path, progress: Progress) -> dict[str, Any]:
    work = spec.work
    members = work.members()
    senders = [m for m in members if m.send]
    ports = free_ports(2 * len(senders))
    pub = {m.id: f"tcp://{place.ip(m.node)}:{ports[2 * i]}" for i, m in enumerate(senders)}
    pull = {m.id: f"tcp://{place.ip(m.node)}:{ports[2 * i + 1]}" for i, m in enumerate(senders)}
    window, ack_every = zmq_window(work.size)
    group = MemberGroup(workdir)
    try:
        for m in members:
            plan = member_plan(m, work, str(workdir / f"m{m.id}.json"))
            argv = [sys.executable, "-m", "groupcomm.benchmark.zmq_member", *plan.to_argv()]
            argv += ["--window", str(window), "--ack-every", str(ack_every)]
            if m.send:
                argv += ["--bind", pub[m.id], "--ack-bind", pull[m.id]]
            if m.recv:
                argv += ["--connect", ",".join(pub.values())]
                argv += ["--ack-connect", ",".join(f"{sid}={ep}" for sid, ep in pull.items())]
            group.spawn(m.id, [*place.prefix(m.node), *argv])
        hosts = tuple(f"h{i + 1}" for i in range(work.daemons))
        return summarize(_timed(spec, place, group, {}, workdir, progress, hosts))
    finally:
        group.kill()


# ---------------------------------------------------------------------------- the timed part


def _timed(
    spec: RunSpec,
    place: Placement,
    group: MemberGroup,
    daemon_pids: dict[str, int],
    workdir: Path,
    progress: Progress,
    hosts: tuple[str, ...],
) -> RunInputs:
    """Start the members together, sample while they run, collect what they wrote. ``hosts``
    names the nodes (the daemons' names) in the wire figures."""
    work = spec.work
    problems: list[str] = []
    progress("waiting for members to join")
    member_pids = group.pids()
    labels = {**daemon_pids, **{f"m{k}": v for k, v in member_pids.items()}}
    cpu = CpuWindow(labels)
    memory = PeakMemory(labels)  # daemons and members: the baseline's memory is its members'
    cpu_pct: dict[str, float | None] = {}
    foreign, top = 0.0, list[tuple[str, float]]()
    wire: list[WireSample | None] = []
    try:
        group.wait_ready(READY_TIMEOUT_S)
    except MemberError as e:
        problems.append(str(e))
    else:
        start = time.monotonic_ns() + int(START_LEAD_S * 1e9)
        group.start(start)
        w0 = start / 1e9 + work.warm
        w1 = start / 1e9 + work.dur
        hard_end = w1 + work.drain + FINISH_MARGIN_S
        began = ended = False
        while group.running() and time.monotonic() < hard_end:
            now = time.monotonic()
            memory.sample()
            if not began and now >= w0:
                cpu.begin(now)
                wire.append(_wire_sample(place, problems))
                began = True
            elif began and not ended and now >= w1:
                cpu_pct, foreign, top = cpu.end(now)
                wire.append(_wire_sample(place, problems))
                ended = True
            progress(_phase(now, start / 1e9, work))
            nxt = now + MEM_EVERY_S
            if not began:
                nxt = min(nxt, w0)
            elif not ended:
                nxt = min(nxt, w1)
            time.sleep(max(0.0, nxt - time.monotonic()))
        if not ended:
            problems.append("the members finished before the window ended")
    progress("collecting")
    codes = group.finish(FINISH_MARGIN_S)
    memory.sample()  # the daemons' final VmHWM (they run until the members are done)
    peaks = memory.peak_mb()
    results, keys = _collect(workdir, group)
    return RunInputs(
        system=spec.system,
        work=work,
        run=spec.run,
        results=results,
        keys=keys,
        exit_codes=codes,
        member_cpu_pct={int(k[1:]): v for k, v in cpu_pct.items() if k.startswith("m")},
        daemon_cpu_pct=[cpu_pct.get(name) for name in daemon_pids],
        daemon_rss_mb=[peaks[name] for name in daemon_pids],
        member_rss_mb={k: peaks[f"m{k}"] for k in member_pids if f"m{k}" in peaks},
        foreign_cpu_pct=foreign,
        foreign_top=top,
        problems=problems,
        placement=place.name,
        wire=(wire[0], wire[1]) if len(wire) == 2 and wire[0] and wire[1] else None,
        hosts=hosts,
        transport=spec.record_transport,
    )


def _wire_sample(place: Placement, problems: list[str]) -> WireSample | None:
    """The hosts' traffic counters. A failed read does not stop the run; it loses the wire
    figures and is reported in ``problems`` (a run measured incompletely is not ``ok``)."""
    try:
        return place.wire_sample()
    except (RuntimeError, OSError) as e:
        problems.append(f"reading the traffic counters failed: {e}")
        return None


def _phase(now: float, start: float, work: Workload) -> str:
    t = now - start
    if t < 0:
        return "starting"
    if t < work.warm:
        return f"warm-up {t:4.1f}/{work.dur:.0f} s"
    if t < work.dur:
        return f"measuring {t:4.1f}/{work.dur:.0f} s"
    return f"draining {t - work.dur:4.1f}/{work.drain:.0f} s"


def _collect(workdir: Path, group: MemberGroup) -> tuple[dict[int, dict[str, Any]], dict[int, Any]]:
    results: dict[int, dict[str, Any]] = {}
    keys: dict[int, Any] = {}
    for mid in group.procs:
        path = workdir / f"m{mid}.json"
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        results[mid] = res
        if res.get("keys_file"):
            with contextlib.suppress(OSError):
                keys[mid] = read_keys(res["keys_file"])
    return results, keys
