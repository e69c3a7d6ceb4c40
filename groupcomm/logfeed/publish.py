"""``groupcomm send``'s line feed: lines from a followed file or from stdin, multicast in
batches, with the group's back-pressure reaching the reader.

It owns the reading side (``FollowSource``, ``StdinSource``) and the send loop (``publish``);
``FileFollower`` owns the file, the client library the session. One batch at a time: the loop
reads up to ``batch_bytes`` of lines, hands them to ``multicast_many`` (one ``mcastb`` per send
window) and reads again only once they went out, so when the group is slower than the writer
the lines wait in the file (or in the pipe, whose writer then blocks), never in this process:
memory stays within about ``batch_bytes`` plus one line.

``stop`` (set on SIGINT/SIGTERM by the command) ends the reading; what was read is still sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from groupcomm.client.connection import Connection
from groupcomm.core.service import Service
from groupcomm.logfeed.follow import FileFollower
from groupcomm.logfeed.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter

DEFAULT_BATCH_BYTES = 256 * 1024
DEFAULT_POLL_S = 0.2  # how often an idle followed file is looked at (tail -F: 1 s)
STDIN_CHUNK = 64 * 1024
STDIN_QUEUE = 4  # chunks read ahead of the sender: bounds what a fast pipe leaves in memory


@dataclass(slots=True)
class PublishStats:
    lines: int = 0
    batches: int = 0


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class FollowSource:
    """Batches of lines from a ``FileFollower``, polled every ``poll_s`` while idle."""

    def __init__(self, follower: FileFollower, poll_s: float = DEFAULT_POLL_S) -> None:
        self.follower = follower
        self.poll_s = poll_s

    async def next_lines(self, stop: asyncio.Event, batch_bytes: int) -> list[bytes] | None:
        """At least one line (waiting for it), at most about ``batch_bytes`` of them; ``None``
        once ``stop`` is set. Reading a regular file does not block the loop for long: at
        most ``read_bytes`` from the page cache or the disk per call."""
        out: list[bytes] = []
        size = 0
        while not stop.is_set():
            lines = self.follower.read()
            if lines is None:
                if out:
                    return out
                await _sleep_unless(stop, self.poll_s)
                continue
            out += lines
            size += sum(map(len, lines))
            if size >= batch_bytes:
                return out
        return out or None


class StdinSource:
    """Batches of lines from a file descriptor (stdin), read by a thread of its own: a pipe,
    a terminal and a redirected file alike (asyncio's pipe readers refuse regular files). The
    thread blocks when ``STDIN_QUEUE`` chunks wait, so a fast writer is paced by the group.
    At end of input an unterminated last line is sent too."""

    def __init__(self, fd: int, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.splitter = LineSplitter(max_line_bytes)
        self._fd = fd
        self._queue: asyncio.Queue[list[bytes] | None] = asyncio.Queue(STDIN_QUEUE)
        self._loop = asyncio.get_running_loop()
        self._ended = False
        # A daemon thread: a read blocked on a terminal must not keep the process alive
        # after a signal ended the command.
        threading.Thread(target=self._read, name="groupcomm-stdin", daemon=True).start()

    def _read(self) -> None:
        try:
            while data := os.read(self._fd, STDIN_CHUNK):
                if lines := self.splitter.feed(data):
                    self._put(lines)
            last = self.splitter.flush()
            if last is not None:
                self._put([last])
        except OSError:
            pass  # a read error ends the input like EOF (the command reports what it sent)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                self._put(None)

    def _put(self, item: list[bytes] | None) -> None:
        asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop).result()

    async def next_lines(self, stop: asyncio.Event, batch_bytes: int) -> list[bytes] | None:
        """The next chunks' lines (waiting for the first), up to about ``batch_bytes``;
        ``None`` at end of input or once ``stop`` is set."""
        if self._ended or stop.is_set():
            return None
        get = asyncio.ensure_future(self._queue.get())
        halt = asyncio.ensure_future(stop.wait())
        await asyncio.wait((get, halt), return_when=asyncio.FIRST_COMPLETED)
        halt.cancel()
        if not get.done():
            get.cancel()  # Queue.get gives nothing up when cancelled: no line is lost
            return None
        out: list[bytes] = []
        item = get.result()
        while item is not None:
            out += item
            if sum(map(len, out)) >= batch_bytes or self._queue.empty():
                return out
            item = self._queue.get_nowait()
        self._ended = True
        return out or None


async def publish(
    conn: Connection,
    group: str,
    source: FollowSource | StdinSource,
    stop: asyncio.Event,
    service: Service = Service.AGREED,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> PublishStats:
    """Send every line ``source`` yields to ``group``, one message per line, in order, until
    the source ends or ``stop`` is set. Returns when the last batch was handed to the daemon
    (``conn.drain`` waits for the daemon to accept it)."""
    stats = PublishStats()
    while (lines := await source.next_lines(stop, batch_bytes)) is not None:
        if lines:
            await conn.multicast_many(group, lines, service)  # waits for send window
            stats.lines += len(lines)
            stats.batches += 1
    return stats


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (the command then sends what it read and exits); a
    second one acts as if this were not there (Ctrl-C twice interrupts at once). Outside the
    main thread (tests calling ``main``) signals cannot be caught and this does nothing."""
    loop = asyncio.get_running_loop()
    caught: list[signal.Signals] = []

    def on_signal() -> None:
        stop.set()
        for sig in caught:
            loop.remove_signal_handler(sig)
        caught.clear()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
        except (ValueError, RuntimeError, NotImplementedError):
            continue
        caught.append(sig)
    try:
        yield
    finally:
        for sig in caught:
            loop.remove_signal_handler(sig)
