"""Shared helpers for the live-cluster tests: real daemon processes (``LocalCluster``) driven by
the asyncio client. Every wait is bounded; every test ends with ``await assert_traces_ok(cluster)``,
which closes the trace with the liveness markers (``stable`` if the test did not mark it after its
last fault, ``end`` with the live daemons once they settled) and runs every checker of the
simulator (``sim.checkers``, as ``python -m sim.check_trace`` does) over the merged traces, the
liveness properties L1-L3 and SVC-REL included."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from groupcomm.client.connection import Connection, ConnectionClosed, connect, query_status
from groupcomm.client.events import (
    Event,
    Message,
    RegularView,
    Rejected,
    SelfLeave,
    TransitionalView,
)
from groupcomm.localcluster import LocalCluster
from sim.checkers import check_all, final_configuration
from sim.trace import Trace, load_traces

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("d1", "d2", "d3")


def start_cluster(
    workdir: Path,
    *,
    faults: bool = False,
    protocol: dict[str, int] | None = None,
    **daemon: int | bool | str,
) -> LocalCluster:
    """Start a 3-daemon cluster (extra ``[daemon]`` keys from ``daemon``, ``[protocol]`` keys
    from ``protocol``) and wait until every daemon is in one view of all three. Without
    ``faults`` (no daemon will be killed, no partition injected) the trace is marked ``stable``
    at once; with them the test calls ``cluster.mark_stable()`` after its last fault."""
    cluster = LocalCluster(workdir, NAMES, daemon=dict(daemon), protocol=dict(protocol or {}))
    cluster.start()
    try:
        asyncio.run(wait_daemons(cluster, NAMES, 20.0))
    except BaseException:
        cluster.stop()
        raise
    if not faults:
        cluster.mark_stable()
    return cluster


async def wait_daemons(cluster: LocalCluster, names: Sequence[str], timeout: float) -> None:
    """Until every daemon in ``names`` reports a view whose members are exactly ``names``."""
    deadline = time.monotonic() + timeout
    want = set(names)
    while True:
        ok = True
        for name in names:
            try:
                status = await query_status(cluster.endpoints[name], 0.5)
            except Exception:
                ok = False
                break
            members = status.get("members")
            got = {str(m).split(":", 1)[0] for m in members} if isinstance(members, list) else set()
            if got != want:
                ok = False
                break
        if ok:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"daemons {sorted(want)} did not form one view in {timeout} s")
        await asyncio.sleep(0.1)


class LiveClient:
    """A connection plus a task recording everything it delivers."""

    def __init__(self, conn: Connection, daemon: str) -> None:
        self.conn = conn
        self.daemon = daemon
        self.events: list[Event] = []
        self.closed_reason: str | None = None
        self.changed = asyncio.Event()
        self._task = asyncio.create_task(self._pump())

    @property
    def name(self) -> str:
        return self.conn.private_name

    async def _pump(self) -> None:
        try:
            async for event in self.conn:
                self.events.append(event)
                self.changed.set()
        except ConnectionClosed as e:
            self.closed_reason = e.reason
        self.changed.set()

    # -------------------------------------------------------------- queries
    def messages(self, group: str | None = None) -> list[Message]:
        return [
            e
            for e in self.events
            if isinstance(e, Message) and (group is None or group in e.groups)
        ]

    def payloads(self, group: str | None = None) -> list[bytes]:
        return [m.payload for m in self.messages(group)]

    def views(self, group: str) -> list[RegularView]:
        return [e for e in self.events if isinstance(e, RegularView) and e.group == group]

    def transitionals(self, group: str) -> list[TransitionalView]:
        return [e for e in self.events if isinstance(e, TransitionalView) and e.group == group]

    def rejections(self) -> list[Rejected]:
        return [e for e in self.events if isinstance(e, Rejected)]

    def self_left(self, group: str) -> bool:
        return any(isinstance(e, SelfLeave) and e.group == group for e in self.events)

    def members(self, group: str) -> set[str] | None:
        views = self.views(group)
        return set(views[-1].members) if views else None

    # ---------------------------------------------------------------- waits
    async def wait_for(
        self, test: Callable[[LiveClient], bool], timeout: float, what: str = ""
    ) -> None:
        """Until ``test(self)`` holds; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not test(self):
            self.changed.clear()
            if test(self):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: timed out after {timeout} s waiting for {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    async def wait_members(self, group: str, members: Iterable[str], timeout: float) -> None:
        want = set(members)
        await self.wait_for(
            lambda x: x.members(group) == want, timeout, f"view of {group} = {sorted(want)}"
        )

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.close(), 5)
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


async def open_client(
    cluster: LocalCluster,
    daemon: str,
    name: str = "",
    *,
    keepalive: float = 5.0,
    timeout: float = 15.0,
) -> LiveClient:
    """Connect to ``daemon`` (retrying while it starts) and start recording events."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await connect(
                cluster.endpoints[daemon], name=name, timeout=0.5, keepalive=keepalive
            ).open()
            return LiveClient(conn, daemon)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def wait_all_members(
    clients: Sequence[LiveClient], group: str, members: Iterable[str], timeout: float
) -> None:
    want = set(members)
    await asyncio.gather(*(c.wait_members(group, want, timeout) for c in clients))


async def close_all(clients: Iterable[LiveClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients))


def view_key(v: RegularView) -> tuple[str, tuple[str, ...], str]:
    return (v.gid, tuple(v.members), v.cause)


async def assert_traces_ok(cluster: LocalCluster, timeout: float = 20.0) -> Trace:
    """Write ``end`` (and ``stable`` if not marked yet) once the running daemons settled in one
    view, then check every trace file the cluster wrote, merged: no violation, and the liveness
    properties were judged (the trace has ``stable`` and ``end`` and a final configuration, L1).
    Returns the trace for further assertions."""
    await cluster.end_trace(timeout)
    await asyncio.sleep(0.5)  # let the daemons write their last trace lines
    trace = load_traces(cluster.traces)
    assert trace.stable is not None and trace.end is not None, "no liveness markers"
    violations = check_all(trace)
    assert not violations, "trace check failed:\n" + "\n".join(map(str, violations[:40]))
    assert final_configuration(trace) is not None  # L1 held: L2 and SVC-REL had a scope
    return trace
