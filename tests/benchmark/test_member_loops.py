"""The flooding sender's loops against a fake connection and a fake clock: ``--batch N`` is
one ``multicast_many`` call per N messages, ``--batch 1`` one plain ``multicast`` per message;
sequence numbers and window counts come out the same either way. No real time passes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

import pytest

from groupcomm.benchmark import member
from groupcomm.benchmark.recorder import SendCounter
from groupcomm.benchmark.workload import HEADER
from groupcomm.client.connection import Connection
from groupcomm.core.service import Service


class FakeConnection:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[bytes]]] = []

    async def multicast(self, group: str, payload: bytes, service: Service) -> int:
        self.calls.append(("multicast", [payload]))
        return len(self.calls)

    async def multicast_many(
        self, group: str, payloads: Sequence[bytes], service: Service
    ) -> list[int]:
        self.calls.append(("multicast_many", list(payloads)))
        return list(range(len(payloads)))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``time.monotonic_ns`` returns 0, 1, 2, ...: one tick per loop turn."""
    ticks = iter(range(1_000_000))
    monkeypatch.setattr(time, "monotonic_ns", lambda: next(ticks))


def seqs(conn: FakeConnection) -> list[int]:
    return [HEADER.unpack_from(p)[1] for _, batch in conn.calls for p in batch]


@pytest.mark.usefixtures("clock")
async def test_batched_flood_uses_multicast_many() -> None:
    conn, counter = FakeConnection(), SendCounter()
    # turns at t = 0..4; the window is [2, 4): turns 2 and 3
    await member.flood_loop(cast(Connection, conn), Service.AGREED, 7, b"", (2, 4), 5, counter, 3)
    assert [name for name, _ in conn.calls] == ["multicast_many"] * 5
    assert seqs(conn) == list(range(15))
    assert (counter.sent, counter.in_window) == (15, 6)


@pytest.mark.usefixtures("clock")
async def test_batch_one_uses_plain_multicast() -> None:
    conn, counter = FakeConnection(), SendCounter()
    pad = b"\0" * 4
    await member.flood_loop_single(
        cast(Connection, conn), Service.AGREED, 7, pad, (2, 4), 5, counter
    )
    assert [name for name, _ in conn.calls] == ["multicast"] * 5
    assert seqs(conn) == list(range(5))
    assert {len(p) for _, b in conn.calls for p in b} == {HEADER.size + 4}
    assert (counter.sent, counter.in_window) == (5, 2)
