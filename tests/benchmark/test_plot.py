"""The latency plot: a clear error without matplotlib (always tested), and a PNG from a tiny
synthetic data set when matplotlib (the optional ``bench`` extra) is installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from groupcomm.benchmark.peerkit import peer_points, peer_runs
from groupcomm.benchmark.plot import PlotUnavailable, plot_latency, plot_problem, styles
from groupcomm.benchmark.sweepreport import lat_points
from tests.benchmark.support_peers import cpg_lines
from tests.benchmark.support_sweep import lat_records


def test_without_matplotlib_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert "pip install -e .[bench]" in (plot_problem() or "")
    with pytest.raises(PlotUnavailable, match=r"pip install -e \.\[bench\]"):
        plot_latency(lat_points(lat_records()), tmp_path / "x.png", "t")


def test_plot_from_synthetic_points(tmp_path: Path) -> None:
    # scripts/setup.sh installs the bench extra: no matplotlib here is a failure, not a skip
    path = plot_latency(lat_points(lat_records()), tmp_path / "lat.png", "synthetic")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_with_the_peer_kit_curves(tmp_path: Path) -> None:
    points = {**lat_points(lat_records()), **peer_points(peer_runs(cpg_lines(), 100))}
    assert list(points) == ["groupcomm", "zmq", "cpg"]
    path = plot_latency(points, tmp_path / "lat.png", "with CPG")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_styles_known_systems_and_fallbacks() -> None:
    look = styles(["groupcomm", "zmq", "cpg"])
    assert look["cpg"] == ("tab:green", "corosync CPG AGREED")
    assert look["zmq"] == ("tab:orange", "zmq baseline")
    many = styles(
        ["groupcomm", "zmq", "cpg-3node-knet", "cpg-3node-knet-sched_rr", "zmq-tcp-raw", "mystery"]
    )
    assert many["cpg-3node-knet"] == ("tab:green", "corosync CPG AGREED (cpg-3node-knet)")
    colours = [colour for colour, _ in many.values()]
    assert len(set(colours)) == len(colours) and "red" not in colours  # red: failing points
    assert many["zmq-tcp-raw"][1] == "zmq-tcp-raw (peer kit)"  # not the sweep's baseline
    assert many["mystery"][1] == "mystery"
