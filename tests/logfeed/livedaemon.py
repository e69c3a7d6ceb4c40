"""One real daemon process for the log-feed tests (no ACLs, a Unix client endpoint), a
consumer that records what a group delivers, and ``groupcomm`` commands as processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from groupcomm.client.connection import Connection, connect
from groupcomm.client.events import Message, RegularView
from groupcomm.localcluster import free_ports
from tests.daemon.onedaemon import DaemonProcess

T = 30.0  # bound on every wait: a hang fails instead of blocking the suite
ROOT = Path(__file__).resolve().parents[2]


class Daemon(DaemonProcess):
    def __init__(self, workdir: Path) -> None:
        data, control = free_ports(2)
        self.endpoint = f"ipc://{workdir}/d1.sock"
        self.socket_path = workdir / "d1.sock"
        config = (
            f'[daemon]\nname = "d1"\nclient_endpoints = ["{self.endpoint}"]\n\n'
            f'[[peers]]\nname = "d1"\ndata_port = {data}\ncontrol_port = {control}\n'
        )
        super().__init__(workdir, config, self.endpoint)


class Consumer:
    """A member of ``group`` keeping every delivered payload (and its sender) and view, in
    order."""

    def __init__(self, conn: Connection, group: str) -> None:
        self.conn = conn
        self.group = group
        self.payloads: list[bytes] = []
        self.senders: list[str] = []  # the sender of each payload
        self.views: list[RegularView] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._pump())

    @classmethod
    async def join(cls, endpoint: str, group: str) -> Consumer:
        conn = await connect(endpoint).open()
        await conn.join(group)
        consumer = cls(conn, group)
        await consumer.wait_for(lambda c: bool(c.views), "its own JOIN view")
        return consumer

    async def _pump(self) -> None:
        while True:
            for event in await self.conn.receive_many():
                if isinstance(event, Message):
                    self.payloads.append(event.payload)
                    self.senders.append(event.sender)
                elif isinstance(event, RegularView):
                    self.views.append(event)
            self._changed.set()

    async def wait_for(
        self, done: Callable[[Consumer], bool], what: str, timeout: float = T
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done(self):
            if self._task.done():
                self._task.result()  # the session ended: say why
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no {what} within {timeout} s; got {len(self.payloads)} messages"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))

    async def wait_payload(self, payload: bytes) -> None:
        await self.wait_for(lambda c: payload in c.payloads, repr(payload))

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.conn.close()


def _interruptible() -> None:
    """In the child: SIGINT back to its default. A test run started in the background (CI
    scripts, ``nohup ... &``) inherits SIGINT ignored, and Python then installs no Ctrl-C
    handler, so the SIGINT these tests send as a user's Ctrl-C would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    """``python -m groupcomm ARGS`` with stdout and stderr piped."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "groupcomm", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=_interruptible,
    )


async def wait_exit(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    """Its exit status and stderr, once it exited (at most ``T`` seconds)."""
    _, err = await asyncio.wait_for(asyncio.to_thread(proc.communicate), T)
    return proc.returncode, err.decode()
