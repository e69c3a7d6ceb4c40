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


def test_transport_and_batch_defaults() -> None:
    args = build_parser().parse_args(["bench"])
    assert (args.transport, args.batch) == ("tcp", None)
    assert build_parser().parse_args(["bench", "--batch", "1"]).batch == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--transport", "udp"])


def test_epgm_needs_netns_and_batch_needs_a_flood(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--transport", "epgm"]) == 2
    assert "needs --netns" in capsys.readouterr().err
    assert main(["bench", "--kind", "lat", "--batch", "10"]) == 2
    assert "--kind tput only" in capsys.readouterr().err
    assert main(["bench", "--batch", "0"]) == 2
    assert "batch must be at least 1" in capsys.readouterr().err


def test_member_gc_is_tuned_unless_asked_otherwise() -> None:
    assert build_parser().parse_args(["bench"]).member_gc == "tuned"
    assert build_parser().parse_args(["bench", "--member-gc", "default"]).member_gc == "default"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--member-gc", "off"])
