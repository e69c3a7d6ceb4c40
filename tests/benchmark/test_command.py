"""The ``groupcomm bench`` command line (no runs)."""

from __future__ import annotations

import pytest

from groupcomm.cli import build_parser, main


def test_defaults_follow_the_peer_kit() -> None:
    args = build_parser().parse_args(["bench"])
    assert (args.mode, args.size, args.service, args.kind) == ("all", 100, "agreed", "tput")
    assert (args.daemons, args.runs, args.dur, args.warm, args.lat_rate) == (3, 3, 7.0, 1.0, 1000.0)
    assert not (args.compare or args.baseline or args.netns or args.json)


def test_protocol_overrides_are_checked() -> None:
    args = build_parser().parse_args(
        ["bench", "--protocol", "suspect_timeout_ms=1000", "--protocol", "window_msgs=8192"]
    )
    assert args.protocol == [("suspect_timeout_ms", 1000), ("window_msgs", 8192)]
    for bad in ("suspect_timeout_ms", "nope=3", "tick_ms=0", "tick_ms=x"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["bench", "--protocol", bad])


def test_baseline_and_compare_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--baseline", "zmq", "--compare"])


def test_bad_workload_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--size", "8"]) == 2
    assert "at least 16 bytes" in capsys.readouterr().err
    assert main(["bench", "--runs", "0"]) == 2
