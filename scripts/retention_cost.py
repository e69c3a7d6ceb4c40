"""What retention costs a flooded 3-daemon loopback cluster (docs/performance.md "What
retention costs"): one sender on d1 floods 100-byte AGREED messages to a group, one receiver on
d2 counts them; the group is not retained, retained in memory, on disk without fsync, on disk
with one fsync per turn. Prints msg/s at the receiver per run.

    .venv/bin/python scripts/retention_cost.py [--messages 200000] [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from groupcomm.client import Message, RegularView, connect  # noqa: E402
from groupcomm.localcluster import LocalCluster  # noqa: E402
from tests.daemon.live import NAMES, wait_daemons  # noqa: E402

MODES = {
    "off": "",
    "memory": '[[retain]]\ngroups = "flood"\nmax_bytes = 268435456\n',
    "disk-never": '[[retain]]\ngroups = "flood"\nmax_bytes = 268435456\nstore = "disk"\n'
    '[retention]\ndir = "{dir}"\nfsync = "never"\n',
    "disk-turn": '[[retain]]\ngroups = "flood"\nmax_bytes = 268435456\nstore = "disk"\n'
    '[retention]\ndir = "{dir}"\nfsync = "turn"\n',
}


async def flood(cluster: LocalCluster, count: int) -> float:
    async with (
        connect(cluster.endpoints["d2"], "rx") as rx,
        connect(cluster.endpoints["d1"], "tx") as tx,
    ):
        await rx.join("flood")
        while not isinstance(await rx.receive(10), RegularView):
            pass  # a member before the first message, or it would wait for all forever
        payload = b"x" * 100
        got = 0

        async def receive() -> None:
            nonlocal got
            while got < count:
                for event in await rx.receive_many():
                    got += isinstance(event, Message)

        receiving = asyncio.create_task(receive())
        t0 = time.perf_counter()
        for _ in range(count // 100):
            await tx.multicast_many("flood", [payload] * 100)
        await asyncio.wait_for(receiving, 120)
        return count / (time.perf_counter() - t0)


def run(mode: str, count: int) -> float:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as work:
        workdir = Path(work)
        extra = {n: MODES[mode].format(dir=workdir / f"spool-{n}") for n in NAMES}
        cluster = LocalCluster(workdir, NAMES, extra_toml=extra, trace=False)
        cluster.start()
        try:
            asyncio.run(wait_daemons(cluster, NAMES, 20))
            return asyncio.run(flood(cluster, count))
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    for r in range(args.runs):
        for mode in MODES:
            rate = run(mode, args.messages)
            print(f"run {r + 1} {mode:10s} {rate:10,.0f} msg/s", flush=True)


if __name__ == "__main__":
    main()
