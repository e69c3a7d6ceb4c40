"""The latency-vs-load plot of a sweep (``--lat-sweep``): p50 and p99 on a log scale against
the offered msg/s, one colour per system (groupcomm, the zmq baseline, and the peer kit's
curves such as corosync CPG, ``sweep --peer-runs``), failing points crossed out and the knee
marked.

matplotlib is optional (``pip install -e .[bench]``): it is imported only here, only when a plot
is asked for, so the benchmark, the daemon and the test suite never need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from groupcomm.benchmark.sweepreport import LatPoint, knee

INSTALL_HINT = "pip install -e .[bench]"
COLOURS = {
    "groupcomm": "tab:blue",
    "zmq": "tab:orange",
    "cpg": "tab:green",
    "spread": "tab:purple",
    "redis": "tab:brown",
}
LABELS = {
    "groupcomm": "groupcomm AGREED",
    "zmq": "zmq baseline",
    "cpg": "corosync CPG AGREED",
    "spread": "Spread",
    "redis": "Redis pub/sub",
}
OWN = ("groupcomm", "zmq")  # the sweep's own systems
SPARE = ("tab:cyan", "tab:olive", "tab:pink", "tab:gray", "black")  # red marks failing points


def styles(systems: Sequence[str]) -> dict[str, tuple[str, str]]:
    """System -> (colour, legend label): its own for the known systems; a peer kit curve named
    by its whole label (``cpg-3node-knet-sched_rr``) gets its short name's colour if no other
    curve has it, and its label in parentheses; the rest get a spare colour each."""
    used = {COLOURS[s] for s in systems if s in COLOURS}
    spare = [c for c in SPARE if c not in used]
    out = {}
    for i, system in enumerate(systems):
        short = system.split("-", 1)[0]
        if system in COLOURS:
            out[system] = (COLOURS[system], LABELS[system])
            continue
        # the peer kit's own zmq is not the sweep's baseline
        label = f"{LABELS[short]} ({system})" if short in LABELS else system
        if short in OWN:
            label = f"{system} (peer kit)"
        if short in COLOURS and short not in OWN and COLOURS[short] not in used:
            used.add(COLOURS[short])
            out[system] = (COLOURS[short], label)
        else:
            out[system] = (spare.pop(0) if spare else SPARE[i % len(SPARE)], label)
    return out


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
        look = styles(list(points))
        for i, (system, pts) in enumerate(points.items()):
            colour, label = look[system]
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
                    xytext=(-4, -28 - 26 * i),  # knees at the same rate: one under another
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
