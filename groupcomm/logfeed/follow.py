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
"""

from __future__ import annotations

import os
import stat
from io import FileIO

from groupcomm.logfeed.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter

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
    ) -> None:
        self.path = path
        self.from_start = from_start
        self.read_bytes = read_bytes
        self.rotations = 0
        self.truncations = 0
        self._splitter = LineSplitter(max_line_bytes)
        self._file: FileIO | None = None
        self._identity = (0, 0)  # (st_dev, st_ino) of the open file
        self._pos = 0

    @property
    def truncated_lines(self) -> int:
        """Lines longer than ``max_line_bytes``, cut to it."""
        return self._splitter.truncated

    def open(self) -> None:
        """Open the file, at its end (or its start with ``from_start``). ``FollowError`` if it
        cannot be read."""
        self._open(at_end=not self.from_start)

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
            self._pos += len(data)
            return self._splitter.feed(data)
        if os.fstat(f.fileno()).st_size < self._pos:
            f.seek(0)
            self._pos = 0
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
        try:
            # O_NONBLOCK: opening a FIFO would otherwise wait for a writer (refused below;
            # reads of a regular file never wait for more data whatever the flag).
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise FollowError(f"cannot follow {self.path}: no such file") from None
        except PermissionError:
            raise FollowError(f"cannot follow {self.path}: permission denied") from None
        except OSError as exc:
            raise FollowError(f"cannot follow {self.path}: {exc.strerror or exc}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)  # a FIFO or device has no size to watch for truncation
            what = "it is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise FollowError(f"cannot follow {self.path}: {what}")
        f = FileIO(fd, "rb")
        self._file = f
        self._identity = (info.st_dev, info.st_ino)
        self._pos = f.seek(0, os.SEEK_END) if at_end else 0
