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


def test_stagger_is_for_paced_senders_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert not build_parser().parse_args(["bench"]).stagger
    assert build_parser().parse_args(["bench", "--kind", "lat", "--stagger"]).stagger
    assert main(["bench", "--stagger"]) == 2
    assert "--stagger applies to --kind lat only" in capsys.readouterr().err


def test_member_gc_is_tuned_unless_asked_otherwise() -> None:
    assert build_parser().parse_args(["bench"]).member_gc == "tuned"
    assert build_parser().parse_args(["bench", "--member-gc", "default"]).member_gc == "default"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--member-gc", "off"])


def test_size_takes_units_and_a_bad_one_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parse = build_parser().parse_args
    assert parse(["bench", "--size", "64MiB"]).size == 64 << 20
    assert parse(["bench", "--size", "1000"]).size == 1000
    assert parse(["bench", "--size", "100kB"]).size == 100_000
    for bad in ("64M", "big", "1.2.3MiB"):
        with pytest.raises(SystemExit):
            parse(["bench", "--size", bad])
        assert "is not a size" in capsys.readouterr().err


def test_a_max_message_bytes_below_the_size_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Checked before anything runs (exit status 2); the baseline alone has no daemons."""
    argv = ["bench", "--size", "16MiB", "--protocol", "max_message_bytes=1048576"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--size 16777216 is larger than --protocol max_message_bytes=1048576" in err
    assert main([*argv, "--daemons", "0"]) == 2  # a bad workload is reported first
    assert "daemons >= 1" in capsys.readouterr().err
