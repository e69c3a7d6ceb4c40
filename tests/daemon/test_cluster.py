"""Real daemons as subprocesses on 127.0.0.1: views form, crash and leave are detected, and the
recorded traces pass the simulator's checkers (``python -m sim.check_trace``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from groupcomm.config import DaemonConfig, load_config
from groupcomm.core.commands import Credit, DeliverMembership, DeliverMessage
from groupcomm.core.events import (
    Event,
    JoinRequested,
    MulticastRequested,
    SessionOpened,
)
from groupcomm.core.service import Service
from groupcomm.daemon.driver import Driver
from groupcomm.daemon.frontend_api import SessionCommand
from groupcomm.daemon.readiness import Readiness
from groupcomm.daemon.tcplinks import TcpTransport
from groupcomm.daemon.transport import ZmqTransport
from sim.check_trace import main as check_trace_main

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cluster_toml(names: list[str], extra: str = "") -> str:
    ports = free_ports(2 * len(names))
    lines = ["[daemon]", "client_endpoints = []", ""]
    for i, name in enumerate(names):
        lines += [
            "[[peers]]",
            f'name = "{name}"',
            'host = "127.0.0.1"',
            f"data_port = {ports[2 * i]}",
            f"control_port = {ports[2 * i + 1]}",
            "",
        ]
    return "\n".join(lines) + extra


def read_trace(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written
    return out


def installs(path: Path) -> list[dict[str, Any]]:
    return [e for e in read_trace(path) if e["ev"] == "install"]


def wait_for(what: str, cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Cluster:
    def __init__(self, tmp: Path, names: list[str]) -> None:
        self.tmp = tmp
        self.names = names
        self.config = tmp / "cluster.toml"
        self.config.write_text(cluster_toml(names))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def trace(self, name: str) -> Path:
        return self.tmp / f"{name}.jsonl"

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def start(self, name: str) -> None:
        cmd = [PY, "-m", "groupcomm.daemon", "--config", str(self.config), "--name", name]
        cmd += ["--trace", str(self.trace(name)), "--log-json"]
        with open(self.log(name), "ab") as err:
            self.procs[name] = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ)
            )

    def last_regular(self, name: str) -> dict[str, Any] | None:
        regs = [e for e in installs(self.trace(name)) if e["kind"] == "regular"]
        return regs[-1] if regs else None

    def in_view(self, names: list[str], size: int) -> bool:
        confs = set()
        for n in names:
            reg = self.last_regular(n)
            if reg is None or len(reg["members"]) != size:
                return False
            confs.add(reg["conf"])
        return len(confs) == 1

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(5)

    def logs(self) -> str:
        return "\n".join(
            f"--- {n}\n{self.log(n).read_text()[-3000:]}"
            for n in self.names
            if self.log(n).exists()
        )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, ["d1", "d2", "d3"])
    try:
        yield c
    finally:
        c.stop_all()


def test_view_crash_leave_and_trace_check(cluster: Cluster) -> None:
    names = cluster.names
    for n in names:
        cluster.start(n)
    try:
        wait_for("a 3-member view", lambda: cluster.in_view(names, 3), 20)

        # kill -9 d3: the survivors install a transitional, then a regular 2-member view.
        cluster.procs["d3"].send_signal(signal.SIGKILL)
        cluster.procs["d3"].wait(5)
        wait_for("a 2-member view", lambda: cluster.in_view(["d1", "d2"], 2), 10)
        for n in ("d1", "d2"):
            evs = installs(cluster.trace(n))
            last_three = [e for e in evs if e["kind"] == "regular" and len(e["members"]) == 3][-1]
            after = evs[evs.index(last_three) + 1 :]
            assert after[0]["kind"] == "transitional", after
            assert len(after[0]["members"]) == 2

        # SIGTERM d2: it leaves, d1 sees it at once (well before the suspect timeout
        # plus a round would) and d2 exits 0.
        t0 = time.monotonic()
        cluster.procs["d2"].send_signal(signal.SIGTERM)
        assert cluster.procs["d2"].wait(5) == 0
        wait_for("d1 alone", lambda: cluster.in_view(["d1"], 1), 5)
        elapsed = time.monotonic() - t0
        assert elapsed < 3, elapsed

        cluster.procs["d1"].send_signal(signal.SIGTERM)
        assert cluster.procs["d1"].wait(5) == 0
    except BaseException:
        print(cluster.logs())
        raise

    check = subprocess.run(
        [PY, "-m", "sim.check_trace", *(str(cluster.trace(n)) for n in names)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    log = cluster.log("d1").read_text()
    assert '"event": "install"' in log
    assert "suspect" in log


def test_sigterm_leave_is_prompt(cluster: Cluster) -> None:
    """With a long suspect timeout, only the Leave can explain a fast view change."""
    text = cluster.config.read_text() + "\n[protocol]\nsuspect_timeout_ms = 5000\n"
    text += "install_timeout_ms = 3000\nflush_timeout_ms = 2000\n"
    cluster.config.write_text(text)
    for n in ("d1", "d2"):
        cluster.start(n)
    try:
        wait_for("a 2-member view", lambda: cluster.in_view(["d1", "d2"], 2), 20)
        t0 = time.monotonic()
        cluster.procs["d2"].send_signal(signal.SIGTERM)
        wait_for("d1 alone", lambda: cluster.in_view(["d1"], 1), 4)
        assert time.monotonic() - t0 < 2.0
        assert cluster.procs["d2"].wait(5) == 0
    except BaseException:
        print(cluster.logs())
        raise


def test_bad_config_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[protocol]\nheartbeat_ms = -3\n")
    r = subprocess.run(
        [PY, "-m", "groupcomm.daemon", "--config", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert "heartbeat_ms must be a positive integer, got -3" in r.stderr
    assert "bad.toml" in r.stderr


def test_help() -> None:
    r = subprocess.run(
        [PY, "-m", "groupcomm.daemon", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0
    assert "--config" in r.stdout and "--trace" in r.stdout


# ----------------------------------------------------------------------------------------------
# In-process drivers (asyncio), with a scripted front-end: client traffic end to end.


class FakeFrontEnd:
    """A scripted FrontEnd: ``push`` queues client events and makes its pipe readable."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.queue: list[Event] = []
        self.executed: list[SessionCommand] = []
        self.admin: list[tuple[str, list[str]]] = []
        self.flushes = 0
        self.provider: object = None
        self.closed = False

    def push(self, *events: Event) -> None:
        self.queue.extend(events)
        os.write(self.w, b"x")

    def attach(self, readiness: Readiness) -> None:
        readiness.watch(self.r)

    def pending(self) -> bool:
        return False  # what ``push`` queued is announced through the pipe

    def take_events(self, now_ms: int, limit: int) -> list[Event]:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.r, 4096):
                pass
        out, self.queue = self.queue[:limit], self.queue[limit:]
        return out

    def execute(self, command: SessionCommand) -> None:
        self.executed.append(command)

    def flush(self) -> None:
        self.flushes += 1

    def lagging(self) -> bool:
        return False

    def admin_requests(self) -> list[tuple[str, list[str]]]:
        out, self.admin = self.admin, []
        return out

    def status_provider(self, provider: object) -> None:
        self.provider = provider

    def close(self) -> None:
        self.closed = True
        os.close(self.r)
        os.close(self.w)


