"""groupcomm: Spread-style group communication with Extended Virtual Synchrony."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``groupcomm.connect`` is the client's; imported lazily so that importing the core (or the
    # simulator) never loads the client, zmq or asyncio.
    if name == "connect":
        from groupcomm.client.connection import connect

        return connect
    raise AttributeError(f"module 'groupcomm' has no attribute {name!r}")
