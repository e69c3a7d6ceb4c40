"""The view-change benchmark runs end to end on a few groups and reports every client's views."""

from __future__ import annotations

import json

import pytest

from groupcomm.benchmark.viewchange import main


def test_a_partition_over_a_few_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--groups", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["groups"] == 3
    clients = out["clients"]
    assert sorted(clients) == ["d1", "d2", "d3"]
    for name, seen in clients.items():
        assert seen["regular_after"] == 3, name  # one new regular view per group
        assert seen["transitional_after"] == 3, name
        assert 0 < seen["first_s"] <= seen["last_s"] < 30


def test_bad_group_count() -> None:
    with pytest.raises(SystemExit):
        main(["--groups", "0"])
