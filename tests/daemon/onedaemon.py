"""One real daemon process started from a config text, for the live tests that need a single
daemon with a config of their own (access rules, TLS endpoints, log feeds): start, wait until it
answers ``status``, its log, stop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from groupcomm.client.connection import query_status
from groupcomm.localcluster import die_with_parent

READY_TIMEOUT_S = 20.0


class DaemonProcess:
    def __init__(self, workdir: Path, config_text: str, status_endpoint: str) -> None:
        config = workdir / "d1.toml"
        config.write_text(config_text)
        self.status_endpoint = status_endpoint
        self.log_path = workdir / "d1.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "groupcomm.daemon", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )

    async def ready(self) -> None:
        """Until the daemon answers ``status``; raises if it exited or took too long."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                await query_status(self.status_endpoint, 0.5)
                return
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                await asyncio.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
