"""The round-trip probe runs end to end on two daemons and reports every gap's quantiles."""

from __future__ import annotations

import json
import os
import time

import pytest

from groupcomm.benchmark import roundtrip
from groupcomm.benchmark.roundtrip import main


def test_round_trips_by_gap_on_two_daemons(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--daemons", "2", "--count", "20", "--gaps", "0,1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["daemons"] == 2 and out["awake"] is False
    assert sorted(out["us"]) == ["0.0", "1.0"]
    for gap, q in out["us"].items():
        assert 0 < q["10"] <= q["50"] <= q["90"] <= q["99"] < 5_000_000, gap


def test_the_raw_client_round_trips_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The plain-socket client (no asyncio, no client library) gets its own messages back on
    one daemon, and the record says which client ran."""
    assert main(["--client", "raw", "--count", "200", "--gaps", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["client"] == "raw" and out["daemons"] == 1
    q = out["us"]["0.0"]
    assert 0 < q["10"] <= q["50"] <= q["90"] <= q["99"] < 5_000_000


@pytest.mark.parametrize(
    "argv",
    [
        ["--gaps", "x"],
        ["--gaps", "-1"],
        ["--gaps", "2,2"],
        ["--gaps", "inf"],
        ["--count", "3"],
        ["--client", "sync"],
    ],
)
def test_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        main(argv)


def test_the_spinners_run_at_idle_priority_and_end_with_the_block() -> None:
    with roundtrip.idle_spinners(True) as spinners:
        pids = [p.pid for p in spinners]
        assert len(pids) == (os.cpu_count() or 1)
        deadline = time.monotonic() + 5
        while any(os.sched_getscheduler(pid) != os.SCHED_IDLE for pid in pids):
            assert time.monotonic() < deadline, "a spinner did not switch to SCHED_IDLE"
            time.sleep(0.01)
    assert all(p.returncode is not None for p in spinners)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
