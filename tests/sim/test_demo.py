"""The README's main job: the narrated partition-and-merge demo succeeds and shows its claims."""

from __future__ import annotations

from sim.demo import run_demo


def test_demo_shows_partition_and_merge() -> None:
    lines: list[str] = []
    assert run_demo(lines.append) == 0
    text = "\n".join(lines)
    assert "TRANSITIONAL view" in text
    assert "NETWORK view ['#app#d3'] vs_sets [#app#d3]" in text  # the cut-off side
    assert "vs_sets [#app#d1,#app#d2 | #app#d3]" in text  # the merge, two vs_sets
    assert "properties violated: 0" in text
