"""How a log record becomes a JSON line: ``JsonLinesFormatter`` (``logging``) and
``json_line`` (any mapping, e.g. a structlog event dict).

Owns the field names; does not queue or send. Values JSON does not know are written as
``str(value)``, so formatting a record never fails on what an application put into it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is sent.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def json_line(fields: Mapping[Any, object]) -> str:
    """``fields`` as one line of JSON; keys JSON cannot take are written as strings."""
    try:
        return json.dumps(fields, default=str, ensure_ascii=False)
    except TypeError:  # a key that is not str/int/float/bool/None
        return json.dumps({str(k): v for k, v in fields.items()}, default=str, ensure_ascii=False)


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, ``thread``, ``exc_info`` / ``stack_info`` (formatted) when present, and every
    ``extra=`` field (which cannot override those)."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        }
        fields.update(
            time=datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            level=record.levelname.lower(),
            logger=record.name,
            message=record.getMessage(),
            thread=record.threadName,
        )
        if record.exc_info:
            fields["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack_info"] = self.formatStack(record.stack_info)
        return json_line(fields)
