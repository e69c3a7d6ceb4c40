"""Resumable consumers on live daemons (protocol/retention.md: RET-SEAM, RET-GAP): a consumer
process (``groupcomm tail --raw --output --state --failover``) is killed with ``kill -9`` twice
and its daemon once while a sender on a surviving daemon streams numbered lines; every line must
be in the consumer's output exactly once, in order. Daemons retain the group on disk; a daemon
restarted from its disk log reports the messages it missed as a ``restart`` gap."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from groupcomm.client import connect
from groupcomm.client.events import Gap, Message, RegularView
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import NAMES, ROOT, assert_traces_ok, wait_daemons

LINES = 1500
RATE = 500.0  # lines per second from the sender


def retain_toml(workdir: Path, name: str) -> str:
    return (
        '\n[[retain]]\ngroups = "feed"\nmax_bytes = 10000000\nstore = "disk"\n\n'
        f'[retention]\ndir = "{workdir / ("spool-" + name)}"\n'
    )


def start(workdir: Path) -> LocalCluster:
    cluster = LocalCluster(workdir, NAMES, extra_toml={n: retain_toml(workdir, n) for n in NAMES})
    cluster.start()
    try:
        asyncio.run(wait_daemons(cluster, NAMES, 20.0))
    except BaseException:
        cluster.stop()
        raise
    return cluster


def consumer(cluster: LocalCluster, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "groupcomm", "tail", "feed", "--raw",
            "--since", "earliest",
            "--output", str(workdir / "out.txt"),
            "--state", str(workdir / "state.json"),
            "--endpoint", cluster.endpoints["d2"],
            "--failover", cluster.endpoints["d3"],
        ],
        cwd=ROOT,
        stderr=open(workdir / "consumer.err", "ab"),
    )  # fmt: skip


def lines_out(workdir: Path) -> list[bytes]:
    path = workdir / "out.txt"
    return path.read_bytes().splitlines() if path.exists() else []


async def wait_lines(workdir: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(lines_out(workdir)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(lines_out(workdir))} of {count} lines after {timeout} s")
        await asyncio.sleep(0.05)


async def test_killed_consumers_and_daemons_resume_exactly_once(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(start, tmp_path)
    proc = consumer(cluster, tmp_path)
    try:
        async with connect(cluster.endpoints["d1"], "sender") as sender:
            await asyncio.sleep(1.0)  # the consumer's join first: it replays from the earliest

            async def send_all() -> None:
                t0 = time.monotonic()
                for i in range(1, LINES + 1):
                    await sender.multicast("feed", b"%d" % i)
                    delay = t0 + i / RATE - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)

            sending = asyncio.create_task(send_all())
            await wait_lines(tmp_path, LINES // 5, 20)
            proc.send_signal(signal.SIGKILL)  # the consumer, mid-stream
            proc.wait(5)
            await asyncio.sleep(0.3)
            proc = consumer(cluster, tmp_path)
            await wait_lines(tmp_path, LINES // 2, 20)
            cluster.kill9("d2")  # the consumer's daemon: it resumes at d3
            await wait_lines(tmp_path, 3 * LINES // 4, 20)
            proc.send_signal(signal.SIGKILL)  # again, now on d3, with d2 still down
            proc.wait(5)
            proc = consumer(cluster, tmp_path)
            await asyncio.wait_for(sending, 30)
            await wait_lines(tmp_path, LINES, 30)
            await asyncio.sleep(0.5)  # nothing more may come
        got = lines_out(tmp_path)
        assert got == [b"%d" % i for i in range(1, LINES + 1)], (
            f"{len(got)} lines; first wrong at "
            f"{next((i for i, x in enumerate(got) if x != b'%d' % (i + 1)), None)}; "
            + (tmp_path / "consumer.err").read_text()
        )
        err = (tmp_path / "consumer.err").read_text()
        assert "resuming at" in err  # the failover happened (and was said)

        # The killed daemon comes back from its disk log: a replay across its restart says
        # that it missed what the others delivered meanwhile.
        cluster.restart("d2")
        await wait_daemons(cluster, NAMES, 20)
        cluster.mark_stable()
        async with connect(cluster.endpoints["d1"], "late") as late:
            await late.multicast("feed", b"after")
            async with connect(cluster.endpoints["d2"], "reader") as reader:
                await reader.join("feed", since="earliest")
                events: list[object] = []
                while not (
                    any(isinstance(e, RegularView) for e in events)
                    and any(isinstance(e, Message) and e.payload == b"after" for e in events)
                ):
                    events.append(await reader.receive(10))
        gaps = [e for e in events if isinstance(e, Gap)]
        assert [g.reason for g in gaps] == ["restart"], gaps
        replayed = [e.payload for e in events if isinstance(e, Message)]
        before = replayed[: replayed.index(b"after")]
        # Its own history (everything it delivered before it was killed), then the gap.
        assert before == [b"%d" % i for i in range(1, len(before) + 1)]
        messages_before_gap = [e for e in events[: events.index(gaps[0])] if isinstance(e, Message)]
        assert [m.payload for m in messages_before_gap] == before  # the gap is at the restart
        await assert_traces_ok(cluster)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        cluster.stop()
