"""How a live daemon's trace records crashes, without processes (``groupcomm.daemon.trace``):
a new incarnation appending to the file of one that neither crashed nor shut down cleanly
records its crash first; a clean shutdown is no crash; the harness's ``record_crash`` and
``stable``/``end`` markers share the clock; torn last lines are repaired; ``t`` never goes back.
The live tests (``test_live_faults.py``) check the same on real daemons."""

from __future__ import annotations

import json
from pathlib import Path

from groupcomm.core.commands import Note
from groupcomm.daemon.trace import TraceWriter, append_event, prepare, record_crash, wall_ms
from sim.checkers import check_all
from sim.checkers.liveness import check_l1, final_configuration
from sim.trace import load_trace, load_traces


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def install(w: TraceWriter, epoch: int) -> None:
    conf = f"R{epoch}.{w.token}"
    w.record("install", d=w.token, conf=conf, kind="regular", members=[w.token], epoch=epoch)
    w.flush()


def killed(path: Path, token: str, epoch: int = 1) -> None:
    """An incarnation that wrote its first install and was then killed (never closed)."""
    install(TraceWriter(str(path), token), epoch)


def stopped(path: Path, token: str, epoch: int = 1) -> None:
    """An incarnation that shut down cleanly (SIGTERM: the core notes ``shutdown``)."""
    w = TraceWriter(str(path), token)
    install(w, epoch)
    w.command(Note(event="shutdown", fields={"d": token}))
    w.close()


def test_restart_records_the_crash_of_a_killed_incarnation(tmp_path: Path) -> None:
    path = tmp_path / "d1.jsonl"
    killed(path, "d1:100")
    w = TraceWriter(str(path), "d1:200")
    assert w.crashed == "d1:100"
    install(w, 2)
    w.close()
    evs = lines(path)
    assert [(e["ev"], e["d"]) for e in evs] == [
        ("install", "d1:100"),
        ("crash", "d1:100"),
        ("install", "d1:200"),
    ]
    assert sorted(e["t"] for e in evs) == [e["t"] for e in evs]  # type: ignore[type-var]
    trace = load_trace(path)
    assert set(trace.crashes) == {"d1:100"}
    assert check_all(trace) == []


def test_clean_shutdown_is_no_crash(tmp_path: Path) -> None:
    path = tmp_path / "d1.jsonl"
    stopped(path, "d1:100")
    assert lines(path)[-1] == {
        "ev": "fault",
        "what": "shutdown",
        "d": "d1:100",
        "t": lines(path)[-1]["t"],
    }
    w = TraceWriter(str(path), "d1:200")
    assert w.crashed is None
    install(w, 2)
    w.close()  # killed or not: only the shutdown note makes a close clean
    assert [e["ev"] for e in lines(path)] == ["install", "fault", "install"]
    trace = load_trace(path)
    assert trace.crashes == {}
    assert check_all(trace) == []


def test_one_crash_per_incarnation(tmp_path: Path) -> None:
    """The harness recorded the crash (a daemon it will not restart): a later restart does not
    record it again, and neither does a second ``record_crash``."""
    path = tmp_path / "d1.jsonl"
    killed(path, "d1:100")
    assert record_crash(str(path), "d1") == "d1:100"
    assert record_crash(str(path), "d1") is None
    assert TraceWriter(str(path), "d1:200").crashed is None
    assert [e["ev"] for e in lines(path)] == ["install", "crash"]
    assert record_crash(str(tmp_path / "none.jsonl"), "d1") is None  # no file, no daemon


def test_other_daemons_lines_are_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    killed(path, "d1:100")
    killed(path, "d10:100")  # a name with d1 as a prefix, written last
    assert prepare(str(path), "d1").unfinished == "d1:100"
    assert prepare(str(path), "d10").unfinished == "d10:100"
    assert prepare(str(path), "d2").unfinished is None
    assert TraceWriter(str(path), "d1:200").crashed == "d1:100"


def test_torn_last_line_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "d1.jsonl"
    killed(path, "d1:100")
    with path.open("a") as f:
        f.write('{"d":"d1:100","ev":"deliver","mid":"m')  # killed in the middle of a write
    w = TraceWriter(str(path), "d1:200")
    assert w.crashed == "d1:100"
    install(w, 2)
    assert [e["ev"] for e in lines(path)] == ["install", "crash", "install"]

    whole = tmp_path / "d2.jsonl"
    killed(whole, "d2:100")
    text = whole.read_text()
    whole.write_text(text.rstrip("\n"))  # only the newline was lost: the event stays
    assert TraceWriter(str(whole), "d2:200").crashed == "d2:100"
    assert [e["ev"] for e in lines(whole)] == ["install", "crash"]


def test_time_never_goes_back_within_a_file(tmp_path: Path) -> None:
    """The new writer starts from the file's last ``t`` even if the wall clock is behind it."""
    path = tmp_path / "d1.jsonl"
    future = wall_ms() + 60_000
    path.write_text(json.dumps({"ev": "stable", "t": future}) + "\n")
    w = TraceWriter(str(path), "d1:1")
    install(w, 1)
    assert lines(path)[-1]["t"] == future
    assert append_event(str(path), "end", live=["d1:1"]) == future
    load_trace(path)  # parse_lines rejects a t that goes back


def test_markers_make_l1_judge_the_restarted_daemon(tmp_path: Path) -> None:
    """A daemon file with a killed and a restarted incarnation plus the harness's markers: L1 is
    judged (final configuration found) and rejects an ``end`` listing the crashed token."""
    path, marks = tmp_path / "d1.jsonl", tmp_path / "harness.jsonl"
    killed(path, "d1:100")
    append_event(str(marks), "stable")
    w = TraceWriter(str(path), "d1:200")
    install(w, 2)
    w.close()
    append_event(str(marks), "end", live=["d1:200"])
    trace = load_traces([path, marks])
    assert trace.stable is not None and trace.end is not None
    assert final_configuration(trace) == "R2.d1:200"
    assert check_all(trace) == []

    append_event(str(marks), "end", live=["d1:100", "d1:200"])  # the last end counts
    bad = load_traces([path, marks])
    assert final_configuration(bad) is None
    found = check_l1(bad)
    assert found and {v.prop for v in found} == {"L1"}
    assert any("d1:100 is listed live but crashed" in str(v) for v in found)
