"""``groupcomm tail --failover``: a consumer whose daemon is lost resumes at the next endpoint
from its last position, and the 30 s it allows for finding one count from the last loss, not
from the first (a consumer that fails over once a minute for hours keeps going)."""

from __future__ import annotations

import argparse
import io
from types import TracebackType
from typing import Any

import pytest

import groupcomm.cli as cli
from groupcomm.client.connection import DaemonLost
from groupcomm.client.events import Message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeConnection:
    """Joins, then delivers one message and loses its daemon; the last one delivers for good."""

    def __init__(self, world: World, endpoint: str) -> None:
        self.world = world
        self.endpoint = endpoint

    async def __aenter__(self) -> FakeConnection:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def join(self, group: str, since: Any = None) -> int:
        self.world.joins.append((self.endpoint, since))
        return 1

    async def receive_many(self) -> list[Message]:
        world = self.world
        if world.delivered_here and world.sent < world.last:
            world.delivered_here = False
            world.clock.now += 20.0  # a lost daemon every 20 s
            raise DaemonLost("daemon connection lost")
        world.delivered_here = True
        world.sent += 1
        n = world.sent
        return [Message("#p#d1", ("g",), 0x10, 0, b"%d" % n, f"d1:1|1.d1|{n}", "R1.d1", n)]


class World:
    def __init__(self, clock: Clock, last: int) -> None:
        self.clock = clock
        self.last = last
        self.sent = 0
        self.delivered_here = False
        self.joins: list[tuple[str, Any]] = []


async def test_failover_resumes_from_the_last_position_without_giving_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    world = World(clock, last=12)
    monkeypatch.setattr(cli, "connect", lambda endpoint, **kw: FakeConnection(world, endpoint))

    async def no_sleep(_: float) -> None:
        return None

    args = argparse.Namespace(
        group="g", raw=True, json=False, count=12, output=None, state=None,
        endpoint="ipc:///a", failover=["ipc:///b"], token_file=None,
        daemon_cert=None, cert=None, key=None,
    )  # fmt: skip
    out = io.BytesIO()
    run = cli._TailRun(args, out, "earliest", None)
    run.clock, run.sleep = clock, no_sleep
    await run.run()
    assert out.getvalue().split() == [b"%d" % n for n in range(1, 13)]
    # Each resume names the last message written, alternating between the endpoints.
    assert world.joins[0] == ("ipc:///a", "earliest")
    assert [e for e, _ in world.joins[:4]] == ["ipc:///a", "ipc:///b", "ipc:///a", "ipc:///b"]
    assert world.joins[1][1] == "R1.d1#1#d1:1|1.d1|1"
    assert clock.now - 1000.0 > cli._TailRun.RETRY_FOR_S  # longer than one retry allowance
