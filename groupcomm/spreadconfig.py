"""The ``[spread]`` table of the daemon configuration: the Spread client protocol front-end.

Off by default. When enabled the daemon listens where Spread applications look for their daemon:
TCP ``port`` (4803, Spread's default) on ``host``, and the Unix socket ``/tmp/<port>`` (what
libspread opens for ``"4803"`` or ``"4803@localhost"``); ``unix_socket = ""`` turns the socket
off. ``max_message_bytes`` is the largest message a Spread client may send (Spread's header,
groups and body: 144,000 bytes as in Spread, more when its clients are built for it). It does
not validate anything else of the file (``groupcomm.config`` does, and prefixes the file).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SPREAD_KEYS = ("enabled", "host", "port", "unix_socket", "max_message_bytes")
DEFAULT_SPREAD_PORT = 4803
DEFAULT_SPREAD_HOST = "127.0.0.1"
SPREAD_MESSAGE_BYTES = 144_000  # MAX_MESSAGE_BODY_LEN of Spread 5.0.1
MIN_MESSAGE_BYTES = 48 + 32  # a header and one group


class SpreadConfigError(ValueError):
    """An invalid ``[spread]`` table; the message names the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpreadConfig:
    enabled: bool = False
    host: str = DEFAULT_SPREAD_HOST
    port: int = DEFAULT_SPREAD_PORT
    unix_socket: str | None = None  # None: /tmp/<port>; "": none
    max_message_bytes: int = SPREAD_MESSAGE_BYTES

    @property
    def endpoints(self) -> tuple[str, ...]:
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = f"/tmp/{self.port}" if self.unix_socket is None else self.unix_socket
        unix = (f"ipc://{path}",) if path else ()
        return (*unix, f"tcp://{host}:{self.port}")


def parse_spread(raw: Mapping[str, Any]) -> SpreadConfig:
    table = raw.get("spread", {})
    if not isinstance(table, Mapping):
        raise SpreadConfigError("[spread] must be a table")
    unknown = sorted(set(table) - set(SPREAD_KEYS))
    if unknown:
        raise SpreadConfigError(f"[spread] unknown key {unknown[0]!r}")
    enabled = table.get("enabled", False)
    if not isinstance(enabled, bool):
        raise SpreadConfigError(f"[spread] enabled must be true or false, got {enabled!r}")
    host = table.get("host", DEFAULT_SPREAD_HOST)
    if not isinstance(host, str) or not host:
        raise SpreadConfigError(f"[spread] host must be a non-empty string, got {host!r}")
    port = table.get("port", DEFAULT_SPREAD_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise SpreadConfigError(f"[spread] port must be 1..65535, got {port!r}")
    unix = table.get("unix_socket")
    if unix is not None and not isinstance(unix, str):
        raise SpreadConfigError(f'[spread] unix_socket must be a path or "", got {unix!r}')
    size = table.get("max_message_bytes", SPREAD_MESSAGE_BYTES)
    if isinstance(size, bool) or not isinstance(size, int) or size < SPREAD_MESSAGE_BYTES:
        raise SpreadConfigError(
            f"[spread] max_message_bytes must be an integer >= {SPREAD_MESSAGE_BYTES} "
            f"(Spread's own limit), got {size!r}"
        )
    return SpreadConfig(
        enabled=enabled, host=host, port=port, unix_socket=unix, max_message_bytes=size
    )
