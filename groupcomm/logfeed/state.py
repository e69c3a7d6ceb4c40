"""Where a followed file's publisher stopped: ``Position``, the state file (``load_state``,
``save_state``) and ``Checkpoints``, which tells which position the daemon has acknowledged.

A ``Position`` names a file by identity (device and inode, so a rotated file is still found
under its new name) and the byte offset of the first line not yet acknowledged (just after
the newline of the last acknowledged one). The state file adds the followed path, to refuse a
state kept for another file, and a fingerprint of the bytes before the offset, to notice a
file that changed under the same identity while nobody watched (truncated then written past
the offset again, or a new file given a freed inode number).

``save_state`` replaces the file atomically: it writes ``STATE.tmp``, fsyncs it and renames it
over ``STATE``, so after a crash (of the process or of the machine) the state file is the old
or the new one, whole. The directory is not fsynced: after a power loss the previous state may
come back, which resends lines (never skips any).

A line counts as acknowledged once the daemon credited it (``Connection.in_flight``): its core
stamped it into the group's total order (or refused it). Credit is counted in payload bytes and
a connection's messages are stamped in the order sent, so ``Checkpoints`` compares the bytes
sent with the bytes credited. An empty line has no bytes to credit: it is acknowledged once a
later non-empty line is.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import deque
from dataclasses import dataclass

STATE_VERSION = 1
FINGERPRINT_BYTES = 256  # the bytes before the offset that the fingerprint covers


class StateError(Exception):
    """The state file cannot be used (unreadable, malformed, kept for another file)."""


@dataclass(frozen=True, slots=True)
class Position:
    dev: int
    ino: int
    offset: int  # where the first line not yet acknowledged starts

    @property
    def identity(self) -> tuple[int, int]:
        return (self.dev, self.ino)


@dataclass(frozen=True, slots=True)
class FeedState:
    """What a state file holds: the followed file's absolute path, the position and the
    fingerprint (``""``: unknown) of the ``FINGERPRINT_BYTES`` before the offset."""

    path: str
    position: Position
    fingerprint: str = ""


def load_state(state_path: str, follow_path: str) -> FeedState | None:
    """The state in ``state_path``, or ``None`` when there is no such file (a first run).
    ``StateError`` if it cannot be read or was kept for another file than ``follow_path``."""
    try:
        with open(state_path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read state file {state_path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
        if data["version"] != STATE_VERSION:
            raise ValueError(f"version {data['version']!r}, not {STATE_VERSION}")
        state = FeedState(
            path=_str(data["file"]),
            position=Position(_int(data["dev"]), _int(data["ino"]), _int(data["offset"])),
            fingerprint=_str(data["fingerprint"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(
            f"state file {state_path} is not a publisher's state ({exc}); "
            "remove it to start again (the lines published meanwhile may be missed or resent)"
        ) from None
    wanted = os.path.abspath(follow_path)
    if state.path != wanted:
        raise StateError(
            f"state file {state_path} is kept for {state.path}, not {wanted}: "
            "give each followed file its own state file"
        )
    return state


def _int(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a string: {value!r}")
    return value


def save_state(state_path: str, state: FeedState) -> None:
    """Replace ``state_path`` with ``state``, atomically (module docstring). ``OSError`` if
    it cannot be written."""
    data = {
        "version": STATE_VERSION,
        "file": state.path,
        "dev": state.position.dev,
        "ino": state.position.ino,
        "offset": state.position.offset,
        "fingerprint": state.fingerprint,
    }
    tmp = state_path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(data).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, state_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Checkpoints:
    """The positions after the batches handed to the daemon, in order, and which of them the
    daemon has acknowledged. ``add`` each batch once ``multicast_many`` returned (its bytes
    then count in ``Connection.in_flight`` until credited; added earlier, bytes not yet handed
    over would look credited); ``acknowledged`` with the connection's ``in_flight``.

    Only the one sender may use the connection: credited bytes are the bytes added minus
    ``in_flight``."""

    def __init__(self) -> None:
        self._sent = 0  # payload bytes of the batches added
        # (bytes sent up to the batch's end, the batch ends with an empty line, position after)
        self._pending: deque[tuple[int, bool, Position]] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, lines: list[bytes], position: Position) -> None:
        """A batch handed over (``lines`` may be empty: the position moved without a line,
        by a truncation or a rotation)."""
        self._sent += sum(map(len, lines))
        self._pending.append((self._sent, bool(lines) and not lines[-1], position))

    def acknowledged(self, in_flight: int) -> Position | None:
        """The position after the last batch the daemon acknowledged since the last call
        (``None``: none). A batch is acknowledged when the bytes credited reach its end; one
        ending with empty lines when they pass its end (a later line was stamped)."""
        credited = self._sent - in_flight
        last: Position | None = None
        pending = self._pending
        while pending:
            end, empty_tail, position = pending[0]
            if credited < end or (credited == end and empty_tail):
                break
            pending.popleft()
            last = position
        return last
