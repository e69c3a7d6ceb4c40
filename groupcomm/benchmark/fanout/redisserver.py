"""The Redis server of a fan-out run: the peer kit's Redis (the Debian ``redis-server`` that
``shared/peers/install.sh`` installs) with ``shared/peers/redis.sh``'s settings (no
persistence, no pub/sub output-buffer limit: a slow subscriber is buffered, not cut off), but
bound to a namespace host's address instead of 127.0.0.1, so that consumers on the other hosts
reach it over the LAN as groupcomm's members reach their daemons' peers.

A fresh server per system run: nothing of the previous run (a stream, buffers) is left.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

READY_TIMEOUT_S = 10.0


def redis_problem() -> str | None:
    """``None`` if ``redis-server`` and ``redis-cli`` are installed, else what to do."""
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        return (
            f"no {' or '.join(missing)} (the peer kit's Redis: "
            "cd shared/peers && ./install.sh, see its README)"
        )
    return None


class RedisServer:
    def __init__(self, prefix: Sequence[str], ip: str, port: int, workdir: Path) -> None:
        self.prefix = list(prefix)
        self.ip = ip
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [
            *self.prefix,
            "redis-server",
            "--port", str(self.port),
            "--bind", self.ip,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--client-output-buffer-limit", "pubsub 0 0 0",
            "--daemonize", "no",
            "--logfile", str(self.workdir / "redis.log"),
            "--protected-mode", "no",  # bound to a namespace address only
        ]  # fmt: skip

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        ping = [*self.prefix, "redis-cli", "-h", self.ip, "-p", str(self.port), "ping"]
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {self.proc.returncode}")
            done = subprocess.run(ping, capture_output=True, text=True, timeout=5, check=False)
            if done.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise TimeoutError(f"redis-server did not answer on {self.ip}:{self.port}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
