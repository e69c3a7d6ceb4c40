"""A local cluster of real daemon processes, for the demo, tests and benchmarks.

Writes one TOML config per daemon (free ports, ipc client endpoint, trace file, admin allowed),
starts ``python -m groupcomm.daemon`` processes, and can SIGTERM, kill -9 and restart them.
By default every daemon is on loopback. To put daemons on distinct hosts of a namespace LAN
(``groupcomm.netlan``), give each its ``[[peers]]`` address and a command prefix that runs it
there (``ip netns exec <ns>``), or use ``LocalCluster.on_hosts``; client endpoints stay ``ipc://``
files in the workdir, because unix sockets work across network namespaces, so the test process
in the root namespace is the client of every daemon.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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


def _die_with_parent() -> None:
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
        ports = free_ports(2 * len(self.names))
        self._peers = "".join(
            f"[[peers]]\nname = {_toml(n)}\nhost = {_toml(self.peer_host.get(n, '127.0.0.1'))}\n"
            f"data_port = {ports[2 * i]}\ncontrol_port = {ports[2 * i + 1]}\n\n"
            for i, n in enumerate(self.names)
        )
        for name in self.names:
            self.endpoints[name] = f"ipc://{self.workdir}/{name}.sock"
            self._launch(name)

    def _launch(self, name: str) -> None:
        run = self.restarts.get(name, 0)
        trace = self.workdir / f"{name}.{run}.trace.jsonl" if self.trace else Path()
        config = self.workdir / f"{name}.toml"
        protocol = "".join(f"{k} = {v}\n" for k, v in sorted(self.protocol.items()))
        extra = "".join(f"{k} = {_toml(v)}\n" for k, v in sorted(self.daemon.items()))
        config.write_text(
            f'[daemon]\nname = "{name}"\nclient_endpoints = ["{self.endpoints[name]}"]\n'
            f'trace = "{trace if self.trace else ""}"\nallow_admin = true\n{extra}\n{self._peers}'
            + (f"[protocol]\n{protocol}\n" if protocol else "")
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
            preexec_fn=_die_with_parent,
        )
        if self.trace:
            self.traces.append(trace)

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)

    def restart(self, name: str) -> None:
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self._launch(name)

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
