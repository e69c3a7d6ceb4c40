"""The line feed of ``groupcomm publish`` (and of ``send`` without TEXT): lines from a
followed file or from stdin, multicast in batches, with the group's back-pressure reaching the
reader.

It owns the reading side (``FollowSource``, ``StdinSource``), the send loop (``publish``), the
state file's upkeep (``StateKeeper``) and the watch on the session (``watching_session``:
refused lines, the session's end); ``FileFollower`` owns the file, ``state`` the state file's
format and the acknowledgement rule, the client library the session. One batch at a time: the
loop reads up to ``batch_bytes`` of lines, hands them to ``multicast_many`` (one ``mcastb`` per
send window) and reads again only once they went out, so when the group is slower than the
writer the lines wait in the file (or in the pipe, whose writer then blocks), never in this
process: memory stays within about ``batch_bytes`` plus one line.

``stop`` (set on SIGINT/SIGTERM by the command) ends the reading; what was read is still sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from groupcomm.client.connection import Connection, GroupcommError
from groupcomm.client.events import Rejected
from groupcomm.core.service import Service
from groupcomm.logfeed.follow import FileFollower
from groupcomm.logfeed.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter
from groupcomm.logfeed.state import Checkpoints, FeedState, Position, save_state

DEFAULT_BATCH_BYTES = 256 * 1024
DEFAULT_POLL_S = 0.2  # how often an idle followed file is looked at (tail -F: 1 s)
DEFAULT_STATE_INTERVAL_S = 1.0  # how often the state file is written while the position moves
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
        self._handed: Position | None = None  # the follower's position after the last batch

    @property
    def position(self) -> Position:
        """Where the line after the last batch returned starts."""
        return self.follower.position

    async def next_lines(self, stop: asyncio.Event, batch_bytes: int) -> list[bytes] | None:
        """At least one line (waiting for it), at most about ``batch_bytes`` of them; ``None``
        once ``stop`` is set. Or an empty batch, when the file has nothing new but the
        position moved without a line (a truncation, a rotation, the first look): the state
        file should know. Reading
        a regular file does not block the loop for long: at most ``read_bytes`` from the page
        cache or the disk per call."""
        out: list[bytes] = []
        size = 0
        while not stop.is_set():
            lines = self.follower.read()
            if lines is None:
                if out or self.position != self._handed:
                    break
                await _sleep_unless(stop, self.poll_s)
                continue
            out += lines
            size += sum(map(len, lines))
            if size >= batch_bytes:
                break
        if not out and self.position == self._handed:
            return None  # stopped
        self._handed = self.position
        return out


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
    checkpoints: Checkpoints | None = None,
) -> PublishStats:
    """Send every line ``source`` yields to ``group``, one message per line, in order, until
    the source ends or ``stop`` is set. Returns when the last batch was handed to the daemon
    (``conn.drain`` waits for the daemon to accept it). With ``checkpoints`` (a followed
    file), the position after each batch is added once the batch was handed over."""
    stats = PublishStats()
    while (lines := await source.next_lines(stop, batch_bytes)) is not None:
        if lines:
            await conn.multicast_many(group, lines, service)  # waits for send window
            stats.lines += len(lines)
            stats.batches += 1
        if checkpoints is not None and isinstance(source, FollowSource):
            checkpoints.add(lines, source.position)
    return stats


class StateKeeper:
    """Keeps ``state_path`` at the position the daemon acknowledged (``groupcomm publish
    --state``): written once at the start (``start``), then every ``interval`` seconds while
    the acknowledged position moves (``running``), and when ``running`` ends. A write that
    fails is reported through ``warn`` (once until one succeeds again) and tried again later:
    the state file then lags, which resends lines after a restart, never skips any."""

    def __init__(
        self,
        state_path: str,
        follower: FileFollower,
        interval: float = DEFAULT_STATE_INTERVAL_S,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.state_path = state_path
        self.follower = follower
        self.interval = interval
        self.warn: Callable[[str], None] = warn or (lambda message: None)
        self.checkpoints = Checkpoints()
        self._path = os.path.abspath(follower.path)
        self._acknowledged: Position | None = None
        self._written: Position | None = None
        self._failing = False

    def start(self) -> None:
        """Write the position the follower opened at: nothing before it is to be sent.
        ``OSError`` if the state file cannot be written."""
        self._acknowledged = self.follower.position
        self._write(self._acknowledged)

    def record(self, conn: Connection) -> None:
        """Write the position the daemon acknowledged, if it moved since the last write."""
        position = self.checkpoints.acknowledged(conn.in_flight)
        if position is not None:
            self._acknowledged = position
        if self._acknowledged is None or self._acknowledged == self._written:
            return
        try:
            self._write(self._acknowledged)
        except OSError as exc:
            if not self._failing:
                self.warn(f"cannot write state file {self.state_path}: {exc.strerror or exc}")
            self._failing = True
        else:
            self._failing = False

    @contextlib.asynccontextmanager
    async def running(self, conn: Connection) -> AsyncIterator[None]:
        """``record`` every ``interval`` seconds while in the block, and once at its end
        (after the command's final ``drain``, or when the session failed)."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval)
                self.record(conn)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.record(conn)

    def _write(self, position: Position) -> None:
        state = FeedState(self._path, position, self.follower.fingerprint(position))
        save_state(self.state_path, state)
        self._written = position


class SessionWatch:
    """What ``watching_session`` saw: ``ended``, why the session ended (``None`` while it
    lasts)."""

    ended: GroupcommError | None = None


@contextlib.asynccontextmanager
async def watching_session(
    conn: Connection, report: Callable[[Rejected], None], stop: asyncio.Event
) -> AsyncIterator[SessionWatch]:
    """While in the block, hand each ``Rejected`` the daemon sends (a line it refused) to
    ``report``, and set ``stop`` when the session ends (the daemon went away or closed it),
    so that a publisher waiting for lines notices at once instead of at its next send. A
    publisher joins no group: rejections are the only events it gets, and without a reader
    they would pile up unseen."""
    watch = SessionWatch()

    async def take(timeout: float | None) -> bool:
        """Report the events there are (waiting up to ``timeout`` for one); ``False`` once
        there are none left."""
        try:
            events = await conn.receive_many(timeout=timeout)
        except TimeoutError:
            return False
        except GroupcommError as exc:  # the session ended and every event was taken
            watch.ended = watch.ended or exc
            stop.set()
            return False
        for event in events:
            if isinstance(event, Rejected):
                report(event)
        return True

    async def run() -> None:
        while await take(None):
            pass

    task = asyncio.create_task(run())
    try:
        yield watch
    finally:
        task.cancel()  # a receive_many cancelled while waiting takes nothing
        await asyncio.gather(task, return_exceptions=True)
        while await take(0):  # what arrived since the watcher last ran
            pass


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
