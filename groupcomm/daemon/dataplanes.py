"""Choosing the peer transport from ``[daemon] transport`` (``docs/operations.md``).

- ``"tcp"`` (default): plain TCP links in the daemon's epoll loop (``tcplinks.TcpTransport``),
  the fastest on every measurement here (``docs/performance.md`` "Transports");
- ``"zmq"``: the ZeroMQ PUB/SUB mesh with a ROUTER/DEALER control mesh
  (``transport.ZmqTransport``), kept to compare against and for sites that relied on it;
- ``"epgm"``: PGM multicast through ZeroMQ for data and ordering, the ZeroMQ control mesh for
  the rest: one copy of each frame on a real LAN whatever the cluster size.
"""

from __future__ import annotations

from typing import Any

import zmq

from groupcomm.config import DaemonConfig
from groupcomm.daemon.tcplinks import TcpTransport
from groupcomm.daemon.transport import DataPlane, ZmqTransport


def make_transport(config: DaemonConfig, context: zmq.Context[Any] | None = None) -> DataPlane:
    """The configured data plane, bound and connecting. Raises ``OSError`` (tcp),
    ``zmq.ZMQError`` or ``fanout.TransportUnavailable`` (zmq, epgm)."""
    if config.transport == "tcp":
        return TcpTransport(config)
    return ZmqTransport(config, context=context)
