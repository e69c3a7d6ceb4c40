"""The core benchmark on a tiny message count: it forms the view, every node delivers every
message, and the printed fields are there (so the benchmark cannot silently rot)."""

from __future__ import annotations

import json

import pytest

from groupcomm.benchmark.corebench import NAMES, main, measure


def test_every_node_delivers_every_message() -> None:
    result = measure(600, size=32, per_call=10)
    assert result.messages == 600 and result.size == 32 and not result.codec
    assert result.wall_s > 0
    assert [r.node for r in result.nodes] == list(NAMES)
    for r in result.nodes:
        assert r.delivered == 600
        assert r.cpu_s > 0 and r.per_s_cpu > 0
        assert r.per_s_wall == pytest.approx(600 / result.wall_s)


def test_messages_round_up_to_whole_rounds() -> None:
    # 100 // 3 = 33 per node, rounded up to one round of per_call = 100 per node.
    result = measure(100, per_call=100)
    assert result.messages == 300
    assert all(r.delivered == 300 for r in result.nodes)


def test_json_line_with_the_codec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--messages", "300", "--per-call", "50", "--codec", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["codec"] is True and record["messages"] == 300
    assert set(record) == {"messages", "size", "per_call", "codec", "wall_s", "nodes"}
    assert [n["delivered"] for n in record["nodes"]] == [300, 300, 300]


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--messages", "300", "--size", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "core AGREED, 3 nodes, 10 B, 300 messages, codec=False"
    assert lines[1].split()[:2] == ["node", "delivered"]
    assert [line.split()[:2] for line in lines[2:]] == [[n, "300"] for n in NAMES]


def test_refusals_are_usage_errors() -> None:
    for bad in (["--messages", "2"], ["--per-call", "0"], ["--size", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(bad)
        assert exc.value.code == 2
    with pytest.raises(ValueError):
        measure(0)
