"""File descriptors: the daemon's limit, raised at start-up, and the reserve the client
listeners keep for everything else.

Every client connection is a descriptor. Without a bound, about 1,100 connections made the
daemon run out (issue 13: libzmq aborted on "Too many open files"); after that even a peer
link or the trace file cannot be opened. So ``raise_limit`` lifts the soft ``RLIMIT_NOFILE`` to
the hard limit once at start-up, and ``ClientLinks`` refuses a client connection whose
descriptor falls within ``reserve`` of the soft limit (``near_limit``): descriptors are
allocated lowest first (POSIX), so a new descriptor numbered ``n`` means ``0..n-1`` are all in
use, and no count of open descriptors is needed.
"""

from __future__ import annotations

import resource

RESERVE_BASE = 32  # stdio, epoll, listeners, trace and log files, a margin
RESERVE_PER_PEER = 8  # a TCP link out, up to 4 in (tcplinks), a margin
UNLIMITED_CAP = 1 << 20  # a soft limit is never raised to "infinity"


def reserve_for(peers: int) -> int:
    """Descriptors kept free of client connections for a cluster of ``peers`` daemons."""
    return RESERVE_BASE + RESERVE_PER_PEER * peers


def raise_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; returns ``(before, after)``. A
    failure leaves the limit as it was (``after == before``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def near_limit(fd: int, reserve: int) -> bool:
    """A freshly allocated descriptor ``fd`` leaves fewer than ``reserve`` free."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft != resource.RLIM_INFINITY and fd >= soft - reserve
