"""The trace loader: validation errors name the line, indexes and configuration queries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.trace import (
    End,
    Fault,
    GView,
    Reject,
    Trace,
    TraceError,
    load_trace,
    load_traces,
    parse_lines,
)
from tests.sim.test_checker_builder import (
    D1,
    D2,
    D3,
    R2,
    R3A,
    R3B,
    T3A,
    T3B,
    T4A,
    clean_events,
    to_trace,
)

INSTALL: dict[str, Any] = {
    "t": 0,
    "ev": "install",
    "d": D1,
    "conf": "R1.d1:0",
    "kind": "regular",
    "members": [D1],
    "epoch": 1,
}


def _lines(*objs: Any) -> list[str]:
    return [json.dumps(o) for o in objs]


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"t": 1, "ev": "bogus"}, "unknown or missing 'ev' 'bogus'"),
        ({"t": 1}, "unknown or missing 'ev' None"),
        ({"t": 1, "ev": "crash"}, "missing field 'd'"),
        ({"ev": "crash", "d": D1}, "missing field 't'"),
        ({"t": "1", "ev": "crash", "d": D1}, "field 't' must be an integer"),
        ({"t": True, "ev": "crash", "d": D1}, "field 't' must be an integer"),
        ({**INSTALL, "t": 1, "members": D1}, "field 'members' must be a list of strings"),
        ({**INSTALL, "t": 1, "kind": "weird"}, "field 'kind' must be one of"),
        ({**INSTALL, "t": 1, "epoch": None}, "field 'epoch' must be an integer"),
        ({"t": 1, "ev": "deliver", "d": D1, "mid": "m", "svc": "FAST", "conf": "c"}, "'svc'"),
        (
            {
                "t": 1,
                "ev": "gview",
                "p": "#a#d1:0",
                "d": D1,
                "group": "g",
                "kind": "regular",
                "gid": "x",
                "members": ["#a#d1:0"],
                "cause": "JOIN",
                "changed": [],
            },
            "missing field 'vs_sets'",
        ),
        (
            {
                "t": 1,
                "ev": "gview",
                "p": "#a#d1:0",
                "d": D1,
                "group": "g",
                "kind": "regular",
                "gid": "x",
                "members": [],
                "cause": "LEAVE",
                "vs_sets": [],
            },
            "missing field 'changed'",
        ),
        (
            {
                "t": 1,
                "ev": "gview",
                "p": "#a#d1:0",
                "d": D1,
                "group": "g",
                "kind": "self_leave",
                "gid": "x",
            },
            "missing field 'cause'",
        ),
        (
            {
                "t": 1,
                "ev": "reject",
                "p": "#a#d1:0",
                "d": D1,
                "op": "join",
                "group": 3,
                "reason": "r",
            },
            "'group' must be a string or null",
        ),
        (
            {
                "t": 1,
                "ev": "send",
                "d": D1,
                "p": "#a#d1:0",
                "mid": "m",
                "svc": "SAFE",
                "self_discard": "no",
                "groups": ["g"],
                "conf": "c",
            },
            "'self_discard' must be a boolean",
        ),
        ({"t": 1, "ev": "end", "live": [1]}, "'live' must be a list of strings"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_invalid_line_is_rejected_with_its_line_number(bad: Any, needle: str) -> None:
    with pytest.raises(TraceError) as err:
        load_trace(_lines(INSTALL, bad))
    assert "line 2" in str(err.value)
    assert needle in str(err.value)


def test_invalid_json_and_time_going_backwards() -> None:
    with pytest.raises(TraceError, match=r"line 2: invalid JSON"):
        load_trace([json.dumps(INSTALL), "{not json"])
    with pytest.raises(TraceError, match=r"line 2: time goes backwards"):
        load_trace(_lines({**INSTALL, "t": 5}, {"t": 4, "ev": "stable"}))


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps(INSTALL) + "\n\n" + json.dumps({"t": 1, "ev": "x"}) + "\n")
    with pytest.raises(TraceError, match=r"run\.jsonl:3"):
        load_trace(path)


def test_optional_fields_and_blank_lines() -> None:
    events = parse_lines(
        [
            "",
            json.dumps(
                {
                    "t": 1,
                    "ev": "gview",
                    "p": "#a#d1:0",
                    "d": D1,
                    "group": "g",
                    "kind": "transitional",
                    "gid": "x",
                }
            ),
            json.dumps(
                {
                    "t": 2,
                    "ev": "reject",
                    "p": "#a#d1:0",
                    "d": D1,
                    "op": "multicast",
                    "group": None,
                    "reason": "too many groups",
                }
            ),
            json.dumps({"t": 3, "ev": "fault", "what": "loss", "rate": 0.2}),
            json.dumps({"t": 4, "ev": "end", "live": [D1], "extra": "ignored"}),
            "   ",
        ]
    )
    gview, reject, fault, end = events
    assert isinstance(gview, GView) and gview.members == () and gview.cause is None
    assert isinstance(reject, Reject) and reject.group is None
    assert isinstance(fault, Fault) and fault.details == {"rate": 0.2}
    assert isinstance(end, End) and end.live == (D1,)
    assert [e.idx for e in events] == [0, 1, 2, 3]


def test_dict_lines_are_accepted() -> None:
    trace = load_trace([INSTALL, {"t": 1, "ev": "stable"}])
    assert len(trace.events) == 2 and trace.stable is not None


def test_trace_requires_consistent_indexes() -> None:
    events = parse_lines(_lines(INSTALL, {"t": 1, "ev": "stable"}))
    with pytest.raises(TraceError, match="idx"):
        Trace(list(reversed(events)))


def test_merge_of_several_files_is_stable_by_time(tmp_path: Path) -> None:
    events = clean_events()
    by_daemon: dict[str, list[str]] = {}
    for e in events:
        by_daemon.setdefault(e.get("d", D1), []).append(json.dumps(e))
    paths = []
    for d, lines in sorted(by_daemon.items(), reverse=True):
        path = tmp_path / f"{d}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    merged = load_traces(paths)
    original = to_trace(events)
    assert [e.idx for e in merged.events] == list(range(len(events)))
    assert [(e.t, type(e)) for e in merged.events] == [(e.t, type(e)) for e in original.events]


def test_indexes_and_configuration_queries() -> None:
    trace = to_trace(clean_events())
    assert trace.daemons == [D1, D2, D3]
    assert trace.next_install(D1, R2) is not None
    assert trace.trans_after(D1, R2) == T3A
    assert trace.trans_after(D3, R2) == T3B
    assert trace.trans_after(D1, T3A) is None
    nxt = trace.next_regular(D1, R2)
    assert nxt is not None and nxt.conf == R3A
    assert trace.survives(D1, R2) and trace.survives(D3, R3B)
    assert not trace.survives(D3, R3A)  # never installed it
    assert not trace.survives(D1, "R4.d1:0")  # the trace ends in it
    assert trace.members(T4A) == {D1, D2}
    assert trace.members("nope") == frozenset()
    assert trace.install_pos(D2, R2) == 2
    assert trace.sender_daemon("m8") == D3 and trace.sender_daemon("nope") is None
    assert trace.svc_rank("m2") == 5 and trace.svc_rank("nope") == 0
    send = trace.sends["m9"]
    cur = trace.current_install(send)
    assert cur is not None and cur.conf == R2
    assert trace.end is not None and trace.stable is not None
    assert set(trace.closes) == {"#c2#d2:0"} and D1 not in trace.crashes


def test_a_reused_private_name_is_a_new_connection() -> None:
    # A client reconnects with the same private name to its restarted daemon: the second life
    # is a separate connection, and later references to the name mean it.
    from sim.trace import Close, GView, Open, load_trace

    lines = [
        {
            "t": 0,
            "ev": "install",
            "d": "d1:0",
            "conf": "R0.d1:0",
            "kind": "regular",
            "members": ["d1:0"],
            "epoch": 0,
        },
        {"t": 1, "ev": "open", "p": "#a#d1", "d": "d1:0"},
        {"t": 2, "ev": "close", "p": "#a#d1", "d": "d1:0"},
        {
            "t": 3,
            "ev": "install",
            "d": "d1:1",
            "conf": "R0.d1:1",
            "kind": "regular",
            "members": ["d1:1"],
            "epoch": 0,
        },
        {"t": 4, "ev": "open", "p": "#a#d1", "d": "d1:1"},
        {
            "t": 5,
            "ev": "gview",
            "p": "#a#d1",
            "d": "d1:1",
            "group": "g",
            "kind": "regular",
            "gid": "x/g/1",
            "members": ["#a#d1"],
            "cause": "JOIN",
            "vs_sets": [["#a#d1"]],
            "changed": ["#a#d1"],
        },
    ]
    events = load_trace(lines).events
    assert [e.p for e in events if isinstance(e, (Open, Close))] == ["#a#d1", "#a#d1", "#a#d1~2"]
    view = next(e for e in events if isinstance(e, GView))
    assert view.p == "#a#d1~2" and view.members == ("#a#d1~2",)


def test_an_open_merged_before_another_daemons_view_of_the_same_millisecond(
    tmp_path: Path,
) -> None:
    # A client of a restarted daemon reuses its private name; its open (on d3) and the view
    # another daemon (d1) delivers with it fall in one millisecond. The view means the new life:
    # merged first, it was read as the old one (a false SP-VIEW-ORDER in a live test).
    from sim.trace import GView, Open

    def install(t: int, d: str) -> dict[str, Any]:
        conf = "R0.d1:0"
        return {
            "t": t,
            "ev": "install",
            "d": d,
            "conf": conf,
            "kind": "regular",
            "members": [d],
            "epoch": 0,
        }

    view = {
        "t": 10,
        "ev": "gview",
        "p": "#a#d1",
        "d": "d1:0",
        "group": "g",
        "kind": "regular",
        "gid": "x/g/2",
        "members": ["#a#d1", "#a#d3"],
        "cause": "JOIN",
        "vs_sets": [["#a#d3"]],
        "changed": ["#a#d3"],
    }
    d1 = [install(0, "d1:0"), view]
    d3 = [
        install(0, "d3:0"),
        {"t": 1, "ev": "open", "p": "#a#d3", "d": "d3:0"},
        install(9, "d3:1"),
        {"t": 10, "ev": "open", "p": "#a#d3", "d": "d3:1"},
    ]
    paths = []
    for name, lines in (("d1", d1), ("d3", d3)):  # d1's file first: it wins plain ties
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in lines))
        paths.append(path)
    events = load_traces(paths).events
    opens = [e for e in events if isinstance(e, Open)]
    merged_view = next(e for e in events if isinstance(e, GView))
    assert [o.p for o in opens] == ["#a#d3", "#a#d3~2"]
    assert opens[1].idx < merged_view.idx
    assert merged_view.members == ("#a#d1", "#a#d3~2")
