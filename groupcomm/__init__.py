"""groupcomm: Spread-style group communication with Extended Virtual Synchrony."""

from __future__ import annotations

from typing import Any

from groupcomm import compiled as _compiled

__version__ = "0.1.0"

# Before any other module of the package is imported: the daemon's hot path from its mypyc build
# when there is a fresh one (groupcomm/compiled.py; GROUPCOMM_COMPILED=0 turns it off).
_compiled.activate()


def __getattr__(name: str) -> Any:
    # ``groupcomm.connect`` is the client's; imported lazily so that importing the core (or the
    # simulator) never loads the client, zmq or asyncio.
    if name == "connect":
        from groupcomm.client.connection import connect

        return connect
    raise AttributeError(f"module 'groupcomm' has no attribute {name!r}")
