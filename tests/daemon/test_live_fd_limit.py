"""A daemon with few file descriptors (``RLIMIT_NOFILE`` lowered to 128, soft and hard, before
it starts) meets more client connections than that: it accepts and closes the ones that would
eat into its reserve (``refused_fds``, one warning line with a count), stays up and keeps
serving the session it already had; once the flood is gone, new sessions open again
(docs/operations.md "File descriptors")."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from pathlib import Path

import pytest

from groupcomm.client import DaemonUnavailable, SessionRefused, connect
from groupcomm.client.connection import query_status
from groupcomm.client.events import Message, RegularView
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import wait_daemons

LIMIT = 128
FLOOD = 300  # connections, well past the limit
# Runs the daemon's command line with the lowered limit (no dependency on prlimit(1)).
WITH_LIMIT = (
    "import os, resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LIMIT}, {LIMIT})); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


async def test_descriptor_flood_is_refused_and_the_daemon_serves_on(tmp_path: Path) -> None:
    cluster = LocalCluster(
        tmp_path, ("d1",), trace=False, command_prefix={"d1": [sys.executable, "-c", WITH_LIMIT]}
    )
    cluster.start()
    flood: list[socket.socket] = []
    try:
        await wait_daemons(cluster, ("d1",), 20)
        endpoint = cluster.endpoints["d1"]
        path = endpoint[len("ipc://") :]
        async with connect(endpoint, "old") as old:
            await old.join("g")
            while not isinstance(await old.receive(10), RegularView):
                pass
            for _ in range(FLOOD):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                    sock.connect(path)  # the backlog may be full: the daemon drains it
                flood.append(sock)
                if len(flood) % 50 == 0:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            assert cluster.procs["d1"].poll() is None
            # The old session still works...
            await old.multicast("g", b"still here")
            while not (
                isinstance(ev := await old.receive(10), Message) and ev.payload == b"still here"
            ):
                pass
            # ... and a new one is refused politely (or finds the backlog full).
            with pytest.raises((SessionRefused, DaemonUnavailable)):
                async with connect(endpoint, "new", timeout=2.0):
                    pass
            for sock in flood:
                sock.close()
            flood.clear()
            await asyncio.sleep(0.5)
            async with connect(endpoint, "later") as later:
                await later.join("g")
            counters = (await query_status(endpoint))["frontend"]
            assert isinstance(counters, dict) and counters["refused_fds"] > 0
        log = (tmp_path / "d1.0.log").read_text()
        assert log.count("client_refused_fds") == 1
        assert "nofile_limit" in log
    finally:
        for sock in flood:
            sock.close()
        cluster.stop()
