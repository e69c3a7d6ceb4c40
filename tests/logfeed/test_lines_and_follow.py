"""``LineSplitter`` and ``FileFollower`` on real files, without a daemon."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from groupcomm.logfeed.follow import FileFollower, FollowError
from groupcomm.logfeed.lines import LineSplitter


def test_splitter_joins_partial_lines_and_cuts_long_ones() -> None:
    s = LineSplitter(max_line_bytes=5)
    assert s.feed(b"ab") == []
    assert s.feed(b"c\nde\n\nf") == [b"abc", b"de", b""]
    assert s.feed(b"ghijklmn") == []  # over the limit: kept 5, the rest skipped
    assert s.feed(b"op\nq\n123456789\n") == [b"fghij", b"q", b"12345"]
    assert s.truncated == 2
    assert s.feed(b"tail") == []
    assert s.flush() == b"tail"
    assert s.flush() is None


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def _drain(f: FileFollower) -> list[bytes]:
    """Every line available now (``read`` until it reports nothing new)."""
    out: list[bytes] = []
    while (lines := f.read()) is not None:
        out += lines
    return out


def test_follower_starts_at_end_and_survives_rotation_and_truncation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"old 1\nold 2\n")
    f = FileFollower(str(log))
    f.open()
    assert _drain(f) == []
    _append(log, b"a\nb")
    assert _drain(f) == [b"a"]  # "b" is not finished yet
    _append(log, b"\nc\n")
    assert _drain(f) == [b"b", b"c"]

    # Rotation: the old file gets a last (unterminated) line after the rename, then the path
    # is missing for a while, then a new file appears.
    with log.open("ab") as writer:
        os.rename(log, tmp_path / "app.log.1")
        writer.write(b"d\ne")
    assert _drain(f) == [b"d"]
    log.write_bytes(b"f 0123456789\n")
    assert _drain(f) == [b"e", b"f 0123456789"]  # the old file's last line ends at the rotation
    assert f.rotations == 1

    # Truncation: shorter than the position (a same-length rewrite looks like no change,
    # as for tail -F), read again from the start.
    log.write_bytes(b"g\n")
    assert _drain(f) == [b"g"]
    assert f.truncations == 1
    f.close()


def test_follower_from_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"x\ny\n")
    f = FileFollower(str(log), from_start=True)
    f.open()
    assert _drain(f) == [b"x", b"y"]
    f.close()


def test_follower_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FollowError, match="no such file"):
        FileFollower(str(tmp_path / "missing.log")).open()
    with pytest.raises(FollowError, match="directory"):
        FileFollower(str(tmp_path)).open()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FollowError, match="not a regular file"):
        FileFollower(str(fifo)).open()
    if os.geteuid() != 0:  # root reads anything
        secret = tmp_path / "secret.log"
        secret.write_bytes(b"")
        secret.chmod(0)
        with pytest.raises(FollowError, match="permission denied"):
            FileFollower(str(secret)).open()
