"""One system's fan-out run, start to finish: its servers (three groupcomm daemons, or one
redis-server on host 1), the publisher and consumer processes on their hosts, the common start,
CPU and memory sampling during the window, collection and the record.

The placement (a namespace LAN or loopback), the daemons and the wait for their view, the
member processes and their start handshake, and the ``/proc`` sampling are ``groupcomm bench``'s
(``placement``, ``LocalCluster``, ``runner.wait_daemons``, ``members.MemberGroup``,
``procstat``); this module only wires them to the fan-out job. Every run gets fresh servers and
processes; the LAN is shared by the runs of one command.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import groupcomm
from groupcomm.benchmark.fanout.aggregate import RunData, summarize
from groupcomm.benchmark.fanout.loglines import mean_frame_bytes, publisher_lines
from groupcomm.benchmark.fanout.plan import TOPIC, FanoutConfig, RolePlan, role_plans
from groupcomm.benchmark.fanout.redisserver import RedisServer
from groupcomm.benchmark.members import MemberError, MemberGroup
from groupcomm.benchmark.placement import Placement
from groupcomm.benchmark.procstat import CpuWindow, PeakMemory
from groupcomm.benchmark.runner import DAEMON_VIEW_TIMEOUT_S, wait_daemons
from groupcomm.localcluster import free_ports

Progress = Callable[[str], None]
READY_TIMEOUT_S = 90.0  # 30 consumers start, connect and join on 2 CPUs
START_LEAD_S = 0.5
SAMPLE_EVERY_S = 0.25
FINISH_MARGIN_S = 15.0
PEER_KIT_PYTHON = "/tmp/pbvenv/bin/python"  # the peer kit's venv (shared/peers/install.sh)
SOURCE_ROOT = str(Path(groupcomm.__file__).resolve().parent.parent)


@dataclass(frozen=True)
class FanoutRun:
    cfg: FanoutConfig
    system: str  # plan.SYSTEMS
    service: str = "agreed"  # groupcomm only
    away: tuple[float, float] = (0.0, 0.0)  # the last consumer leaves at, for (catch-up)
    caught_up_ms: float = 1000.0  # ... and is caught up once a line arrives this fresh
    redis_python: str = ""  # an interpreter with hiredis, for the Redis members
    keep: bool = False


RETAIN_TOML = f'\n[[retain]]\ngroups = "{TOPIC}"\nmax_bytes = {1 << 30}\n'


def find_redis_python(explicit: str = "") -> tuple[str, str | None]:
    """An interpreter that can run the Redis members (it must import ``hiredis``): ``explicit``,
    else this one, else the peer kit's venv. ``(path, None)`` or ``("", why not)``."""
    candidates = [explicit] if explicit else [sys.executable, PEER_KIT_PYTHON]
    for python in candidates:
        try:
            done = subprocess.run(
                [python, "-c", "import hiredis"], capture_output=True, timeout=20, check=False
            )
        except OSError:
            continue
        if done.returncode == 0:
            return python, None
    return "", (
        f"no interpreter with hiredis among {', '.join(candidates)} (the peer kit's venv: "
        "cd shared/peers && ./install.sh; or pass --redis-python)"
    )


def member_argv(
    run: FanoutRun, plan: RolePlan, endpoint: str, redis_at: tuple[str, int]
) -> list[str]:
    if run.system == "groupcomm":
        module = [sys.executable, "-m", "groupcomm.benchmark.fanout.gc_member"]
        return [*module, *plan.to_argv(), "--endpoint", endpoint]
    kind = run.system.removeprefix("redis-")
    # the peer kit's interpreter does not have groupcomm installed: point it at this source
    module = ["env", f"PYTHONPATH={SOURCE_ROOT}", run.redis_python, "-m"]
    module.append("groupcomm.benchmark.fanout.redis_member")
    host, port = redis_at
    extra = ["--kind", kind, "--host", host, "--port", str(port)]
    return [*module, *plan.to_argv(), *extra, "--maxlen", str(run.cfg.stream_maxlen)]


