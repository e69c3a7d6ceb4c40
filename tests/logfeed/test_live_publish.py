"""``groupcomm publish --follow FILE --state STATE`` as processes against a real daemon: after
a ``kill -9`` the next run starts at the recorded offset (no line lost, none before the offset
sent again); stopped and started again across a rotation, a truncation and a missing rotated
file, every line arrives exactly once and the warnings say what happened."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from groupcomm.cli import main
from tests.logfeed.livedaemon import Consumer, Daemon, T, spawn, wait_exit


def _state(path: Path) -> dict[str, int]:
    data: dict[str, int] = json.loads(path.read_text())
    return data


async def _until(check: object, what: str) -> None:
    """Poll ``check()`` (a callable) until true; bounded by ``T``."""
    assert callable(check)
    deadline = time.monotonic() + T
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {T} s"
        await asyncio.sleep(0.02)


def _read_offset(pid: int, path: Path) -> int:
    """How far process ``pid`` has read ``path`` (its open file's offset), 0 if not open."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    return int(info.readline().split()[1])  # "pos:\t<offset>"
        except OSError:
            continue  # closed meanwhile
    return 0


def _publisher(ready: Daemon, group: str, log: Path, state: Path) -> subprocess.Popen[bytes]:
    return spawn(
        "publish", group, "--follow", str(log), "--from-start", "--state", str(state),
        "--state-interval", "0.05", "--endpoint", ready.endpoint,
    )  # fmt: skip


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fdinfo"), reason="needs Linux /proc")
async def test_kill_9_then_resume_from_the_recorded_offset(ready: Daemon, tmp_path: Path) -> None:
    log, state = tmp_path / "app.log", tmp_path / "app.state"
    lines = [f"line {i:06d} " + "x" * 40 for i in range(30_000)]
    part1, part2 = lines[:500], lines[500:29_990]  # the last 10 come after the kill
    end1 = len("\n".join(part1)) + 1
    log.write_text("\n".join(part1) + "\n")
    consumer = await Consumer.join(ready.endpoint, "resume")
    first = second = None
    stopped = False
    try:
        first = _publisher(ready, "resume", log, state)
        await consumer.wait_payload(part1[-1].encode())
        await _until(lambda: state.exists() and _state(state)["offset"] == end1, "state")

        # With the daemon stopped nothing more is credited, so nothing past part 1 can be
        # recorded; the publisher reads on and hands lines over until its window is full.
        ready.proc.send_signal(signal.SIGSTOP)
        stopped = True
        with log.open("a") as f:
            f.write("\n".join(part2) + "\n")
        deadline = time.monotonic() + 1.0  # well within the clients' 3 s daemon timeout
        while _read_offset(first.pid, log) <= end1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # until it read into part 2 (not a verdict)
        read_into_part2 = _read_offset(first.pid, log) > end1
        # Six state intervals: a publisher recording lines it merely handed over (not
        # acknowledged) would have written them by now and fail the check below.
        await asyncio.sleep(0.3)
        first.kill()  # kill -9, with lines handed over but not acknowledged
        first.wait()
        ready.proc.send_signal(signal.SIGCONT)
        stopped = False

        recorded = _state(state)
        assert recorded["offset"] == end1  # mid-file: part 2 was never acknowledged
        assert recorded["ino"] == os.stat(log).st_ino
        with log.open("a") as f:
            f.write("\n".join(lines[29_990:]) + "\n")

        second = _publisher(ready, "resume", log, state)
        await consumer.wait_payload(lines[-1].encode())
        second.send_signal(signal.SIGTERM)
        rc, err = await wait_exit(second)
        assert (rc, err) == (0, "")
        assert _state(state)["offset"] == log.stat().st_size  # everything acknowledged

        runs: dict[str, list[str]] = {}
        for sender, payload in zip(consumer.senders, consumer.payloads, strict=True):
            runs.setdefault(sender, []).append(payload.decode())
        assert len(runs) == 2, runs.keys()
        got1, got2 = runs.values()
        # The second run starts exactly at the recorded offset and sends the rest, in order:
        # nothing before the offset again, nothing after it missing.
        assert got2 == lines[len(part1) :]
        # The first run's lines are a prefix reaching at least the offset (what it recorded
        # had been stamped); those past the offset, if any, are the at-least-once duplicates.
        assert got1 == lines[: len(got1)] and len(got1) >= len(part1)
        print(f"read into part 2 before the kill: {read_into_part2}; "
              f"resent: {len(got1) - len(part1)}")  # fmt: skip
    finally:
        if stopped:
            ready.proc.send_signal(signal.SIGCONT)
        _kill(first)
        _kill(second)
        await consumer.close()


async def test_stopped_across_rotation_truncation_and_a_lost_file(
    ready: Daemon, tmp_path: Path
) -> None:
    log, state = tmp_path / "app.log", tmp_path / "app.state"
    consumer = await Consumer.join(ready.endpoint, "restarts")
    want: list[str] = []
    proc: subprocess.Popen[bytes] | None = None

    async def run(last: str) -> str:
        """Start a publisher, wait for ``last``, stop it; its stderr."""
        nonlocal proc
        proc = _publisher(ready, "restarts", log, state)
        await consumer.wait_payload(last.encode())
        proc.send_signal(signal.SIGTERM)
        rc, err = await wait_exit(proc)
        assert rc == 0, err
        assert _state(state)["offset"] == log.stat().st_size
        return err

    def append(path: Path, new: list[str]) -> None:
        with path.open("a") as f:
            f.write("".join(f"{line}\n" for line in new))

    try:
        append(log, ["a 0", "a 1", "", "a 3"])  # an empty line too
        want += ["a 0", "a 1", "", "a 3"]
        assert await run("a 3") == ""

        # Rotated while stopped: lines added to the old file before the rename, a new file.
        append(log, ["b 0", "b 1"])
        os.rename(log, tmp_path / "app.log.1")
        append(log, ["c 0", "c 1"])
        want += ["b 0", "b 1", "c 0", "c 1"]
        err = await run("c 1")
        assert "warning: " in err and "app.log.1" in err and "rotated" in err

        # Truncated while stopped (copytruncate), then a shorter content.
        log.write_text("d 0\n")
        want += ["d 0"]
        err = await run("d 0")
        assert "shorter" in err and "truncated" in err

        # Rotated while stopped and the old file gone (compressed, deleted): from the new
        # file's start, with a warning that lines may have been missed.
        (tmp_path / "gone").mkdir()
        os.rename(log, tmp_path / "gone" / "app.log")
        append(log, ["e 0"])
        want += ["e 0"]
        err = await run("e 0")
        assert "may have been missed" in err

        assert [p.decode() for p in consumer.payloads] == want  # each line once, in order
    finally:
        _kill(proc)
        await consumer.close()


async def test_publish_stdin_and_usage(ready: Daemon, tmp_path: Path) -> None:
    consumer = await Consumer.join(ready.endpoint, "publish-stdin")
    try:
        sender = spawn(
            "publish", "publish-stdin", "--endpoint", ready.endpoint, stdin=subprocess.PIPE
        )
        _, err = await asyncio.wait_for(asyncio.to_thread(sender.communicate, b"x\ny\n"), T)
        assert (sender.returncode, err) == (0, b"")
        await consumer.wait_payload(b"y")
        assert consumer.payloads == [b"x", b"y"]

        # A line the daemon refuses (over its 1 MiB limit, let through by --max-line-bytes)
        # is reported, not silently counted as sent.
        sender = spawn(
            "publish", "publish-stdin", "--max-line-bytes", "2000000",
            "--endpoint", ready.endpoint, stdin=subprocess.PIPE,
        )  # fmt: skip
        data = b"z" * 1_060_000 + b"\nlast\n"  # under the frame limit, over 1 MiB
        _, err = await asyncio.wait_for(asyncio.to_thread(sender.communicate, data), T)
        assert sender.returncode == 0, err
        assert b"the daemon refused a line: " in err
        assert b"1 line(s) refused by the daemon" in err
        await consumer.wait_payload(b"last")
        assert consumer.payloads == [b"x", b"y", b"last"]
    finally:
        await consumer.close()
    for argv in (
        ["publish", "g", "--state", "s"],  # no position to keep on stdin
        ["publish", "g", "--from-start"],
        ["publish", "g", "text"],  # publish takes no TEXT: that is send's
        ["publish", "g", "--follow", "f", "--state", "s", "--state-interval", "0"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2


def test_publish_refuses_a_state_kept_for_another_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    state = tmp_path / "app.state"
    state.write_text(
        json.dumps(
            {"version": 1, "file": "/var/log/other.log", "dev": 1, "ino": 2, "offset": 0,
             "fingerprint": ""}
        )
    )  # fmt: skip
    nobody = "ipc:///tmp/gc-nobody-here.sock"  # checked before any daemon is asked
    argv = ["publish", "g", "--follow", str(log), "--state", str(state), "--endpoint", nobody]
    assert main(argv) == 1
    assert "is kept for /var/log/other.log" in capsys.readouterr().err
    state.write_text("garbage")
    assert main(argv) == 1
    assert "is not a publisher's state" in capsys.readouterr().err
