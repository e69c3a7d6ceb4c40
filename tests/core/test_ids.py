"""``ViewId`` compares, hashes and orders exactly as the tuple ``(epoch, coord)`` (EVS-2.3 relies
on the order), now that its methods are written out for the compiled build (``core/ids.py``)."""

from __future__ import annotations

import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from groupcomm.core.ids import ViewId

views = st.builds(ViewId, st.integers(0, 3), st.sampled_from(["d1", "d2", "d10"]))
OPS = [operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]


@given(views, views)
def test_view_ids_compare_and_hash_as_their_tuples(a: ViewId, b: ViewId) -> None:
    ta, tb = (a.epoch, a.coord), (b.epoch, b.coord)
    for op in OPS:
        assert op(a, b) == op(ta, tb), op.__name__
    if a == b:
        assert hash(a) == hash(b)
    assert (max(a, b).epoch, max(a, b).coord) == max(ta, tb)


def test_a_view_id_equals_no_other_type_and_does_not_order_against_one() -> None:
    v = ViewId(1, "d1")
    assert v != (1, "d1")
    assert not v == "1.d1"  # noqa: SIM201 - the == path itself is under test
    with pytest.raises(TypeError):
        _ = v < (2, "d1")  # type: ignore[operator]
    assert {v: 1}[ViewId(epoch=1, coord="d1")] == 1
    assert str(v) == "1.d1"
    assert repr(v) == "ViewId(epoch=1, coord='d1')"
