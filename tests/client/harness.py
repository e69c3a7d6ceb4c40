"""A tiny in-process daemon for the client tests: one ``Node`` (single daemon), one
``NativeFrontEnd`` and a polling loop running as an asyncio task in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

from groupcomm.accessconfig import AccessConfig
from groupcomm.core.commands import (
    CloseSession,
    Credit,
    DeliverMembership,
    DeliverMessage,
    RejectRequest,
    SetTimer,
)
from groupcomm.core.config import CoreConfig
from groupcomm.core.events import Event, Started, TimerFired
from groupcomm.core.node import Node
from groupcomm.daemon.access import Access
from groupcomm.daemon.frontend import NativeFrontEnd
from groupcomm.daemon.readiness import Readiness


class ListLog:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, object]]] = []

    def info(self, event: str, **kw: object) -> object:
        self.records.append(("info", event, kw))
        return None

    def warning(self, event: str, **kw: object) -> object:
        self.records.append(("warning", event, kw))
        return None


class MiniDaemon:
    def __init__(self, endpoint: str, **frontend_kw: Any) -> None:
        self.node = Node(CoreConfig(name="d1", incarnation=1, peers=("d1",)))
        self.log = ListLog()
        kw: dict[str, Any] = {"send_window": 64 * 1024, "slow_consumer_bytes": 1 << 20}
        kw.update(frontend_kw)
        kw.setdefault("access", Access(AccessConfig(admin=frozenset({"*"}))))
        self.fe = NativeFrontEnd([endpoint], "d1", log=self.log, **kw)
        self.fe.status_provider(self)
        self.endpoint = endpoint
        self.readiness = Readiness()
        self.fe.attach(self.readiness)
        self.stopping = False

    def status(self) -> dict[str, object]:
        return {"view": str(self.node.view), "members": list(self.node.members)}

    async def run(self) -> None:
        started = False
        next_tick = 0
        while not self.stopping:
            now = time.monotonic_ns() // 1_000_000
            events: list[Event] = []
            if not started:
                events.append(Started())
                started = True
            if self.readiness.wait(0) or self.fe.pending():
                events.extend(self.fe.take_events(now, 1000))
            if now >= next_tick:
                events.append(TimerFired(name="tick"))
                next_tick = now + 10
            if events:
                for cmd in self.node.handle_batch(now, events):
                    if isinstance(cmd, SetTimer):
                        next_tick = cmd.at_ms
                    elif isinstance(
                        cmd,
                        DeliverMessage | DeliverMembership | RejectRequest | CloseSession | Credit,
                    ):
                        self.fe.execute(cmd)
            self.fe.flush()
            await asyncio.sleep(0.001)


@contextlib.asynccontextmanager
async def mini_daemon(endpoint: str = "", **frontend_kw: Any) -> AsyncIterator[MiniDaemon]:
    """The daemon on ``endpoint`` (default: a fresh ``ipc://`` socket in a temporary dir)."""
    tmp = tempfile.mkdtemp(prefix="gc-")
    daemon = MiniDaemon(endpoint or f"ipc://{tmp}/d.sock", **frontend_kw)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        daemon.stopping = True
        await asyncio.wait_for(task, 5)
        daemon.fe.close()
        shutil.rmtree(tmp, ignore_errors=True)
