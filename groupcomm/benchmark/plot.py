"""The latency-vs-load plot of a sweep (``--lat-sweep``): p50 and p99 on a log scale against
the offered msg/s, one colour per system, failing points crossed out and the knee marked.

matplotlib is optional (``pip install -e .[bench]``): it is imported only here, only when a plot
is asked for, so the benchmark, the daemon and the test suite never need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from groupcomm.benchmark.sweepreport import LatPoint, knee

INSTALL_HINT = "pip install -e .[bench]"
COLOURS = {"groupcomm": "tab:blue", "zmq": "tab:orange"}
LABELS = {"groupcomm": "groupcomm AGREED", "zmq": "zmq baseline"}


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotUnavailable(
            f"the latency plot needs matplotlib ({e}); install it with `{INSTALL_HINT}`"
        ) from e
    return plt


def plot_problem() -> str | None:
    """``None`` if plots can be drawn here, else why not (naming the install command)."""
    try:
        _pyplot()
    except PlotUnavailable as e:
        return str(e)
    return None


def plot_latency(points: Mapping[str, Sequence[LatPoint]], path: Path, title: str) -> Path:
    """Write the PNG to ``path``; ``PlotUnavailable`` without matplotlib."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    try:
        for system, pts in points.items():
            colour = COLOURS.get(system, "tab:gray")
            label = LABELS.get(system, system)
            for key, style, name in (("p50_us", "-", "p50"), ("p99_us", "--", "p99")):
                xs = [p.rate for p in pts if getattr(p, key) is not None]
                ys = [getattr(p, key) for p in pts if getattr(p, key) is not None]
                ax.plot(xs, ys, style, marker="o", color=colour, label=f"{label} {name}")
                bad = [(p.rate, getattr(p, key)) for p in pts if p.failing and getattr(p, key)]
                if bad:
                    ax.plot(*zip(*bad, strict=True), "x", color="red", markersize=10, mew=2)
            k = knee(pts)
            if k is not None:
                ax.axvline(k, color=colour, linestyle=":", linewidth=1.5)
                ax.annotate(
                    f"{label} knee\n{k:,.0f} msg/s",
                    (k, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(-4, -28),
                    textcoords="offset points",
                    ha="right",
                    color=colour,
                    fontsize=8,
                )
        ax.set_yscale("log")
        ax.set_xlabel("offered load (msg/s, whole group)")
        ax.set_ylabel("latency (µs, log scale)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.plot([], [], "x", color="red", label="loss / failure / cannot keep up")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
