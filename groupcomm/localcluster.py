"""A local cluster of real daemon processes on loopback, for the demo, tests and benchmarks.

Writes one TOML config per daemon (free ports, ipc client endpoint, trace file, admin allowed),
starts ``python -m groupcomm.daemon`` processes, and can SIGTERM, kill -9 and restart them.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


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

    def start(self) -> None:
        ports = free_ports(2 * len(self.names))
        self._peers = "".join(
            f'[[peers]]\nname = "{n}"\nhost = "127.0.0.1"\n'
            f"data_port = {ports[2 * i]}\ncontrol_port = {ports[2 * i + 1]}\n\n"
            for i, n in enumerate(self.names)
        )
        for name in self.names:
            self.endpoints[name] = f"ipc://{self.workdir}/{name}.sock"
            self._launch(name)

    def _launch(self, name: str) -> None:
        run = self.restarts.get(name, 0)
        trace = self.workdir / f"{name}.{run}.trace.jsonl"
        config = self.workdir / f"{name}.toml"
        protocol = "".join(f"{k} = {v}\n" for k, v in sorted(self.protocol.items()))
        extra = "".join(f"{k} = {_toml(v)}\n" for k, v in sorted(self.daemon.items()))
        config.write_text(
            f'[daemon]\nname = "{name}"\nclient_endpoints = ["{self.endpoints[name]}"]\n'
            f'trace = "{trace}"\nallow_admin = true\n{extra}\n{self._peers}'
            + (f"[protocol]\n{protocol}" if protocol else "")
        )
        log = (self.workdir / f"{name}.{run}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "groupcomm.daemon", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
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
