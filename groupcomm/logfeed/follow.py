"""``FileFollower``: the lines appended to a log file, across rotation and truncation, like
``tail -F``.

It owns the open file, the read position and the rotation checks; it does not wait, send or
decide how often to look (``groupcomm.logfeed.publish`` polls it). Each ``read()`` reads at
most ``read_bytes``, so the caller bounds memory by how much it reads before sending: a log
that grows faster than the group takes it waits on disk, not in this process.

At the end of the open file ``read()`` checks, in this order:

- **truncation** (``copytruncate``, ``> FILE``): the file is shorter than the position, so it
  is read again from its start;
- **rotation** (``mv FILE FILE.1`` then a new FILE, or delete and re-create): the path names
  another file (device and inode). The old file was read to its end first, so lines its
  writer added before the rotation are not lost; its unterminated last line ends there. The
  new file is read from its start. While the path does not exist (between the rename and the
  new file) the old file stays open and the path is looked at again on the next ``read()``.

Like ``tail -F``, a truncation followed by writes past the old position before the next look
is seen as appended data (the bytes up to the old position are skipped); and lines written to
the old file after it was read to its end and the new one opened are not read.

``position`` is where the first line not yet returned starts (after the last newline read);
``resume`` opens the file at a ``Position`` kept by an earlier run (``groupcomm publish
--state``), finding the file under another name when it was rotated meanwhile:

- the path still names that file: read on from the offset;
- another file in the path's directory is that file (``FILE.1`` after ``mv FILE FILE.1``):
  it is read from the offset to its end first, then the path is followed from the start of
  its file as after any rotation;
- neither: the path's file is read from its start, with a warning that lines may have been
  missed (the old file was deleted, compressed, moved elsewhere or rotated twice).

In the first two cases a file shorter than the offset (truncated meanwhile), or whose bytes
before the offset differ from the fingerprint kept with the position (truncated and written
past the offset again, or a new file given the freed inode number), is read from its start,
with a warning. Except after a ``copytruncate`` (the file copied, then truncated), in this
case and in the third: a file of the directory named like the path (``FILE.1``,
``FILE-20240101``) whose bytes before the offset match the fingerprint is the copy, and it is
read from the offset to its end first, then the path from its start, with a warning.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from io import FileIO

from groupcomm.logfeed.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter
from groupcomm.logfeed.state import FINGERPRINT_BYTES, FeedState, Position

DEFAULT_READ_BYTES = 256 * 1024


class FollowError(Exception):
    """The file cannot be followed (missing, unreadable, not a regular file); says which."""


class FileFollower:
    """Follow ``path``: ``open()``, then ``read()`` whenever new lines may be there."""

    def __init__(
        self,
        path: str,
        *,
        from_start: bool = False,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        read_bytes: int = DEFAULT_READ_BYTES,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.from_start = from_start
        self.read_bytes = read_bytes
        self.warn: Callable[[str], None] = warn or (lambda message: None)
        self.rotations = 0
        self.truncations = 0
        self._splitter = LineSplitter(max_line_bytes)
        self._file: FileIO | None = None
        self._identity = (0, 0)  # (st_dev, st_ino) of the open file
        self._pos = 0  # bytes of the open file read
        self._line_end = 0  # where the first line not yet returned starts

    @property
    def truncated_lines(self) -> int:
        """Lines longer than ``max_line_bytes``, cut to it."""
        return self._splitter.truncated

    @property
    def position(self) -> Position:
        """The open file and where its first line not yet returned starts."""
        return Position(*self._identity, self._line_end)

    def open(self) -> None:
        """Open the file, at its end (or its start with ``from_start``). ``FollowError`` if it
        cannot be read."""
        self._open(at_end=not self.from_start)

    def resume(self, state: FeedState) -> None:
        """Open the file at ``state``'s position (module docstring); warnings go to ``warn``.
        ``FollowError`` if neither the path nor a file holding the position can be read."""
        want = state.position.identity
        missing: FollowError | None = None
        try:
            self._open(at_end=False)
        except FollowError as exc:
            missing = exc  # maybe between a rotation's rename and the new file
        if self._file is not None and self._identity == want:
            problem = self._problem(state)
            if problem is None:
                self._seek(state.position.offset)
            elif not self._resume_in_copy(state, f"{self.path} {problem}"):
                self.warn(f"{self.path} {problem}: reading it from its start")
            return
        rotated = self._find(want)
        if rotated is not None:
            try:
                f, info = self._open_file(rotated)
            except FollowError:
                pass  # gone again since the directory was read: as if not found
            else:
                if (info.st_dev, info.st_ino) == want:
                    self.close()
                    self._use(f, info, at_end=False)
                    self._resume_rotated(state, rotated)
                    return
                f.close()
        why = f"{self.path} is another file than where the last run stopped"
        if self._resume_in_copy(state, why):
            return
        if missing is not None:
            raise missing
        self.warn(
            f"{why}, and that file was not found in "
            f"{os.path.dirname(os.path.abspath(self.path))}: reading {self.path} from its "
            "start; lines written to the old file after the last run stopped may have been "
            "missed"
        )

    def fingerprint(self, position: Position) -> str:
        """The fingerprint of the bytes before ``position`` (``state.FeedState``), read from
        the open file; ``""`` when ``position`` is in another file or cannot be read."""
        f = self._file
        if f is None or position.identity != self._identity:
            return ""
        return self._fingerprint_at(f, position.offset) or ""

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self) -> list[bytes] | None:
        """The lines completed since the last call (possibly none: a partial line), or
        ``None`` when nothing new was there (the caller waits before asking again)."""
        f = self._file
        assert f is not None, "open() first"
        data = f.read(self.read_bytes)
        if data:
            start = self._pos
            self._pos += len(data)
            newline = data.rfind(b"\n")
            if newline >= 0:
                self._line_end = start + newline + 1
            return self._splitter.feed(data)
        if os.fstat(f.fileno()).st_size < self._pos:
            f.seek(0)
            self._pos = self._line_end = 0
            self._splitter.reset()  # its line was cut by the truncation and never ends
            self.truncations += 1
            return []
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return None  # rotated away, the new file not there yet: keep the old one
        except OSError as exc:
            raise FollowError(f"cannot follow {self.path}: {exc.strerror or exc}") from None
        if (now.st_dev, now.st_ino) == self._identity:
            return None
        last = self._splitter.flush()  # the old file was read to its end just above
        self.close()
        self._open(at_end=False)
        self.rotations += 1
        return [] if last is None else [last]

    def _open(self, *, at_end: bool) -> None:
        f, info = self._open_file(self.path)
        self._use(f, info, at_end=at_end)

    def _use(self, f: FileIO, info: os.stat_result, *, at_end: bool) -> None:
        self._file = f
        self._identity = (info.st_dev, info.st_ino)
        self._pos = self._line_end = f.seek(0, os.SEEK_END) if at_end else 0

    @staticmethod
    def _open_file(path: str) -> tuple[FileIO, os.stat_result]:
        try:
            # O_NONBLOCK: opening a FIFO would otherwise wait for a writer (refused below;
            # reads of a regular file never wait for more data whatever the flag).
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise FollowError(f"cannot follow {path}: no such file") from None
        except PermissionError:
            raise FollowError(f"cannot follow {path}: permission denied") from None
        except OSError as exc:
            raise FollowError(f"cannot follow {path}: {exc.strerror or exc}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)  # a FIFO or device has no size to watch for truncation
            what = "it is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise FollowError(f"cannot follow {path}: {what}")
        return FileIO(fd, "rb"), info

    def _find(self, identity: tuple[int, int]) -> str | None:
        """Another name of the file ``identity`` in the path's directory, if any."""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    # inode() comes with the directory entry: no stat per file
                    if entry.inode() != identity[1] or not entry.is_file(follow_symlinks=False):
                        continue
                    if entry.stat(follow_symlinks=False).st_dev == identity[0]:
                        return entry.path
        except OSError:
            pass  # an unreadable directory: not found
        return None

    def _problem(self, state: FeedState) -> str | None:
        """Why the open file cannot be read on from ``state``'s offset (``None``: it can)."""
        f = self._file
        assert f is not None
        offset = state.position.offset
        size = os.fstat(f.fileno()).st_size
        if size < offset:
            return (
                f"is shorter ({size} bytes) than where the last run stopped ({offset}): it "
                "was truncated"
            )
        if state.fingerprint and self._fingerprint_at(f, offset) != state.fingerprint:
            return (
                f"changed before byte {offset}, where the last run stopped (truncated and "
                "written again, or a new file under a reused inode number)"
            )
        return None

    def _seek(self, offset: int) -> None:
        assert self._file is not None
        self._pos = self._line_end = self._file.seek(offset)

    def _resume_rotated(self, state: FeedState, rotated: str) -> None:
        """In the rotated file just opened: on from the offset, or from its start."""
        problem = self._problem(state)
        if problem is None:
            self._seek(state.position.offset)
            self.warn(
                f"{self.path} was rotated since the last run stopped: sending the rest of "
                f"{rotated} first, then {self.path} from its start"
            )
        else:
            self.warn(
                f"{self.path} was rotated since the last run stopped, to {rotated}, which "
                f"{problem}: sending {rotated} from its start, then {self.path}"
            )

    def _resume_in_copy(self, state: FeedState, why: str) -> bool:
        """After a ``copytruncate`` (the recorded file truncated, or gone, and a copy of it
        made first): a file of the path's directory whose name starts with the path's name
        and whose bytes before the offset match the fingerprint is read from the offset
        first, then the path from its start. ``False`` when there is none (or no fingerprint
        to match: the offset is 0, or it was not known)."""
        offset = state.position.offset
        if not state.fingerprint or offset == 0:
            return False
        path = os.path.abspath(self.path)
        directory, name = os.path.split(path)
        try:
            with os.scandir(directory) as entries:
                candidates = sorted(
                    entry.path
                    for entry in entries
                    if entry.name.startswith(name)
                    and entry.path != path
                    and entry.is_file(follow_symlinks=False)
                )
        except OSError:
            return False
        for candidate in candidates:
            try:
                f, info = self._open_file(candidate)
            except FollowError:
                continue
            if (info.st_dev, info.st_ino) == self._identity or (
                self._fingerprint_at(f, offset) != state.fingerprint
            ):
                f.close()
                continue
            self.close()
            self._use(f, info, at_end=False)
            self._seek(offset)
            self.warn(
                f"{why}; {candidate} holds the same bytes before byte {offset} (a copy made "
                f"before a truncation, as logrotate's copytruncate does): sending the rest of "
                f"{candidate} first, then {self.path} from its start"
            )
            return True
        return False

    @staticmethod
    def _fingerprint_at(f: FileIO, offset: int) -> str | None:
        start = max(0, offset - FINGERPRINT_BYTES)
        try:
            data = os.pread(f.fileno(), offset - start, start)
        except OSError:
            return None
        if len(data) != offset - start:
            return None  # shorter than the offset now
        return hashlib.sha256(data).hexdigest()
