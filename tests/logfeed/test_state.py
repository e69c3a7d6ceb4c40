"""The publisher's state without a daemon: the state file (atomic, refused when malformed or
kept for another file), ``Checkpoints`` (a position counts only once the daemon credited every
line before it, empty lines included) and ``FileFollower.resume`` after a rotation, a
truncation or a rewrite while nobody followed the file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from groupcomm.logfeed.follow import FileFollower
from groupcomm.logfeed.state import (
    Checkpoints,
    FeedState,
    Position,
    StateError,
    load_state,
    save_state,
)


def _drain(f: FileFollower) -> list[bytes]:
    out: list[bytes] = []
    while (lines := f.read()) is not None:
        out += lines
    return out


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_state_file_round_trip_and_refusals(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    path = str(tmp_path / "app.state")
    assert load_state(path, str(log)) is None  # a first run
    state = FeedState(str(log), Position(1, 2, 3), "ab" * 32)
    save_state(path, state)
    assert load_state(path, str(log)) == state
    assert os.listdir(tmp_path) == ["app.state"]  # the temporary file was renamed
    save_state(path, FeedState(str(log), Position(1, 2, 40)))
    assert load_state(path, str(log)) == FeedState(str(log), Position(1, 2, 40), "")

    with pytest.raises(StateError, match=r"kept for .*app\.log, not .*other\.log"):
        load_state(path, str(tmp_path / "other.log"))
    for bad in (b"", b"{}", b'{"version": 1}', b"[1]", b"\xff"):
        Path(path).write_bytes(bad)
        with pytest.raises(StateError, match="is not a publisher's state"):
            load_state(path, str(log))
    data = json.loads(json.dumps({"version": 1, "file": str(log), "dev": 1, "ino": 2}))
    for offset in (-1, "3", 1.5, None):
        Path(path).write_text(json.dumps({**data, "offset": offset, "fingerprint": ""}))
        with pytest.raises(StateError):
            load_state(path, str(log))


def test_checkpoints_wait_for_credit_of_every_line_before() -> None:
    c = Checkpoints()
    p = [Position(1, 1, n) for n in range(6)]
    c.add([b"aaa", b"bb"], p[1])  # bytes 0..5
    c.add([b"c", b""], p[2])  # 5..6, then an empty line
    c.add([], p[3])  # the position moved without a line (a truncation)
    c.add([b""], p[4])  # only an empty line
    c.add([b"dddd"], p[5])  # 6..10
    assert c.acknowledged(in_flight=10) is None  # nothing credited
    assert c.acknowledged(in_flight=6) is None  # 4 of the first batch's 5 bytes
    assert c.acknowledged(in_flight=5) == p[1]
    # the second batch's "c" is credited, not its empty line: it waits for a later line
    assert c.acknowledged(in_flight=4) is None
    assert c.acknowledged(in_flight=3) == p[4]  # "d" was stamped: so were the empty lines
    assert c.acknowledged(in_flight=0) == p[5]
    assert len(c) == 0
    assert c.acknowledged(in_flight=0) is None


def test_position_is_after_the_last_line_returned(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    f = FileFollower(str(log))
    f.open()
    ino = os.stat(log).st_ino
    _append(log, b"one\ntw")
    assert _drain(f) == [b"one"]
    assert f.position.offset == 4 and f.position.ino == ino
    _append(log, b"o\n" + b"x" * 10)
    assert _drain(f) == [b"two"]
    assert f.position.offset == 8
    log.write_bytes(b"z\n")  # truncated
    assert _drain(f) == [b"z"]
    assert f.position.offset == 2
    f.close()


def _stopped_at(tmp_path: Path, content: bytes, upto: int) -> tuple[Path, FeedState]:
    """``app.log`` holding ``content``, and the state of a run that stopped at ``upto``."""
    log = tmp_path / "app.log"
    log.write_bytes(content)
    f = FileFollower(str(log), from_start=True)
    f.open()
    _drain(f)
    position = Position(f.position.dev, f.position.ino, upto)
    state = FeedState(str(log), position, f.fingerprint(position))
    f.close()
    return log, state


def _resume(log: Path, state: FeedState) -> tuple[FileFollower, list[str]]:
    warnings: list[str] = []
    f = FileFollower(str(log), warn=warnings.append)
    f.resume(state)
    return f, warnings


def test_resume_where_it_stopped(tmp_path: Path) -> None:
    log, state = _stopped_at(tmp_path, b"a\nb\n", upto=2)
    _append(log, b"c\n")
    f, warnings = _resume(log, state)
    assert (_drain(f), warnings) == ([b"b", b"c"], [])
    f.close()


def test_resume_finishes_the_rotated_file_first(tmp_path: Path) -> None:
    log, state = _stopped_at(tmp_path, b"a\nb\n", upto=2)
    _append(log, b"c\nd")  # written before the rotation, the last line unterminated
    os.rename(log, tmp_path / "app.log.1")
    log.write_bytes(b"new\n")
    f, warnings = _resume(log, state)
    assert _drain(f) == [b"b", b"c", b"d", b"new"]
    assert len(warnings) == 1 and "rotated" in warnings[0] and "app.log.1" in warnings[0]
    assert f.position == Position(*f.position.identity, 4) and f.rotations == 1
    f.close()

    # Rotated and the new file not there yet: the old one is read; the new one once it comes.
    log, state = _stopped_at(tmp_path, b"x\ny\n", upto=2)
    os.rename(log, tmp_path / "app.log-20240101")
    f, _ = _resume(log, state)
    assert _drain(f) == [b"y"]
    log.write_bytes(b"z\n")
    assert _drain(f) == [b"z"]
    f.close()


def test_resume_without_the_old_file_warns_of_missed_lines(tmp_path: Path) -> None:
    log, state = _stopped_at(tmp_path, b"a\nb\n", upto=2)
    keep = tmp_path / "elsewhere"  # kept open: its inode cannot be reused by the new file
    keep.mkdir()
    os.rename(log, keep / "app.log.1")
    log.write_bytes(b"new 1\nnew 2\n")
    f, warnings = _resume(log, state)
    assert _drain(f) == [b"new 1", b"new 2"]
    assert len(warnings) == 1 and "may have been missed" in warnings[0]
    f.close()


def test_resume_reads_a_truncated_or_rewritten_file_from_its_start(tmp_path: Path) -> None:
    log, state = _stopped_at(tmp_path, b"aaaa\nbbbb\n", upto=10)
    log.write_bytes(b"c\n")  # truncated (copytruncate) and written again, shorter
    f, warnings = _resume(log, state)
    assert _drain(f) == [b"c"]
    assert len(warnings) == 1 and "shorter" in warnings[0]
    f.close()

    # Truncated and written past the old offset while stopped: the same inode, long enough;
    # the fingerprint of the bytes before the offset tells.
    log, state = _stopped_at(tmp_path, b"aaaa\nbbbb\n", upto=10)
    log.write_bytes(b"cccc\ndddd\neeee\n")
    f, warnings = _resume(log, state)
    assert _drain(f) == [b"cccc", b"dddd", b"eeee"]
    assert len(warnings) == 1 and "changed before byte 10" in warnings[0]
    f.close()

    # Without a fingerprint (the run's position was in a file it no longer had open), only
    # the size is checked, as tail -F would.
    log, state = _stopped_at(tmp_path, b"aaaa\nbbbb\n", upto=5)
    f, warnings = _resume(log, FeedState(state.path, state.position, ""))
    assert (_drain(f), warnings) == ([b"bbbb"], [])
    f.close()


def test_resume_after_copytruncate_finishes_the_copy_first(tmp_path: Path) -> None:
    log, state = _stopped_at(tmp_path, b"a\nb\nc\n", upto=4)
    shutil.copyfile(log, tmp_path / "app.log.1")  # logrotate's copytruncate
    (tmp_path / "app.log-0").write_bytes(b"x" * 10)  # looked at first; other bytes before 4
    (tmp_path / "other.log").write_bytes(b"a\nb\nc\n")  # a copy, but not named app.log*
    log.write_bytes(b"")
    _append(log, b"d\n")
    f, warnings = _resume(log, state)
    assert _drain(f) == [b"c", b"d"]
    assert len(warnings) == 1 and "copytruncate" in warnings[0] and "app.log.1" in warnings[0]
    f.close()

    # The copy compressed (no longer the same bytes): only the truncation is seen.
    log, state = _stopped_at(tmp_path, b"a\nb\nc\n", upto=4)
    for name in ("app.log.1", "app.log-0"):
        (tmp_path / name).unlink()
    log.write_bytes(b"d\n")
    f, warnings = _resume(log, state)
    assert _drain(f) == [b"d"]
    assert len(warnings) == 1 and "truncated" in warnings[0]
    f.close()