async def until(what: str, cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def trace_configs(tmp: Path, names: list[str]) -> list[DaemonConfig]:
    path = tmp / "cluster.toml"
    path.write_text(cluster_toml(names))
    return [load_config(path, name=n, trace=str(tmp / f"{n}.jsonl")) for n in names]


@pytest.mark.parametrize("plane", ["tcp", "zmq"])
async def test_drivers_in_process_deliver_and_trace(tmp_path: Path, plane: str) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    cfgs = trace_configs(tmp_path, ["d1", "d2"])
    fes = [FakeFrontEnd(c.name) for c in cfgs]
    drivers = [
        Driver(
            c,
            transport=TcpTransport(c) if plane == "tcp" else ZmqTransport(c, context=ctx),
            frontend=fe,
        )
        for c, fe in zip(cfgs, fes, strict=True)
    ]
    tasks = [asyncio.create_task(d.run(install_signal_handlers=False)) for d in drivers]
    try:
        await until("a 2-member view", lambda: all(len(d.node.members) == 2 for d in drivers), 10)
        assert fes[0].provider is drivers[0]
        c1, c2 = "#c1#d1", "#c2#d2"
        fes[0].push(SessionOpened(conn=c1), JoinRequested(conn=c1, group="g"))
        fes[1].push(SessionOpened(conn=c2), JoinRequested(conn=c2, group="g"))

        def views(fe: FakeFrontEnd) -> list[DeliverMembership]:
            return [c for c in fe.executed if isinstance(c, DeliverMembership)]

        await until(
            "both in g", lambda: all(any(len(v.members) == 2 for v in views(f)) for f in fes), 5
        )
        for i in range(20):
            fes[i % 2].push(
                MulticastRequested(
                    conn=(c1, c2)[i % 2],
                    groups=("g",),
                    service=int(Service.AGREED),
                    msg_type=i,
                    payload=b"m%d" % i,
                )
            )

        def msgs(fe: FakeFrontEnd) -> list[DeliverMessage]:
            return [c for c in fe.executed if isinstance(c, DeliverMessage)]

        await until("20 deliveries each", lambda: all(len(msgs(f)) == 20 for f in fes), 5)
        assert [m.payload for m in msgs(fes[0])] == [m.payload for m in msgs(fes[1])]
        assert any(isinstance(c, Credit) for c in fes[0].executed)
        status = drivers[0].status()
        assert status["messages"]["delivered"] == 20
        assert status["transport"]["peers"]["d2"]["frames_in"] > 0

        # Admin fault injection through the front-end: both sides block, then heal.
        fes[0].admin.append(("partition", ["d2"]))
        fes[1].admin.append(("partition", ["d1"]))
        fes[0].push()
        fes[1].push()
        await until("split", lambda: all(len(d.node.members) == 1 for d in drivers), 5)
        fes[0].admin.append(("heal", []))
        fes[1].admin.append(("heal", []))
        fes[0].push()
        fes[1].push()
        await until("merged", lambda: all(len(d.node.members) == 2 for d in drivers), 5)

        for d in drivers:
            d.stop()
        assert await asyncio.wait_for(asyncio.gather(*tasks), 5) == [0, 0]
    finally:
        for t in tasks:
            t.cancel()
        ctx.destroy(linger=0)
    assert all(fe.closed for fe in fes)
    files = [str(tmp_path / f"{c.name}.jsonl") for c in cfgs]
    evs = [e for f in files for e in read_trace(Path(f))]
    kinds = {e["ev"] for e in evs}
    assert {"install", "open", "gview", "send", "deliver", "cdeliver"} <= kinds
    assert check_trace_main(files) == 0
