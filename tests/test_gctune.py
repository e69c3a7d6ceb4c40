"""``tune_gc``: what it changes in the interpreter (the daemon calls it; applications may)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from groupcomm.client import tune_gc
from groupcomm.gctune import GC_THRESHOLD


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_tune_gc_freezes_start_up_and_makes_young_collections_rare(restored_gc: None) -> None:
    survivor = [object()]  # exists before: frozen out of every collection
    tune_gc()
    assert gc.get_threshold() == (GC_THRESHOLD, 20, 10)
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(survivor)
