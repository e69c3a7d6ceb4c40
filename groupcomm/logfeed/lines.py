"""Bytes in, log lines out: ``LineSplitter`` cuts a byte stream at ``\\n``.

It owns the one piece of state a reader keeps between reads, the unterminated end of the last
read, and bounds it: a line longer than ``max_line_bytes`` keeps its first ``max_line_bytes``
and the rest, up to the next newline, is skipped and counted (as syslog daemons truncate), so a
writer that never ends its line cannot grow the reader's memory. It does not read anything.
"""

from __future__ import annotations

# Well under the daemon's largest payload (1 MiB) and its default send window (1 MiB): a line
# must fit both to be sent at all, and a few of them should fit one window.
DEFAULT_MAX_LINE_BYTES = 256 * 1024


class LineSplitter:
    """Feed chunks, get complete lines (without their ``\\n``; a ``\\r`` stays)."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be >= 1")
        self.max_line_bytes = max_line_bytes
        self.truncated = 0  # lines cut to max_line_bytes
        self._partial = bytearray()
        self._over = False  # the partial line reached the limit: skip until its newline

    def feed(self, data: bytes) -> list[bytes]:
        """The lines ``data`` completes, in order."""
        lines = data.split(b"\n")
        rest = lines.pop()  # after the last newline: b"" when ``data`` ends a line
        if lines and (self._partial or self._over):
            lines[0] = self._complete(lines[0])
        limit = self.max_line_bytes
        # The common case (short lines, nothing pending) costs one pass in C and no Python loop.
        if lines and max(map(len, lines)) > limit:
            self.truncated += sum(1 for line in lines if len(line) > limit)
            lines = [line[:limit] for line in lines]
        self._keep(rest)
        return lines

    def flush(self) -> bytes | None:
        """The unterminated last line as a line of its own (at the end of a file: end of
        input, rotation), or ``None`` when there is none."""
        if not self._partial and not self._over:
            return None
        return self._complete(b"")

    def reset(self) -> None:
        """Forget the unterminated line (its file was truncated: it will not be finished)."""
        self._partial.clear()
        self._over = False

    def _complete(self, end: bytes) -> bytes:
        if self._over:  # already max_line_bytes long: ``end`` belongs to the skipped rest
            line = bytes(self._partial)
            self.truncated += 1
        else:
            line = bytes(self._partial) + end
        self.reset()
        return line

    def _keep(self, rest: bytes) -> None:
        if self._over or not rest:
            return
        self._partial += rest
        if len(self._partial) > self.max_line_bytes:
            del self._partial[self.max_line_bytes :]
            self._over = True