@contextmanager
def servers(
    run: FanoutRun, place: Placement, workdir: Path, progress: Progress
) -> Iterator[tuple[dict[str, int], dict[int, str], tuple[str, int]]]:
    """Start the run's servers; yields ``(server pids by label, endpoint per node, Redis
    address)`` and stops them afterwards."""
    if run.system == "groupcomm":
        names = tuple(f"d{i + 1}" for i in range(run.cfg.daemons))
        cluster = place.cluster(workdir, names, {})
        if run.away[1] > 0:
            # The catch-up resumes from a position: the daemons retain the topic (in memory,
            # like Redis Streams), as much as the time away holds and more.
            cluster.extra_toml = {n: RETAIN_TOML for n in names}
        progress("starting daemons")
        cluster.start()
        try:
            asyncio.run(wait_daemons(cluster, names, DAEMON_VIEW_TIMEOUT_S))
            pids = {n: cluster.procs[n].pid for n in names}
            endpoints = {i: cluster.endpoints[n] for i, n in enumerate(names)}
            yield pids, endpoints, ("", 0)
        finally:
            progress("stopping daemons")
            cluster.stop()
    else:
        progress("starting redis-server")
        server = RedisServer(place.prefix(0), place.ip(0), free_ports(1)[0], workdir)
        try:
            server.start()
            yield {"redis": server.pid}, {}, (server.ip, server.port)
        finally:
            server.stop()


def run_system(run: FanoutRun, place: Placement, progress: Progress) -> dict[str, Any]:
    cfg = run.cfg
    workdir = Path(tempfile.mkdtemp(prefix=f"gcfanout-{run.system}-"))
    data = RunData(
        run.system,
        run.service if run.system == "groupcomm" else "",
        cfg,
        [],
        [],
        placement=place.name,
        frame_bytes=mean_frame_bytes(publisher_lines(cfg.seed, 0, cfg.pool)),
        ts=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    group = MemberGroup(workdir)
    try:
        with servers(run, place, workdir, progress) as (server_pids, endpoints, redis_at):
            plans = role_plans(cfg, str(workdir), run.service, run.away, run.caught_up_ms)
            for plan in plans:
                argv = member_argv(run, plan, endpoints.get(plan.node, ""), redis_at)
                group.spawn(plan.member_id, [*place.prefix(plan.node), *argv])
            labels = {
                **server_pids,
                **{
                    ("p" if p.role == "pub" else "c") + str(p.id): group.procs[p.member_id].pid
                    for p in plans
                },
            }
            data.server_labels = tuple(server_pids)
            try:
                _timed(run, group, labels, server_pids, data, progress)
            finally:
                group.kill()
            data.publishers, data.consumers = _collect(plans)
    except (TimeoutError, RuntimeError, OSError) as e:
        data.problems.append(f"{type(e).__name__}: {e}")
    finally:
        group.kill()
        if not run.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    record = summarize(data)
    if run.keep:
        record["workdir"] = str(workdir)
    return record


def _timed(
    run: FanoutRun,
    group: MemberGroup,
    labels: dict[str, int],
    server_pids: dict[str, int],
    data: RunData,
    progress: Progress,
) -> None:
    cfg = run.cfg
    cpu = CpuWindow(labels)
    memory = PeakMemory(dict(server_pids))
    progress("waiting for publishers and consumers")
    try:
        group.wait_ready(READY_TIMEOUT_S)
    except MemberError as e:
        data.problems.append(str(e))
        return
    start = time.monotonic_ns() + int(START_LEAD_S * 1e9)
    group.start(start)
    t0 = start / 1e9
    w0, w1 = t0 + cfg.warm, t0 + cfg.dur
    hard_end = w1 + cfg.drain + FINISH_MARGIN_S
    began = ended = False
    while group.running() and time.monotonic() < hard_end:
        now = time.monotonic()
        memory.sample()
        if not began and now >= w0:
            cpu.begin(now)
            began = True
        elif began and not ended and now >= w1:
            pct, data.foreign_cpu_pct, data.foreign_top = cpu.end(now)
            data.cpu_pct = pct
            ended = True
        progress(f"{now - t0:5.1f}/{cfg.dur:.0f} s")
        nxt = min(now + SAMPLE_EVERY_S, w0 if not began else w1 if not ended else hard_end)
        time.sleep(max(0.01, nxt - time.monotonic()))
    if not ended:
        data.problems.append("the processes finished before the window ended")
    progress("collecting")
    group.finish(FINISH_MARGIN_S)
    data.server_rss_mb = list(memory.peak_mb().values())


def _collect(plans: list[RolePlan]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pubs: list[dict[str, Any]] = []
    subs: list[dict[str, Any]] = []
    for plan in plans:
        try:
            doc = json.loads(Path(plan.out).read_text())
        except (OSError, ValueError):
            continue
        (pubs if plan.role == "pub" else subs).append(doc)
    return pubs, subs
