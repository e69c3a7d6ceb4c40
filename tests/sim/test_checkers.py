"""Every property checker against a hand-broken copy of a clean trace.

Each case edits the clean run (tests/sim/test_checker_builder.py) so that it breaks one property
and asserts that exactly the expected properties are reported: the target plus, where the
semantics make it unavoidable, the properties that necessarily break along with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sim.checkers import CHECKERS, check_all
from sim.checkers.liveness import check_l3
from tests.sim.test_checker_builder import (
    ALL,
    C1,
    C2,
    C3,
    D1,
    D2,
    D3,
    R2,
    R3A,
    R4,
    T3A,
    T4A,
    T4B,
    Ev,
    clean_events,
    crash_events,
    to_trace,
)

Mutation = Callable[[list[Ev]], None]


def _at(events: list[Ev], **match: Any) -> int:
    """Index of the single event whose fields include ``match``."""
    hits = [i for i, e in enumerate(events) if all(e.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, f"{match} matches {len(hits)} events"
    return hits[0]


def _drop(events: list[Ev], **match: Any) -> Ev:
    return events.pop(_at(events, **match))


def _edit(events: list[Ev], changes: dict[str, Any], **match: Any) -> None:
    events[_at(events, **match)].update(changes)


def _insert_after(events: list[Ev], new: Ev, **match: Any) -> Ev:
    """Insert ``new`` right after the matching event, at the same time."""
    i = _at(events, **match)
    new["t"] = events[i]["t"]
    events.insert(i + 1, new)
    return new


def _move_after(events: list[Ev], what: dict[str, Any], after: dict[str, Any]) -> Ev:
    return _insert_after(events, _drop(events, **what), **after)


def _churn(events: list[Ev]) -> None:
    """Five more re-formations of the full configuration after ``stable`` (L3)."""
    end = events.pop()
    prev = R4
    for e in range(5, 10):
        conf = f"R{e}.d1:0"
        for d in ALL:
            for kind, cid in (("transitional", f"T{e}.d1:0<{prev}"), ("regular", conf)):
                events.append({"t": end["t"], "ev": "install", "d": d, "conf": cid, "kind": kind,
                               "members": ALL, "epoch": e})  # fmt: skip
        prev = conf
    events.append(end)


def _set_svc(events: list[Ev], mid: str, svc: str) -> None:
    for e in events:
        if e.get("mid") == mid:
            e["svc"] = svc


def _gview(p: str, d: str, group: str, kind: str, gid: str, **extra: Any) -> Ev:
    return {"ev": "gview", "p": p, "d": d, "group": group, "kind": kind, "gid": gid, **extra}


def _cdeliver(p: str, d: str, mid: str, svc: str, groups: list[str], sender: str) -> Ev:
    return {"ev": "cdeliver", "p": p, "d": d, "mid": mid, "svc": svc, "groups": groups,
            "sender": sender}  # fmt: skip


def _reassign_m8(ev: list[Ev]) -> None:
    """m8 is sent by d2 (in T3A with d1) instead of d3: d1/d2 skip it in T3A illegally."""
    _edit(ev, {"p": C2, "d": D2}, ev="send", mid="m8")
    _edit(ev, {"sender": C2}, ev="cdeliver", mid="m8")


def _not_regular_first(ev: list[Ev]) -> None:
    _edit(ev, {"kind": "transitional"}, ev="install", d=D3, conf="R1.d3:0")


def _c2_r3(ev: list[Ev]) -> None:
    """d2 leaves T3A for its own R3.d2:0 while d1 goes to R3.d1:0 (same transitional)."""
    _edit(ev, {"conf": "R3.d2:0"}, ev="install", d=D2, conf=R3A)
    _drop(ev, ev="deliver", d=D2, mid="m10")
    _drop(ev, ev="deliver", d=D2, mid="m10b")


# (case id, base trace, expected properties, mutation)
CASES: list[tuple[str, Callable[[], list[Ev]], set[str], Mutation]] = [
    ("TRACE-after-close", clean_events, {"TRACE"}, lambda ev: _insert_after(
        ev, {"ev": "reject", "p": C2, "d": D2, "op": "multicast", "group": "g", "reason": "x"},
        ev="close", p=C2)),
    ("TRACE-after-crash", crash_events, {"TRACE"}, lambda ev: _insert_after(
        ev, {"ev": "reject", "p": C3, "d": D3, "op": "leave", "group": "g", "reason": "x"},
        ev="crash", d=D3)),
    ("EVS-1.1-never-sent", clean_events, {"EVS-1.1"}, lambda ev: _insert_after(
        ev, {"ev": "deliver", "d": D1, "mid": "ghost", "svc": "RELIABLE", "conf": R4},
        ev="deliver", d=D1, mid="m12")),
    ("EVS-1.1-wrong-sender", clean_events, {"EVS-1.1"},
     lambda ev: _edit(ev, {"sender": C3}, ev="cdeliver", p=C2, mid="m1")),
    ("EVS-1.1-sent-twice", clean_events, {"EVS-1.1"}, lambda ev: _insert_after(
        ev, {"ev": "send", "d": D1, "p": C1, "mid": "m12", "svc": "RELIABLE",
             "self_discard": False, "groups": ["g"], "conf": R4}, ev="send", mid="m16")),
    ("EVS-1.2-daemon", clean_events, {"EVS-1.2"}, lambda ev: _insert_after(
        ev, {"ev": "deliver", "d": D2, "mid": "m12", "svc": "RELIABLE", "conf": R4},
        ev="deliver", d=D2, mid="m12")),
    ("EVS-1.2-connection", clean_events, {"EVS-1.2", "SP-MULTI"}, lambda ev: _insert_after(
        ev, _cdeliver(C1, D1, "m12", "RELIABLE", ["g"], C2), ev="cdeliver", p=C1, mid="m12")),
    ("EVS-1.3", clean_events, {"EVS-1.3"}, lambda ev: _move_after(
        ev, {"ev": "deliver", "d": D3, "mid": "m8"}, {"ev": "install", "d": D3, "kind": "transitional",
                                                      "epoch": 3})),  # fmt: skip
    ("EVS-1.4", clean_events, {"EVS-1.4", "EVS-2.6", "EVS-4"}, lambda ev: _move_after(
        ev, {"ev": "deliver", "d": D2, "mid": "m10b"}, {"ev": "install", "d": D2, "conf": R4}
    ).update(conf=R4)),
    ("EVS-2.1", clean_events, {"EVS-2.1", "EVS-2.4"}, lambda ev: _edit(
        ev, {"members": [D1]}, ev="install", d=D3, kind="transitional", epoch=2)),
    ("EVS-2.2", clean_events, {"EVS-2.2"},
     lambda ev: _edit(ev, {"members": [D1, D2]}, ev="install", d=D2, conf=R4)),
    ("EVS-2.3", clean_events, {"EVS-2.3"}, lambda ev: _edit(
        ev, {"epoch": 2}, ev="install", d=D3, kind="transitional", epoch=3)),
    ("EVS-2.4-no-transitional", clean_events, {"EVS-2.4"},
     lambda ev: _drop(ev, ev="install", d=D3, conf=T4B)),
    ("EVS-2.4-first-not-regular", clean_events, {"EVS-2.4"}, _not_regular_first),
    ("EVS-2.5", clean_events, {"EVS-2.5"}, _c2_r3),
    ("EVS-2.6", clean_events, {"EVS-2.6", "EVS-4"}, lambda ev: _move_after(
        ev, {"ev": "deliver", "d": D2, "mid": "m10b"}, {"ev": "install", "d": D2, "conf": T4A}
    ).update(conf=T4A)),
    ("EVS-3-self-delivery", clean_events, {"EVS-3"},
     lambda ev: _drop(ev, ev="deliver", d=D3, mid="m8")),
    ("EVS-3-self-discard", clean_events, {"EVS-3"}, lambda ev: _insert_after(
        ev, _cdeliver(C1, D1, "m6", "AGREED", ["g"], C1), ev="cdeliver", p=C3, mid="m6")),
    ("EVS-4", clean_events, {"EVS-4"}, lambda ev: _drop(ev, ev="deliver", d=D2, mid="m7")),
    ("EVS-5", clean_events, {"EVS-5"}, lambda ev: _move_after(
        ev, {"ev": "deliver", "d": D3, "mid": "m4"}, {"ev": "deliver", "d": D3, "mid": "m4b"})),
    ("EVS-6.1", clean_events, {"EVS-6.1"}, lambda ev: _move_after(
        ev, {"ev": "cdeliver", "p": C2, "mid": "m1"}, {"ev": "cdeliver", "p": C2, "mid": "m2"})),
    ("EVS-6.2-regular-hole", clean_events, {"EVS-6.2"},
     lambda ev: _drop(ev, ev="deliver", d=D3, mid="m6")),
    ("EVS-6.2-transitional-hole", clean_events, {"EVS-6.2", "EVS-3"}, _reassign_m8),
    ("EVS-7.1", clean_events, {"EVS-7.1"}, lambda ev: _set_svc(ev, "m8", "SAFE")),
    ("EVS-7.2", clean_events, {"EVS-7.2", "EVS-4"},
     lambda ev: _drop(ev, ev="deliver", d=D2, mid="m9", conf=T3A)),
    ("SVC-FIFO", clean_events, {"SVC-FIFO"}, lambda ev: _move_after(
        ev, {"ev": "cdeliver", "p": C2, "mid": "m4"}, {"ev": "cdeliver", "p": C2, "mid": "m6"})),
    ("SVC-REL-connection", clean_events, {"SVC-REL"},
     lambda ev: _drop(ev, ev="cdeliver", p=C1, mid="m13")),
    ("SVC-REL-daemon", clean_events, {"SVC-REL", "L2"},
     lambda ev: _drop(ev, ev="deliver", d=D2, mid="m15")),
    ("SP-OPEN", clean_events, {"SP-OPEN"}, lambda ev: _insert_after(
        ev, _cdeliver(C3, D3, "m4", "CAUSAL", ["h"], C1), ev="cdeliver", p=C2, mid="m4")),
    ("SP-MULTI-groups", clean_events, {"SP-MULTI"},
     lambda ev: _edit(ev, {"groups": ["g"]}, ev="cdeliver", p=C1, mid="m3")),
    ("SP-MULTI-101-groups", clean_events, {"SP-MULTI"}, lambda ev: _insert_after(
        ev, {"ev": "send", "d": D1, "p": C1, "mid": "big", "svc": "UNRELIABLE",
             "self_discard": False, "groups": [f"g{i}" for i in range(101)], "conf": R4},
        ev="send", mid="m16")),
    ("SP-PRIV-view", clean_events, {"SP-PRIV"}, lambda ev: _insert_after(
        ev, _gview(C1, D1, C3, "regular", "x/1", members=[C1], cause="JOIN", vs_sets=[[C1]],
                   changed=[C1]), ev="reject")),
    ("SP-PRIV-delivery", clean_events, {"SP-PRIV", "SP-OPEN"}, lambda ev: _insert_after(
        ev, _cdeliver(C1, D1, "m5", "RELIABLE", [C3], C2), ev="cdeliver", mid="m5")),
    ("SP-VIEW-ORDER", clean_events, {"SP-VIEW-ORDER"},
     lambda ev: _edit(ev, {"members": [C2, C1, C3]}, ev="gview", p=C2, gid="g/3", kind="regular")),
    ("SP-VSSET-network", clean_events, {"SP-VSSET"},
     lambda ev: _edit(ev, {"vs_sets": [[C1, C2], [C2, C3]]}, ev="gview", p=C3, gid="g/5")),
    ("SP-VSSET-join", clean_events, {"SP-VSSET"},
     lambda ev: _edit(ev, {"vs_sets": [[C1]]}, ev="gview", p=C2, gid="g/2")),
    ("SP-TRANS-PAIR", clean_events, {"SP-TRANS-PAIR"}, lambda ev: _insert_after(
        ev, _gview(C3, D3, "g", "transitional", "g/3"), ev="gview", p=C3, kind="transitional")),
    ("SP-SELF-LEAVE-view", clean_events, {"SP-SELF-LEAVE"}, lambda ev: _insert_after(
        ev, _gview(C3, D3, "g", "transitional", "g/6"), ev="gview", p=C3, kind="self_leave")),
    ("SP-SELF-LEAVE-message", clean_events, {"SP-SELF-LEAVE", "SP-OPEN"}, lambda ev: _insert_after(
        ev, _cdeliver(C3, D3, "m14", "AGREED", ["g"], C1), ev="cdeliver", p=C2, mid="m14")),
    ("L1", clean_events, {"L1"}, lambda ev: ev[-1].update(live=[*ALL, "d4:0"])),
    ("L2", clean_events, {"L2"}, lambda ev: _drop(ev, ev="deliver", d=D3, mid="m12")),
    ("L3", clean_events, {"L3"}, _churn),
]


@pytest.mark.parametrize(
    ("base", "expected", "mutate"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_broken_trace_is_reported(
    base: Callable[[], list[Ev]], expected: set[str], mutate: Mutation
) -> None:
    events = base()
    assert check_all(to_trace(events)) == []
    mutate(events)
    trace = to_trace(events)
    found = check_all(trace)
    assert {v.prop for v in found} == expected, "\n".join(map(str, found))
    for prop in expected:
        own = CHECKERS[prop](trace)
        assert own and all(v.prop == prop for v in own)
        assert all(v.message for v in own)


def test_every_property_has_a_breaking_case() -> None:
    ids = [c[0] for c in CASES]
    for prop in CHECKERS:
        assert any(i == prop or i.startswith(prop + "-") for i in ids), prop


@pytest.mark.parametrize("prop", sorted(CHECKERS))
def test_clean_traces_report_nothing_per_checker(prop: str) -> None:
    assert CHECKERS[prop](to_trace(clean_events())) == []
    assert CHECKERS[prop](to_trace(crash_events())) == []


def test_l3_bound_is_a_parameter() -> None:
    trace = to_trace(clean_events())
    assert check_l3(trace) == []
    assert check_l3(trace, max_regular=0) == []  # the final merge happened before stable
    events = clean_events()
    _churn(events)
    assert len(check_l3(to_trace(events), max_regular=5)) == 0
    assert len(check_l3(to_trace(events), max_regular=4)) == len(ALL)


def test_liveness_needs_stable_and_end() -> None:
    events = [e for e in clean_events() if e["ev"] != "stable"]
    events[-1]["live"] = [D1]
    trace = to_trace(events)
    for prop in ("L1", "L2", "L3", "SVC-REL"):
        assert CHECKERS[prop](trace) == []


def test_failing_sender_is_exempt_from_self_delivery() -> None:
    events = crash_events()
    assert CHECKERS["EVS-3"](to_trace(events)) == []
    _drop(events, ev="crash", d=D3)  # d3:0 now just stops: the trace ends before its next regular
    assert CHECKERS["EVS-3"](to_trace(events)) == []


def test_violation_messages_name_the_parties() -> None:
    events = clean_events()
    _drop(events, ev="deliver", d=D3, mid="m8")
    (v,) = CHECKERS["EVS-3"](to_trace(events))
    assert D3 in v.message and "m8" in v.message and R2 in v.message
    assert str(v).startswith("EVS-3 t=")
