"""``groupcomm send --follow`` / stdin and ``groupcomm tail --raw --output`` as processes
against a real daemon: every line is delivered exactly once, in order, across rotation,
truncation, bursts and the end of input."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from groupcomm.cli import main
from tests.logfeed.livedaemon import Consumer, Daemon, T, spawn, wait_exit


def _append(path: Path, lines: list[str], end: str = "\n") -> None:
    with path.open("a") as f:
        f.write("\n".join(lines) + end)


async def test_follow_rotation_truncation_burst_and_sigterm(ready: Daemon, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("old 1\nold 2\n")  # there before: not sent (the default starts at the end)
    out = tmp_path / "tail.out"
    consumer = await Consumer.join(ready.endpoint, "feed")
    tail = spawn("tail", "feed", "--raw", "--output", str(out), "--endpoint", ready.endpoint)
    sender: subprocess.Popen[bytes] | None = None
    try:
        # tail has joined once the consumer sees a view of two members
        await consumer.wait_for(lambda c: len(c.views[-1].members) == 2, "tail's JOIN")
        sender = spawn("send", "feed", "--follow", str(log), "--endpoint", ready.endpoint)
        # The sender opens the file at its end some time after it starts: probe lines written
        # before that are (rightly) not sent. The first one that arrives proves it follows.
        probe = 0
        while not consumer.payloads:
            assert sender.poll() is None, sender.communicate()
            assert probe < 300, "the sender never followed the file"
            _append(log, [f"probe {probe}"])
            probe += 1
            with contextlib.suppress(TimeoutError):  # a pace for the probes, not a verdict
                await consumer.wait_for(lambda c: bool(c.payloads), "probe", timeout=0.2)
        first = int(consumer.payloads[0].split()[1])
        want = [f"probe {i}" for i in range(first, probe)]

        batch = [f"line {i}" for i in range(100)]
        _append(log, batch[:50])
        _append(log, batch[50:], end="")  # the last line in two writes
        _append(log, [" ...finished"])
        want += [*batch[:99], "line 99 ...finished"]
        await consumer.wait_payload(b"line 99 ...finished")

        # Rotation: the writer adds to the renamed file, then a new file appears.
        with log.open("a") as writer:
            os.rename(log, tmp_path / "app.log.1")
            writer.write("late 1\nlate 2\n")
        _append(log, [f"new {i}" for i in range(40)])
        want += ["late 1", "late 2", *(f"new {i}" for i in range(40))]
        await consumer.wait_payload(b"new 39")

        # Truncation (copytruncate): shorter content, read from the start again.
        log.write_text("cut 1\ncut 2\n")
        want += ["cut 1", "cut 2"]
        await consumer.wait_payload(b"cut 2")

        # A burst far beyond one batch and one send window: batched and paced.
        burst = [f"burst {i:05d} " + "x" * 200 for i in range(20_000)]
        _append(log, burst)
        want += burst
        await consumer.wait_payload(burst[-1].encode())

        sender.send_signal(signal.SIGTERM)
        rc, err = await wait_exit(sender)
        assert (rc, err) == (0, "")
        assert [p.decode() for p in consumer.payloads] == want
        assert b"old 1" not in consumer.payloads

        # tail is a subscriber of its own and may still be writing: wait for the last line
        deadline = asyncio.get_running_loop().time() + T
        while not out.read_bytes().endswith(burst[-1].encode() + b"\n"):
            assert asyncio.get_running_loop().time() < deadline, "tail never wrote the burst"
            await asyncio.sleep(0.05)
        tail.send_signal(signal.SIGINT)
        await wait_exit(tail)
        assert out.read_text().splitlines() == want  # tail --raw wrote the same lines
    finally:
        for proc in (sender, tail):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        await consumer.close()


async def test_send_stdin_batches_until_end_of_input(ready: Daemon) -> None:
    consumer = await Consumer.join(ready.endpoint, "stdin-feed")
    try:
        lines = [f"stdin {i}" for i in range(5_000)] + ["", "unterminated"]
        sender = spawn("send", "stdin-feed", "--endpoint", ready.endpoint, stdin=subprocess.PIPE)
        _, err = await asyncio.wait_for(
            asyncio.to_thread(sender.communicate, "\n".join(lines).encode()), T
        )
        assert (sender.returncode, err) == (0, b"")
        await consumer.wait_payload(b"unterminated")
        assert [p.decode() for p in consumer.payloads] == lines
    finally:
        await consumer.close()


async def test_follow_from_start_and_long_lines(ready: Daemon, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("first\n" + "y" * 5000 + "\nlast\n")
    consumer = await Consumer.join(ready.endpoint, "from-start")
    sender = spawn(
        "send", "from-start", "--follow", str(log), "--from-start", "--max-line-bytes", "1000",
        "--endpoint", ready.endpoint,
    )  # fmt: skip
    try:
        await consumer.wait_payload(b"last")
        assert consumer.payloads == [b"first", b"y" * 1000, b"last"]
        sender.send_signal(signal.SIGINT)
        rc, err = await wait_exit(sender)
        assert rc == 0 and "1 line(s) longer than 1000 bytes were cut" in err
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        await consumer.close()


def test_follow_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The file is checked before any daemon is asked: no daemon needed.
    nobody = "ipc:///tmp/gc-nobody-here.sock"
    assert main(["send", "g", "--follow", str(tmp_path / "nope.log"), "--endpoint", nobody]) == 1
    assert "groupcomm send: cannot follow" in capsys.readouterr().err
    assert main(["send", "g", "--follow", str(tmp_path), "--endpoint", nobody]) == 1
    assert "it is a directory" in capsys.readouterr().err
    for argv in (["send", "g", "--from-start"], ["send", "g", "hi", "--follow", "f"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
