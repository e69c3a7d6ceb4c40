"""Log feeds over groups: the tools that put log lines into a group (``docs/logfeeds.md``).

- ``GroupcommHandler``: a ``logging.Handler`` multicasting records from any thread without
  blocking it (bounded buffer; when full, records are dropped and counted);
  ``JsonLinesFormatter`` for records as JSON lines;
- ``StructlogFeed``: the same for structlog, as a processor;
- ``FileFollower`` and ``publish``: ``groupcomm send GROUP --follow FILE`` (``tail -F``).

Retention, replay and positions (issue 14) are not here yet: a consumer gets what is sent
while it is a member.
"""

from groupcomm.logfeed.buffer import RecordBuffer
from groupcomm.logfeed.follow import FileFollower, FollowError
from groupcomm.logfeed.handler import GroupcommHandler, HandlerStats
from groupcomm.logfeed.records import JsonLinesFormatter, json_line
from groupcomm.logfeed.structlogfeed import StructlogFeed

__all__ = [
    "FileFollower",
    "FollowError",
    "GroupcommHandler",
    "HandlerStats",
    "JsonLinesFormatter",
    "RecordBuffer",
    "StructlogFeed",
    "json_line",
]
