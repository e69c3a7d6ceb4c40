"""A local cluster of real daemon processes, for the demo, tests and benchmarks.

Writes one TOML config per daemon (free ports, ipc client endpoint, trace file, admin requests
allowed to this process's user: ``[daemon] admin``), starts ``python -m groupcomm.daemon``
processes, and can SIGTERM, kill -9 and restart them. By default every daemon is on loopback.
To put daemons on distinct hosts of a namespace LAN (``groupcomm.netlan``), give each its
``[[peers]]`` address and a command prefix that runs it there (``ip netns exec <ns>``), or use
``LocalCluster.on_hosts``; client endpoints stay ``ipc://`` files in the workdir, because unix
sockets work across network namespaces, so the test process in the root namespace is the client
of every daemon.

Traces (``docs/simulation.md``, "Trace format"): each daemon appends to ``<name>.trace.jsonl``
across restarts, so a restarted daemon records the crash of the incarnation it replaces. The
harness writes the liveness markers to ``harness.trace.jsonl`` on the same wall clock:
``mark_stable()`` after the last injected fault, and ``await end_trace()`` once every running
daemon reports one regular view of exactly the running daemons (``end`` lists their tokens;
daemons killed and not restarted get their ``crash`` then). ``traces`` lists every file to merge.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from groupcomm.client.connection import query_status
from groupcomm.daemon.trace import append_event, record_crash

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _load_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl: Callable[[int, int], int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()  # looked up here: the child, between fork and exec, only calls it


def die_with_parent() -> None:
    """``preexec_fn`` of every daemon: SIGTERM when the process that started it dies, so a
    demo or test killed with SIGKILL (a timeout) leaves no daemons running (Linux; elsewhere
    nothing)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _toml(value: int | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Host(Protocol):
    """Where a daemon runs: its address and the command prefix that runs a process there
    (``groupcomm.netlan.LanHost`` is one)."""

    @property
    def ip(self) -> str: ...

    @property
    def exec_prefix(self) -> list[str]: ...


@dataclass
class LocalCluster:
    workdir: Path
    names: tuple[str, ...] = ("d1", "d2", "d3")
    protocol: dict[str, int] = field(default_factory=dict)  # [protocol] overrides
    daemon: dict[str, int | bool | str] = field(default_factory=dict)  # extra [daemon] keys
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)
    traces: list[Path] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    # Per daemon, all optional: its [[peers]] host (default 127.0.0.1), the argv run in front
    # of its python (e.g. ["ip", "netns", "exec", ns]), and whole TOML tables appended to its
    # config (e.g. its own [epgm] table).
    peer_host: dict[str, str] = field(default_factory=dict)
    command_prefix: dict[str, list[str]] = field(default_factory=dict)
    extra_toml: dict[str, str] = field(default_factory=dict)
    # The per-message trace (checked by sim.check_trace in the tests) costs the daemons about a
    # third of their throughput: benchmarks turn it off.
    trace: bool = True
    # Secured links (docs/operations.md "Securing a cluster"): keys made in workdir/keys.
    keys: bool = False
    # Daemons configured in every [[peers]] list but never started (a peer that is down, or a
    # name an attacker may claim in tests).
    absent: tuple[str, ...] = ()
    stable_marked: bool = False  # mark_stable() wrote a "stable" marker
    # [daemon] admin; None: this process's user (uid:N), so the harness's own clients (on the
    # ipc endpoints, identified by SO_PEERCRED) may partition and heal.
    admin: tuple[str, ...] | None = None

    @classmethod
    def on_hosts(
        cls,
        workdir: Path,
        hosts: Mapping[str, Host],
        *,
        protocol: Mapping[str, int] | None = None,
        daemon: Mapping[str, int | bool | str] | None = None,
        extra_toml: Mapping[str, str] | None = None,
        trace: bool = True,
    ) -> LocalCluster:
        """One daemon per host, named by the mapping's keys (``{"d1": lan.hosts[0], ...}``)."""
        return cls(
            workdir,
            tuple(hosts),
            protocol=dict(protocol or {}),
            daemon=dict(daemon or {}),
            peer_host={n: h.ip for n, h in hosts.items()},
            command_prefix={n: list(h.exec_prefix) for n, h in hosts.items()},
            extra_toml=dict(extra_toml or {}),
            trace=trace,
        )

    def start(self) -> None:
        configured = (*self.names, *self.absent)
        ports = free_ports(2 * len(configured))
        if self.keys:
            from groupcomm.keygen import make_keypair  # needs cryptography: only when asked

            for n in configured:
                make_keypair(n, self.workdir / "keys", force=True)
        self._peers = "".join(
            f"[[peers]]\nname = {_toml(n)}\nhost = {_toml(self.peer_host.get(n, '127.0.0.1'))}\n"
            f"data_port = {ports[2 * i]}\ncontrol_port = {ports[2 * i + 1]}\n"
            + (f"cert = {_toml(str(self.workdir / 'keys' / f'{n}.crt'))}\n" if self.keys else "")
            + "\n"
            for i, n in enumerate(configured)
        )
        for name in self.names:
            self.endpoints[name] = f"ipc://{self.workdir}/{name}.sock"
            self._launch(name)

    def trace_path(self, name: str) -> Path:
        """Daemon ``name``'s trace: every incarnation appends to it."""
        return self.workdir / f"{name}.trace.jsonl"

    @property
    def marker_path(self) -> Path:
        """The harness's own trace file: ``stable`` and ``end`` markers."""
        return self.workdir / "harness.trace.jsonl"

    def _launch(self, name: str) -> None:
        run = self.restarts.get(name, 0)
        trace = self.trace_path(name) if self.trace else Path()
        config = self.workdir / f"{name}.toml"
        protocol = "".join(f"{k} = {v}\n" for k, v in sorted(self.protocol.items()))
        extra = "".join(f"{k} = {_toml(v)}\n" for k, v in sorted(self.daemon.items()))
        config.write_text(
            f'[daemon]\nname = "{name}"\nclient_endpoints = ["{self.endpoints[name]}"]\n'
            f'trace = "{trace if self.trace else ""}"\n'
            f"admin = [{', '.join(map(_toml, self._admins()))}]\n{extra}\n{self._peers}"
            + (f"[protocol]\n{protocol}\n" if protocol else "")
            + (
                f"[security]\nkey = {_toml(str(self.workdir / 'keys' / f'{name}.key'))}\n\n"
                if self.keys
                else ""
            )
            + self.extra_toml.get(name, "")
        )
        log = (self.workdir / f"{name}.{run}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [
                *self.command_prefix.get(name, []),
                *(sys.executable, "-m", "groupcomm.daemon", "--config", str(config)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        if self.trace and trace not in self.traces:
            self.traces.append(trace)

    def _admins(self) -> tuple[str, ...]:
        return (f"uid:{os.getuid()}",) if self.admin is None else self.admin

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)

    def restart(self, name: str) -> None:
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self._launch(name)

    def running(self) -> list[str]:
        """Names of the daemons whose process is running."""
        return [n for n in self.names if n in self.procs and self.procs[n].poll() is None]

    # ---------------------------------------------------------------- liveness markers
    def mark_stable(self) -> None:
        """Write ``stable``: no fault is injected from now on (call it after the last heal or
        restart). Daemons that are down get their ``crash`` first."""
        if not self.trace:
            return
        self._record_crashes()
        self._marker("stable")
        self.stable_marked = True

    def mark_end(self, live: Iterable[str]) -> None:
        """Write ``end`` listing ``live`` daemon tokens (only running, connected daemons: a
        token listed there must be in the final configuration, L1)."""
        if not self.trace:
            return
        self._record_crashes()
        self._marker("end", live=sorted(live))

    async def wait_settled(self, timeout: float) -> list[str]:
        """Until every running daemon reports the same regular view whose members are exactly
        the running daemons; their tokens. ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen = "no answer yet"
        while True:
            names = self.running()
            try:
                statuses = [await query_status(self.endpoints[n], 0.5) for n in names]
            except Exception as exc:
                seen = f"{exc.__class__.__name__}: {exc}"
            else:
                tokens = {str(s.get("daemon")) for s in statuses}
                views = {(str(s.get("phase")), str(s.get("view"))) for s in statuses}
                members = [s.get("members") for s in statuses]
                if (
                    len(views) == 1
                    and next(iter(views))[0] == "operational"
                    and all(isinstance(m, list) and set(map(str, m)) == tokens for m in members)
                ):
                    return sorted(tokens)
                seen = f"daemons {sorted(tokens)} report views {sorted(views)}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"daemons {names} did not settle in {timeout} s: {seen}")
            await asyncio.sleep(0.1)

    async def end_trace(self, timeout: float = 20.0) -> list[str]:
        """Close the run's trace for the checkers: ``stable`` (if not marked yet), wait until
        the running daemons settle, then ``end`` with their tokens (returned)."""
        if not self.trace:
            return []
        if not self.stable_marked:
            self.mark_stable()
        live = await self.wait_settled(timeout)
        self.mark_end(live)
        return live

    def _record_crashes(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:  # killed (or shut down: then nothing is recorded)
                record_crash(str(self.trace_path(name)), name)

    def _marker(self, ev: str, **fields: object) -> None:
        append_event(str(self.marker_path), ev, **fields)
        if self.marker_path not in self.traces:
            self.traces.append(self.marker_path)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.trace and self.procs:
            # The views the survivors install while stopping come after the run's "end", which
            # the liveness checkers do not look past: the kept traces stay checkable as they are.
            with contextlib.suppress(OSError):  # e.g. the workdir is already gone
                self._record_crashes()
