"""How long a partition takes to show as new views when clients are in many groups.

    python -m groupcomm.benchmark.viewchange [--groups 10000] [--json]

Starts 3 daemons on loopback (``LocalCluster``, default settings), opens one client per daemon,
joins every client to ``--groups`` groups and waits until each group has all three; then cuts
d3 off (``admin partition`` on every daemon) and reports, per client, the time from the cut to
its first and last new regular view and how many views it got. The three clients share this
process, so each one's figure includes decoding the others' views; the daemons are separate
processes. docs/performance.md, "View changes with many groups", has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from groupcomm.client.connection import Connection
from groupcomm.client.events import RegularView, TransitionalView
from groupcomm.localcluster import LocalCluster

SIDES = (2, 2, 1)  # group sizes each client must see after d3 is cut off


@dataclass
class ClientViews:
    """What one client saw: the size of every group's latest regular view, and after the cut."""

    sizes: dict[str, int] = field(default_factory=dict)
    first_s: float | None = None
    last_s: float | None = None
    regular_after: int = 0
    transitional_after: int = 0


async def _drain(
    conn: Connection, seen: ClientViews, done: Callable[[ClientViews], bool], cut: list[float]
) -> None:
    while not done(seen):
        for ev in await conn.receive_many(timeout=120):
            if isinstance(ev, RegularView):
                seen.sizes[ev.group] = len(ev.members)
                if cut:
                    now = time.monotonic() - cut[0]
                    seen.first_s = now if seen.first_s is None else seen.first_s
                    seen.last_s = now
                    seen.regular_after += 1
            elif isinstance(ev, TransitionalView) and cut:
                seen.transitional_after += 1


async def measure(groups: int, workdir: Path) -> dict[str, ClientViews]:
    cluster = LocalCluster(workdir, trace=False)
    cluster.start()
    try:
        await cluster.wait_settled(30)
        conns = []
        for name in cluster.names:
            conn = Connection(cluster.endpoints[name], name="c", timeout=30)
            await conn.open()
            conns.append(conn)
        seen = [ClientViews() for _ in conns]
        for conn in conns:
            for g in range(groups):
                await conn.join(f"g{g}")
        cut: list[float] = []

        def sized(want: int) -> Callable[[ClientViews], bool]:
            return lambda v: len(v.sizes) == groups and all(n == want for n in v.sizes.values())

        await asyncio.gather(
            *(_drain(c, v, sized(3), cut) for c, v in zip(conns, seen, strict=True))
        )
        await asyncio.sleep(1.0)  # let the joins' acknowledgements settle
        cut.append(time.monotonic())
        await conns[0].admin("partition", "d3")
        await conns[1].admin("partition", "d3")
        await conns[2].admin("partition", "d1", "d2")
        await asyncio.gather(
            *(_drain(c, v, sized(w), cut) for c, v, w in zip(conns, seen, SIDES, strict=True))
        )
        for conn in conns:
            await conn.close()
        return dict(zip(cluster.names, seen, strict=True))
    finally:
        cluster.stop()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m groupcomm.benchmark.viewchange",
        description="Time from a partition to the new views, with clients in many groups.",
    )
    ap.add_argument("--groups", type=int, default=10_000, help="groups per client (10000)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    args = ap.parse_args(argv)
    if args.groups < 1:
        ap.error("--groups must be at least 1")
    with tempfile.TemporaryDirectory(prefix="gc-viewchange-") as tmp:
        result = asyncio.run(measure(args.groups, Path(tmp)))
    if args.json:
        out = {n: {k: v for k, v in asdict(s).items() if k != "sizes"} for n, s in result.items()}
        print(json.dumps({"groups": args.groups, "clients": out}))
        return 0
    for name, s in result.items():
        print(
            f"{name}: first new view +{s.first_s:.2f} s, last +{s.last_s:.2f} s, "
            f"{s.regular_after} regular and {s.transitional_after} transitional views"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
