"""The start handshake between the orchestrator and its member processes.

A member prints ``ready`` on stdout once it can take part (connected; for a receiver, joined
and seeing the whole group), then blocks until the orchestrator writes the common start time
(CLOCK_MONOTONIC ns, one host clock for every process, also across network namespaces) to its
stdin. The orchestrator writes it only when *every* member is ready, so no message is sent
before all receivers are in the group, and every member starts at the same instant.
"""

from __future__ import annotations

import os
import select
import sys
import time

READY = "ready"


def announce_ready() -> None:
    sys.stdout.write(READY + "\n")
    sys.stdout.flush()


def read_start(timeout: float) -> int:
    """Block until a start time arrives on stdin; ``TimeoutError`` after ``timeout`` seconds,
    ``EOFError`` if the orchestrator went away."""
    fd = sys.stdin.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no start time from the orchestrator")
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 64)
            if not chunk:
                raise EOFError("stdin closed before the start time arrived")
            data += chunk
    return int(data.strip())


def sleep_until(t_ns: int) -> None:
    """Blocking sleep until the monotonic clock reaches ``t_ns``."""
    while (left := t_ns - time.monotonic_ns()) > 0:
        time.sleep(min(left / 1e9, 0.5))
