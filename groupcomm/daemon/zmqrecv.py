"""Receiving a multipart ZeroMQ message without blocking, for the daemon's hot paths.

``Socket.recv_multipart`` asks ``getsockopt(RCVMORE)`` after every part, and pyzmq's
``getsockopt`` first converts the option number into its ``SocketOption`` enum member: at low
rates, where every peer frame (four parts) is a wake-up of its own, those conversions showed up
in the daemon's profile (docs/performance.md "Profiles"). ``Socket.get`` is the same query
without the conversion.
"""

from __future__ import annotations

from typing import Any

import zmq

_NOBLOCK = zmq.NOBLOCK
_RCVMORE = zmq.RCVMORE


def recv_parts(sock: zmq.Socket[Any]) -> list[bytes]:
    """Every part of the next message; ``zmq.Again`` if none is queued."""
    recv = sock.recv
    more = sock.get
    parts: list[bytes] = [recv(_NOBLOCK)]
    while more(_RCVMORE):
        parts.append(recv(_NOBLOCK))
    return parts
