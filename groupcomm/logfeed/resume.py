"""A consumer that resumes where it stopped (``groupcomm tail --since/--state/--failover``,
protocol/retention.md section 3).

The state file holds the position of the last message written and, with ``--output``, the
output file's size right after it. Both are saved (write to a temporary file, then rename) after
each batch is written and flushed; at start an output longer than the saved size is cut back to
it, because whatever follows was written after the last saved position and comes again with the
replay. So with ``--output`` every message is in the file exactly once across a ``kill -9`` of
the consumer or of its daemon (what the page cache holds: a crash of the machine may lose the
last batches of both, and they come again). To standard output the consumer is at-least-once:
what it printed after the last save is printed again.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

EARLIEST = "earliest"
_RELATIVE = re.compile(r"-(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ResumeError(ValueError):
    """A ``--since`` value or a state file that cannot be used; the text says why."""


@dataclass(frozen=True, slots=True)
class TailState:
    position: str  # of the last message written ("" before the first)
    output_bytes: int = -1  # the output file's size right after it; -1: no output file


def parse_since(text: str, now: float | None = None) -> str | float:
    """``earliest``, a ``Message.position``, a time (ISO 8601 with a timezone, or seconds since
    1970) or a time relative to now (``-90s``, ``-5m``, ``-2h``, ``-1d``)."""
    text = text.strip()
    if text == EARLIEST:
        return EARLIEST
    if text.count("#") == 2:
        return text  # a position: the daemon checks it
    relative = _RELATIVE.fullmatch(text)
    if relative:
        now = time.time() if now is None else now
        return max(0.0, now - float(relative.group(1)) * _UNITS[relative.group(2)])
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ResumeError(
            f"--since {text!r}: expected 'earliest', a message position, seconds since 1970, "
            "an ISO 8601 time with a timezone or a relative time like -5m"
        ) from None
    if when.tzinfo is None:
        raise ResumeError(f"--since {text!r}: give the timezone (e.g. 2026-12-05T10:00:00Z)")
    return when.timestamp()


def load_state(path: str) -> TailState | None:
    """The saved state, or None when the file does not exist yet."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ResumeError(f"cannot read state file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
        position, size = data["position"], data.get("output_bytes", -1)
        if not isinstance(position, str) or not isinstance(size, int):
            raise TypeError("position must be a string, output_bytes an integer")
    except (ValueError, KeyError, TypeError) as exc:
        raise ResumeError(f"state file {path} is not a tail state: {exc}") from None
    return TailState(position, size)


def save_state(path: str, state: TailState) -> None:
    """Replace the state file in one rename, so a crash leaves the old or the new one."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"position": state.position, "output_bytes": state.output_bytes}, f)
    os.replace(tmp, path)


def rewind_output(out: BinaryIO, state: TailState | None) -> int:
    """Cut what was written to ``out`` after the saved state (it is replayed); returns the bytes
    cut. An output shorter than the state says was cut or rotated by someone else: left alone."""
    if state is None or state.output_bytes < 0:
        return 0
    size = out.seek(0, os.SEEK_END)
    if size <= state.output_bytes:
        return 0
    out.truncate(state.output_bytes)
    out.seek(0, os.SEEK_END)
    return size - state.output_bytes
