"""The swarm's progress line: on stderr, in place on a terminal, stdout's report unchanged."""

from __future__ import annotations

import io

from sim.swarm import Progress, swarm


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_rewritten_in_place_on_a_terminal() -> None:
    err = Terminal()
    progress = Progress(4, err)
    progress.update(1, 0)
    progress.update(2, 1)
    progress.clear()
    text = err.getvalue()
    assert text.startswith("\r\x1b[Kswarm: 1/4 seeds, 0 failed, ")
    assert "\r\x1b[Kswarm: 2/4 seeds, 1 failed, " in text and "ETA" in text
    assert "\n" not in text and text.endswith("\r\x1b[K")


def test_progress_in_a_log_is_a_plain_line_now_and_then() -> None:
    err = io.StringIO()
    progress = Progress(3, err, every_s=0.0)
    progress.update(1, 0)
    progress.update(3, 0)  # the end: the summary on stdout says it
    assert err.getvalue().count("\n") == 1 and "\r" not in err.getvalue()
    quiet = io.StringIO()
    Progress(3, quiet).update(1, 0)  # less than every_s since the start
    assert quiet.getvalue() == ""


def test_swarm_stdout_is_unchanged_by_progress() -> None:
    out, err = io.StringIO(), Terminal()
    assert swarm([3], 1, out=out, err=err) == 0
    assert out.getvalue().startswith("swarm: 1 seeds, 0 failed, ")
    assert out.getvalue().count("\n") == 1
    assert "swarm: 1/1 seeds, 0 failed" in err.getvalue()
