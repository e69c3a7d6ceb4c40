"""A process that started a ``LocalCluster`` and dies without stopping it (SIGKILL, as a test
timeout does) takes its daemons with it: they get SIGTERM from the kernel (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STARTER = """
import sys, time
from pathlib import Path
from groupcomm.localcluster import LocalCluster
cluster = LocalCluster(Path(sys.argv[1]), ("d1", "d2"), trace=False)
cluster.start()
print(" ".join(str(p.pid) for p in cluster.procs.values()), flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_daemons_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    pids: list[int] = []
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert starter.stdout is not None
        pids = [int(p) for p in starter.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        starter.send_signal(signal.SIGKILL)
        starter.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids), "daemons outlived the process that started them"
    finally:
        starter.kill()
        for p in pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)
