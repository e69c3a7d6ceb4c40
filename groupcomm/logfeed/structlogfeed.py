"""``StructlogFeed``: a structlog processor that multicasts each event dict as a JSON line
through a ``GroupcommHandler`` and passes it on unchanged.

It owns only the conversion (``records.json_line``); queueing, dropping and sending are the
handler's, so it never blocks the logging call either. Put it after the processors that add
what the feed should carry (level, timestamp, ``format_exc_info``) and before the renderer::

    feed = GroupcommHandler("logs.app")
    structlog.configure(processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        StructlogFeed(feed),
        structlog.dev.ConsoleRenderer(),
    ])
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from groupcomm.logfeed.handler import GroupcommHandler
from groupcomm.logfeed.records import json_line


class StructlogFeed:
    """The processor; ``handler.stats()`` counts what it sent and dropped."""

    def __init__(self, handler: GroupcommHandler) -> None:
        self.handler = handler

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        self.handler.submit(json_line(event_dict).encode("utf-8", "backslashreplace"))
        return event_dict
