"""A client whose daemon stops answering without closing anything (SIGSTOP: what a hung
daemon, a vanished host or a cut network look like, no FIN ever arrives) is told within its
``daemon_timeout``: the receive loop and ``multicast`` raise ``DaemonLost`` instead of waiting
forever (docs/client.md "Liveness")."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from groupcomm.client import DaemonLost, connect
from groupcomm.client.events import RegularView
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import wait_daemons

DAEMON_TIMEOUT_S = 1.0
WAIT_S = 30.0  # the test's own bound, far above the documented 1.2 * DAEMON_TIMEOUT_S


async def test_client_learns_its_stopped_daemon_is_lost(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, ("d1",), trace=False)
    cluster.start()
    pid = cluster.procs["d1"].pid
    try:
        await wait_daemons(cluster, ("d1",), 20)
        endpoint = cluster.endpoints["d1"]
        reader = await connect(endpoint, "reader", daemon_timeout=DAEMON_TIMEOUT_S).open()
        sender = await connect(endpoint, "sender", daemon_timeout=DAEMON_TIMEOUT_S).open()
        await reader.join("g")
        while not isinstance(await reader.receive(10), RegularView):
            pass
        # Alive and idle for several timeouts: the pings are answered, nothing is lost.
        await asyncio.sleep(3 * DAEMON_TIMEOUT_S)
        assert not reader.closed and not sender.closed
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(DaemonLost, match="silent"):
                async with asyncio.timeout(WAIT_S):
                    async for _ in reader:
                        pass

            async def flood() -> None:  # fills the send window, then waits for credit
                while True:
                    await sender.multicast("g", bytes(60_000))

            with pytest.raises(DaemonLost):
                await asyncio.wait_for(flood(), WAIT_S)
            await reader.close()
            await sender.close()
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        cluster.stop()
