"""A study's plots: one PNG per ``[[plot]]`` of the study file, a metric's cell means against an
axis with 95 % error bars, one line per metric and value of the series axis.

Series are offset a little along x so that their error bars do not hide each other; a cell where
some runs had no value is annotated ``k/n missing``, one where none had a value is listed under
the plot. matplotlib (the ``bench`` extra, which ``scripts/setup.sh`` installs) is imported only
here, only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.studyreport import STUDY_METRICS, CellSummary, label

if TYPE_CHECKING:
    from sim.studyfile import PlotSpec

STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v")


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable(
            f"plots need matplotlib ({exc}): scripts/setup.sh, or pip install -e .[bench]"
        ) from exc
    return plt


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def write_plot(
    spec: PlotSpec,
    rows: Sequence[CellSummary],
    axes: Sequence[tuple[str, Sequence[Any]]],
    path: Path,
) -> None:
    plt = _pyplot()
    values = dict(axes)
    xs = list(values[spec.x])
    numeric = _numeric(xs)
    pos: dict[str, float] = {label(v): float(v) if numeric else float(i) for i, v in enumerate(xs)}
    series_values: list[Any] = list(values[spec.series]) if spec.series else [None]
    lines = [(m, s) for m in spec.y for s in series_values]
    span = (max(pos.values()) - min(pos.values())) or 1.0
    step = 0.012 * span if numeric and not spec.log_x else 0.05
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    absent: list[str] = []
    try:
        for i, (metric, svalue) in enumerate(lines):
            shift = (i - (len(lines) - 1) / 2) * step
            colour = f"C{series_values.index(svalue) if spec.series else spec.y.index(metric)}"
            missing = _draw_line(ax, spec, rows, pos, metric, svalue, shift, colour)
            if missing is not None:
                absent.append(missing)
        _finish(fig, ax, spec, pos, numeric, len(lines) > 1, absent)
        fig.savefig(path, metadata={"Software": None})
    finally:
        plt.close(fig)


def _draw_line(
    ax: Any,
    spec: PlotSpec,
    rows: Sequence[CellSummary],
    pos: Mapping[str, float],
    metric: str,
    svalue: Any,
    shift: float,
    colour: str,
) -> str | None:
    """One line of the plot: ``metric`` over the cells of series value ``svalue``, shifted by
    ``shift`` along x, with error bars and ``k/n missing`` notes. Returns the line's entry for
    the list of values no run had (None when every cell had one)."""
    px, py, pe = [], [], []
    notes = []
    missed: list[str] = []
    for row in _matching(rows, spec.where, spec.series, svalue):
        xv = label(row.cell[spec.x])
        s = row.stats[metric]
        x = pos[xv] * (1 + shift) if spec.log_x else pos[xv] + shift
        if s.mean is None:
            missed.append(xv)
            continue
        px.append(x)
        py.append(s.mean)
        pe.append(s.ci95 or 0.0)
        if s.missing:
            notes.append((x, s.mean, f"{s.missing}/{s.n + s.missing} missing"))
    absent = None
    if missed:
        where = "" if not px else f" at {spec.x}={', '.join(missed)}"
        absent = _name(metric, spec.series, svalue) + where
    if not px:
        return absent
    style = STYLES[spec.y.index(metric) % len(STYLES)] if spec.series else "-"
    marker = MARKERS[spec.y.index(metric) % len(MARKERS)]
    ax.errorbar(
        px, py, yerr=pe, fmt=marker, linestyle=style, color=colour, capsize=3,
        markersize=4, linewidth=1.2,
        label=_name(metric, spec.series, svalue, alone=len(spec.y) == 1),
    )  # fmt: skip
    for x, y, text in notes:
        ax.annotate(
            text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
            color=colour,
        )  # fmt: skip
    return absent


def _finish(
    fig: Any,
    ax: Any,
    spec: PlotSpec,
    pos: Mapping[str, float],
    numeric: bool,
    several: bool,
    absent: Sequence[str],
) -> None:
    """Ticks, scales, labels, title, grid, the legend (``several`` lines) and the list of
    values no run had, then the layout."""
    if not numeric:
        ax.set_xticks(list(pos.values()), list(pos))
    if spec.log_x:
        ax.set_xscale("log")
    if spec.log_y:
        ax.set_yscale("log")
    ax.set_xlabel(spec.x)
    ax.set_ylabel(spec.ylabel or _unit(spec.y))
    where = ", ".join(f"{k}={label(v)}" for k, v in spec.where.items())
    ax.set_title(spec.title + (f"\n({where})" if where else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    if several and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    if absent:
        fig.text(
            0.01, 0.01, "no value in any run: " + "; ".join(absent), fontsize=6,
            wrap=True, va="bottom",
        )  # fmt: skip
    fig.tight_layout(rect=(0, 0.05 if absent else 0, 1, 1))


def _matching(
    rows: Sequence[CellSummary], where: Mapping[str, Any], series: str | None, value: Any
) -> list[CellSummary]:
    out = []
    for row in rows:
        if any(label(row.cell[k]) != label(v) for k, v in where.items()):
            continue
        if series is not None and label(row.cell[series]) != label(value):
            continue
        out.append(row)
    return out


def _name(metric: str, series: str | None, value: Any, alone: bool = False) -> str:
    """The legend's name of a line (``alone``: the plot's only metric, left unsaid)."""
    if series is None:
        return metric
    return f"{series}={label(value)}" if alone else f"{metric}, {series}={label(value)}"


def _unit(metrics: Sequence[str]) -> str:
    units = {STUDY_METRICS[m].unit for m in metrics}
    return units.pop() if len(units) == 1 else ", ".join(sorted(units))
