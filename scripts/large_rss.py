"""Peak RSS of each daemon of a local 3-daemon cluster while large messages are in flight
(docs/performance.md, "Large messages"). Usage:

    PYTHONPATH=. python scripts/large_rss.py [SIZE_MIB ...]

For each size: a fresh cluster with ``[protocol] max_message_bytes`` = the largest size, one
client per daemon joined to one group, the client on d1 multicasts one message of that size
(AGREED) and every client receives it; then each daemon's VmHWM (peak resident set) is read
from /proc, next to its VmRSS before the message was sent.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from groupcomm.client.connection import connect
from groupcomm.client.events import Message
from groupcomm.core.service import Service
from groupcomm.localcluster import LocalCluster

MIB = 1 << 20
NAMES = ("d1", "d2", "d3")


def _mem(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024  # MiB
    return out


async def _run(cluster: LocalCluster, size: int) -> float:
    deadline = time.monotonic() + 20
    conns = []
    for d in NAMES:
        while True:
            try:
                conns.append(await connect(cluster.endpoints[d], timeout=0.5).open())
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    for c in conns:
        await c.join("big")
    await asyncio.sleep(1.5)

    async def receive(c: object) -> None:
        while True:
            for e in await c.receive_many(timeout=60):  # type: ignore[attr-defined]
                if isinstance(e, Message):
                    return

    readers = [asyncio.create_task(receive(c)) for c in conns]
    payload = b"\x5a" * size
    start = time.monotonic()
    await conns[0].multicast("big", payload, Service.AGREED)
    del payload
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    took = time.monotonic() - start
    for c in conns:
        await c.close()
    return took


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [64]
    for mib in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            cluster = LocalCluster(
                Path(tmp), NAMES, protocol={"max_message_bytes": max(mib, 1) * MIB}, trace=False
            )
            cluster.start()
            try:
                time.sleep(3)
                before = {d: _mem(p.pid) for d, p in cluster.procs.items()}
                took = asyncio.run(_run(cluster, mib * MIB))
                after = {d: _mem(p.pid) for d, p in cluster.procs.items()}
            finally:
                cluster.stop()
        print(f"{mib} MiB message, delivered to 3 members in {took:.2f} s")
        for d in NAMES:
            print(
                f"  {d}: RSS before {before[d]['VmRSS']} MiB, peak {after[d]['VmHWM']} MiB "
                f"(+{after[d]['VmHWM'] - before[d]['VmRSS']} MiB)"
            )


if __name__ == "__main__":
    main()
