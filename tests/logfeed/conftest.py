"""One daemon process per test module (``livedaemon.Daemon``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.logfeed.livedaemon import Daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(Path(tmp_path_factory.mktemp("logfeed")))
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
async def ready(daemon: Daemon) -> AsyncIterator[Daemon]:
    await daemon.ready()
    yield daemon
    assert daemon.proc.poll() is None  # still serving
