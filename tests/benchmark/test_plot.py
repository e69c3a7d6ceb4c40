"""The latency plot: a clear error without matplotlib (always tested), and a PNG from a tiny
synthetic data set when matplotlib (the optional ``bench`` extra) is installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from groupcomm.benchmark.plot import PlotUnavailable, plot_latency, plot_problem
from groupcomm.benchmark.sweepreport import lat_points
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
