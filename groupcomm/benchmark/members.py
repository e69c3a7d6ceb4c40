"""The member processes of one run, as a group: spawn, wait until all are ready, hand out the
common start time, wait for them to finish, kill stragglers.

Separate from the runner so that the start handshake (``startsync``) has one counterpart, and so
that every wait on a child process is bounded in one place.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from groupcomm.benchmark.startsync import READY


class MemberError(RuntimeError):
    """A member did not get ready (it exited, or the deadline passed)."""


class MemberGroup:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, mid: int, argv: Sequence[str]) -> None:
        with (self.workdir / f"m{mid}.log").open("wb") as log:
            self.procs[mid] = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
            )

    def pids(self) -> dict[int, int]:
        return {mid: p.pid for mid, p in self.procs.items()}

    def wait_ready(self, timeout: float) -> None:
        """Until every member printed ``ready``; ``MemberError`` otherwise."""
        deadline = time.monotonic() + timeout
        pending: dict[int, bytes] = dict.fromkeys(self.procs, b"")
        with selectors.DefaultSelector() as sel:
            for mid, proc in self.procs.items():
                assert proc.stdout is not None
                sel.register(proc.stdout, selectors.EVENT_READ, mid)
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MemberError(f"members {sorted(pending)} not ready in {timeout:.0f} s")
                for key, _ in sel.select(min(remaining, 1.0)):
                    mid = key.data
                    chunk = os.read(key.fd, 256)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        raise MemberError(f"member {mid} exited before it was ready")
                    pending[mid] = pending.get(mid, b"") + chunk
                    if READY.encode() in pending[mid]:
                        del pending[mid]
                        sel.unregister(key.fileobj)

    def start(self, start_ns: int) -> None:
        for proc in self.procs.values():
            assert proc.stdin is not None
            proc.stdin.write(f"{start_ns}\n".encode())
            proc.stdin.close()

    def running(self) -> bool:
        return any(p.poll() is None for p in self.procs.values())

    def kill(self) -> None:
        """Kill every member still running (after an error or an interrupt); idempotent."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()

    def finish(self, timeout: float) -> dict[int, int | None]:
        """Wait up to ``timeout`` s in total, kill whoever is left; exit status per member
        (None for killed ones)."""
        deadline = time.monotonic() + timeout
        codes: dict[int, int | None] = {}
        for mid, proc in self.procs.items():
            try:
                codes[mid] = proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[mid] = None
        self.kill()
        return codes
