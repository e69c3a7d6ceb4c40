"""Log feeds over groups: the tools that put log lines into a group (``docs/logfeeds.md``).

- ``GroupcommHandler``: a ``logging.Handler`` multicasting records from any thread without
  blocking it (bounded buffer; when full, records are dropped, counted and reported to the
  group and on stderr); ``JsonLinesFormatter`` for records as JSON lines;
- ``StructlogFeed``: the same for structlog, as a processor;
- ``FileFollower``, ``publish`` and ``state``: ``groupcomm publish GROUP --follow FILE
  [--state STATE]`` (``tail -F``; with a state file, resumed after a restart from the first
  line the daemon had not acknowledged).

Retention, replay and consumers' positions (issue 14) are not here yet: a consumer gets what
is sent while it is a member.
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
