"""Studies (sim.study, sim.studyfile, sim.studyrun): a tiny grid end to end (runs.jsonl, CSV,
Markdown with mean ± CI, PNG), resuming after an interrupt, refusing bad study files, and the
statistics behind the summary."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from sim.__main__ import main
from sim.metrics import MergeMetric, PartitionMetric, RunMetrics, SideDetection
from sim.studyfile import StudyError, load_study
from sim.studyreport import flat_metrics, stat, t975
from sim.studyrun import Progress, Task, plan, run_study

TINY = """
[study]
title = "Tiny"
seeds = 2
metrics = ["detect_ms", "merge_ms", "agreed_p50_ms", "bytes_per_msg"]

[base]
daemons = 3
safety_ms = 800
settle_ms = 600
quiet_ms = 300
clients_per_daemon = 1

[grid]
loss = [0.0, 0.1]
partition = ["isolate-one", "none"]

[shape]
at_ms = 200
heal_ms = 500

[[plot]]
x = "loss"
y = ["detect_ms", "merge_ms"]
series = "partition"
file = "times.png"
"""


def _study(tmp_path: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tiny_study_writes_every_output(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    study = load_study(_study(tmp_path))
    assert run_study(study, tmp_path / "tiny", jobs=2, out=out, err=err) == 0
    d = tmp_path / "tiny"
    runs = _lines(d / "runs.jsonl")
    assert len(runs) == 8 and all(r["ok"] for r in runs)
    assert {(r["cell"]["loss"], r["cell"]["partition"], r["seed"]) for r in runs} == {
        (loss, p, s) for loss in (0.0, 0.1) for p in ("isolate-one", "none") for s in (0, 1)
    }
    first = runs[0]
    assert first["metrics"]["cpu_s"] > 0 and first["metrics"]["wall_s"] > 0
    assert first["options"]["daemons"] == 3 and first["options"]["loss"] == first["cell"]["loss"]

    rows = list(csv.DictReader((d / "summary.csv").read_text().splitlines()))
    assert [(r["loss"], r["partition"]) for r in rows] == [
        ("0.0", "isolate-one"),
        ("0.0", "none"),
        ("0.1", "isolate-one"),
        ("0.1", "none"),
    ]
    assert all(r["runs"] == "2" for r in rows)
    none = rows[1]  # no partition: nothing to detect or merge, reported missing, not 0
    assert none["detect_ms_n"] == "0" and none["detect_ms_missing"] == "2"
    assert none["detect_ms_mean"] == ""
    assert float(rows[0]["detect_ms_mean"]) > 200  # suspect timeout 250 ms
    assert float(rows[0]["cpu_s_per_daemon_mean"]) > 0

    md = (d / "summary.md").read_text()
    assert md.startswith("# Tiny")
    table = [line for line in md.splitlines() if line.startswith("| 0.0 | isolate-one")]
    assert table and " ± " in table[0]
    assert "[2/2 missing]" in md and "![" in md and "(times.png)" in md
    assert (d / "times.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "study: 8/8 runs, 0 failed" in out.getvalue()


def test_a_study_resumes_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _study(tmp_path)
    d = tmp_path / "tiny"
    study = load_study(path)
    assert run_study(study, d, jobs=1, out=io.StringIO(), err=None) == 0
    before = (d / "runs.jsonl").read_text()
    (d / "summary.md").unlink()

    def no_run(task: Task) -> dict[str, Any]:
        raise AssertionError(f"ran {task.key} again")

    monkeypatch.setattr("sim.studyrun.run_task", no_run)
    assert main(["study", str(path), "--jobs", "1"]) == 0
    assert (d / "runs.jsonl").read_text() == before and (d / "summary.md").exists()
    # Runs recorded before SimOptions gained a field (here: codec, at its default) still count.
    older = [
        {**r, "options": {k: v for k, v in r["options"].items() if k != "codec"}}
        for r in _lines(d / "runs.jsonl")
    ]
    (d / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in older))
    assert run_study(study, d, jobs=1, out=io.StringIO(), err=None) == 0
    (d / "runs.jsonl").write_text(before)
    monkeypatch.undo()

    # An interrupt: three runs recorded, the fourth cut off in the middle of its line.
    lines = before.splitlines(keepends=True)
    (d / "runs.jsonl").write_text("".join(lines[:3]) + lines[3][:40])
    ran: list[str] = []
    import sim.studyrun

    real = sim.studyrun.run_task

    def counting(task: Task) -> dict[str, Any]:
        ran.append(task.key)
        return real(task)

    monkeypatch.setattr("sim.studyrun.run_task", counting)
    err = io.StringIO()
    assert run_study(study, d, jobs=1, out=io.StringIO(), err=err) == 0
    assert len(ran) == 5 and "unfinished last line" in err.getvalue()
    after = _lines(d / "runs.jsonl")
    assert len(after) == 8 and len({r["key"] for r in after}) == 8


def test_dry_run_and_report_only_run_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _study(tmp_path)
    assert main(["study", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Tiny: 4 cells x 2 seeds = 8 runs" in out and "8 runs to do" in out
    assert not (tmp_path / "tiny").exists()
    assert main(["study", str(path), "--report-only"]) == 0
    md = (tmp_path / "tiny" / "summary.md").read_text()
    assert "**Incomplete**: 8 runs are not recorded yet" in md
    assert (tmp_path / "tiny" / "runs.jsonl").exists() is False


def test_a_changed_study_file_is_not_resumed_silently(tmp_path: Path) -> None:
    d = tmp_path / "tiny"
    run_study(load_study(_study(tmp_path)), d, jobs=1, out=io.StringIO(), err=None)
    changed = load_study(_study(tmp_path, TINY.replace("quiet_ms = 300", "quiet_ms = 200")))
    with pytest.raises(StudyError, match=r"other options.*--restart"):
        run_study(changed, d, jobs=1, out=io.StringIO(), err=None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("daemons = 3", "deamons = 3"), r"\[base\]: unknown option 'deamons'"),
        (("loss = [0.0, 0.1]", "loss = []"), r"\[grid\] loss must be a non-empty list"),
        (("loss = [0.0, 0.1]", "los = [0.0, 0.1]"), r"\[grid\]: unknown axis 'los'"),
        (("loss = [0.0, 0.1]", "loss = [0.0, 1.5]"), r"loss must be a probability"),
        (("loss = [0.0, 0.1]", 'loss = ["high"]'), r"loss must be a number"),
        (('"isolate-one", "none"', '"ring"'), r"unknown shape 'ring'"),
        (('"bytes_per_msg"]', '"bytes_per_message"]'), r"unknown metric 'bytes_per_message'"),
        (('series = "partition"', ""), r"axis 'partition' has several values"),
        (("heal_ms = 500", "heal_ms = 900"), r"fault 2 \(heal at 900 ms\) must happen"),
        (("seeds = 2", "seeds = 0"), r"seeds must be a count >= 1"),
        (("[shape]", "[shapes]"), r"unknown table \[shapes\]"),
    ],
)
def test_a_bad_study_file_is_refused_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in TINY
    path = _study(tmp_path, TINY.replace(old, new))
    with pytest.raises(StudyError, match=message):
        load_study(path)
    assert main(["study", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"study: {path}: ")
    assert not (tmp_path / "tiny").exists()


def test_custom_partitions_and_latency_axis(tmp_path: Path) -> None:
    text = TINY.replace('partition = ["isolate-one", "none"]', 'partition = ["first-alone"]')
    text = text.replace("[shape]", '[partitions]\nfirst-alone = "200:partition:d1/d2,d3"\n[shape]')
    text = text.replace("[grid]", '[grid]\nlatency_ms = ["1-4", 10]')
    text = text.replace('series = "partition"', 'series = "latency_ms"')
    study = load_study(_study(tmp_path, text))
    tasks = plan(study)
    assert len(tasks) == 2 * 2 * 2
    opts = study.options(tasks[-1].cell, 1)
    assert (opts.latency_min_ms, opts.latency_max_ms) == (10, 10)
    assert opts.faults[0].args == (0, 1, 1)
    bad = text.replace("d1/d2,d3", "d1/d2")  # d3 on no side
    with pytest.raises(StudyError, match="d3 on no side"):
        load_study(_study(tmp_path, bad))


def test_statistics_count_missing_values_apart() -> None:
    s = stat([100, None, 110, 120, None])
    assert (s.n, s.missing, s.mean) == (3, 2, 110.0)
    assert s.ci95 == pytest.approx(t975(2) * 10 / 3**0.5)
    assert t975(2) == pytest.approx(4.303, abs=1e-3) and t975(35) >= t975(40)
    one = stat([7, None])
    assert (one.n, one.mean, one.ci95) == (1, 7.0, None)
    assert stat([None, None]).mean is None


def test_merge_after_the_faults_ended_counts_as_missing() -> None:
    side = SideDetection(side=("d1", "d2"), first_ms=240, all_ms=260)
    minor = SideDetection(side=("d3",), first_ms=250, all_ms=None)
    metrics = RunMetrics(
        end_ms=5000,
        partitions=(PartitionMetric(t=500, sides=(side, minor)),),
        merges=(
            MergeMetric(t=1500, what="heal", live=(), first_ms=2600, all_ms=2700),
            MergeMetric(t=4000, what="stable", live=(), first_ms=100, all_ms=200),
        ),
        rounds=(),
        regular_views=3,
        regular_installs=7,
        latency=(),
        messages_sent=10,
        messages_delivered=10,
        frames_sent=None,
        frame_bytes=None,
        frames_per_message=None,
        bytes_per_message=None,
        naks=None,
        retransmitted=None,
    )
    flat = flat_metrics(metrics, daemons=3, violations=0, events=9, wall_s=1.0, cpu_s=0.6)
    assert flat["detect_ms"] is None and flat["detect_major_ms"] == 260
    assert flat["detect_first_ms"] == 240 and flat["detect_minor_ms"] is None
    assert flat["merge_ms"] is None and flat["merge_stable_ms"] == 200  # after the heal at 4000
    assert flat["cpu_s_per_daemon"] == pytest.approx(0.2) and flat["agreed_p50_ms"] is None


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_with_an_eta() -> None:
    err = Terminal()
    progress = Progress(total=4, resumed=1, weight=30.0, err=err)
    progress.update(1, 0)
    assert "ETA ?" in err.getvalue()
    progress.update(2, 0, weight=10.0)  # a third of the work in the elapsed time: 2x more
    text = err.getvalue().rsplit("\r\x1b[K", 1)[1]
    assert text.startswith("study: [############------------] 2/4 runs (1 resumed), 0 failed")
    assert "ETA 0m00s" in text and "\n" not in err.getvalue()
