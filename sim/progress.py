"""A status line on stderr for long commands (swarm, study): rewritten in place on a terminal;
elsewhere (a log, a pipe) a plain line every ``every_s`` seconds. Owns only the writing; each
command says what the line holds (``text``)."""

from __future__ import annotations

import time
from typing import TextIO


class StatusLine:
    def __init__(self, total: int, err: TextIO | None, every_s: float = 30.0) -> None:
        self.total = total
        self.err = err
        self.tty = err is not None and err.isatty()
        self.every_s = every_s
        self.started = self.last = time.perf_counter()

    def text(self, done: int, failed: int) -> str:
        raise NotImplementedError

    def update(self, done: int, failed: int) -> None:
        if self.err is None:
            return
        now = time.perf_counter()
        if self.tty:
            self.err.write(f"\r\x1b[K{self.text(done, failed)}")
        elif now - self.last >= self.every_s and done < self.total:
            self.err.write(self.text(done, failed) + "\n")
        else:
            return
        self.last = now
        self.err.flush()

    def clear(self) -> None:
        """Erase the in-place line before other output (a report, the summary)."""
        if self.err is not None and self.tty:
            self.err.write("\r\x1b[K")
            self.err.flush()
