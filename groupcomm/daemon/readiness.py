"""What a daemon sleeps on: one ``epoll`` set for every socket of the process.

The peer links and the client links are plain sockets (``docs/performance.md`` "Transports":
a hop through ZeroMQ wakes two extra threads); their owners ``watch`` and ``unwatch`` file
descriptors as connections come and go, and read ``ready`` after each ``wait``. ZeroMQ sockets
(the epgm data plane and the ZeroMQ mesh kept beside it) are watched through ``zmq.FD``, which
only signals that the socket's state may have changed: ``wait`` does not sleep while one of them
has a message queued (``zmq.EVENTS``), and ``zmq_ready`` reports them.

Because the set is one ``epoll`` descriptor, an asyncio loop can sleep on it too
(``loop.add_reader(readiness.fileno(), ...)``): that is how several drivers share one test
process.
"""

from __future__ import annotations

import contextlib
import select
import time
from typing import Any

import zmq

READ = select.EPOLLIN
WRITE = select.EPOLLOUT
_ERR = select.EPOLLERR | select.EPOLLHUP
_MAX_EVENTS = 1024


class Readiness:
    """An epoll set with the last wait's result (``ready``: fd -> event mask)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._masks: dict[int, int] = {}
        self._zmq: list[zmq.Socket[Any]] = []
        self._resting: list[tuple[float, int, int]] = []  # (watched again at, fd, mask)
        self.ready: dict[int, int] = {}

    def fileno(self) -> int:
        return self._epoll.fileno()

    def watch(self, fd: int, mask: int = READ) -> None:
        """Watch ``fd`` for ``mask`` (``READ``, ``WRITE`` or both); re-watching changes the
        mask."""
        old = self._masks.get(fd)
        if old == mask:
            return
        if old is None:
            self._epoll.register(fd, mask)
        else:
            self._epoll.modify(fd, mask)
        self._masks[fd] = mask

    def unwatch(self, fd: int) -> None:
        if self._masks.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):  # closed already: the kernel dropped it
                self._epoll.unregister(fd)
        self.ready.pop(fd, None)

    def rest(self, fd: int, seconds: float) -> None:
        """Stop watching ``fd`` for ``seconds``, then watch it again as before. For a listener
        whose ``accept`` fails for lack of descriptors: it stays readable, and watched on it
        would spin the loop until a descriptor frees up."""
        mask = self._masks.get(fd)
        if mask is None:
            return
        self.unwatch(fd)
        self._resting.append((time.monotonic() + seconds, fd, mask))

    def _wake_rested(self, timeout_ms: int) -> int:
        """Watch again what rested long enough; the wait's timeout, cut to the next one due."""
        now = time.monotonic()
        due = [(fd, mask) for at, fd, mask in self._resting if at <= now]
        if due:
            self._resting = [r for r in self._resting if r[0] > now]
            for fd, mask in due:
                self.watch(fd, mask)
        if self._resting:
            next_ms = max(0, int((min(at for at, _, _ in self._resting) - now) * 1000) + 1)
            timeout_ms = next_ms if timeout_ms < 0 else min(timeout_ms, next_ms)
        return timeout_ms

    def watch_zmq(self, sock: zmq.Socket[Any]) -> None:
        fd = sock.getsockopt(zmq.FD)
        assert isinstance(fd, int)
        self._epoll.register(fd, READ)
        self._masks[fd] = READ
        self._zmq.append(sock)

    def zmq_ready(self) -> list[zmq.Socket[Any]]:
        """ZeroMQ sockets with a message queued (asked now, not at the last wait)."""
        return [s for s in self._zmq if int(s.get(zmq.EVENTS)) & zmq.POLLIN]

    def wait(self, timeout_ms: int) -> dict[int, int]:
        """Sleep until a watched descriptor is ready or ``timeout_ms`` passed (0: just look);
        returns and keeps ``ready``."""
        if self._resting:
            timeout_ms = self._wake_rested(timeout_ms)
        if timeout_ms > 0 and self._zmq and self.zmq_ready():
            timeout_ms = 0
        try:
            events = self._epoll.poll(timeout_ms / 1000 if timeout_ms > 0 else 0, _MAX_EVENTS)
        except InterruptedError:  # a signal: the caller looks at its stop flag and comes back
            events = []
        ready = dict(events)
        for fd, mask in ready.items():
            if mask & _ERR:  # an error or hang-up reads as readable: the owner sees it in recv
                ready[fd] = mask | READ
        self.ready = ready
        return ready

    def close(self) -> None:
        self._epoll.close()
        self._masks.clear()
        self._zmq.clear()
        self._resting.clear()
        self.ready = {}
