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
from sim.checkers.groupviews import regular_conf, split_trans
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
    R3B,
    R4,
    T3A,
    T4A,
    T4B,
    Ev,
    TraceBuilder,
    clean_events,
    crash_events,
    gid,
    tgid,
    to_trace,
)

Mutation = Callable[[list[Ev]], None]

# ---------------------------------------------------------------------------- editing helpers


def _at(events: list[Ev], **match: Any) -> int:
    """Index of the single event whose fields include ``match``."""
    hits = [i for i, e in enumerate(events) if all(e.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, f"{match} matches {len(hits)} events"
    return hits[0]


def _drop(events: list[Ev], **match: Any) -> Ev:
    return events.pop(_at(events, **match))


def _edit(events: list[Ev], changes: dict[str, Any], **match: Any) -> None:
    events[_at(events, **match)].update(changes)


def _edit_all(events: list[Ev], changes: dict[str, Any], **match: Any) -> None:
    """Edit every event whose fields include ``match`` (at least one)."""
    hits = [e for e in events if all(e.get(k) == v for k, v in match.items())]
    assert hits, f"{match} matches no event"
    for e in hits:
        e.update(changes)


def _insert_after(events: list[Ev], new: Ev, **match: Any) -> Ev:
    """Insert ``new`` right after the matching event, at the same time."""
    i = _at(events, **match)
    new["t"] = events[i]["t"]
    events.insert(i + 1, new)
    return new


def _move_after(events: list[Ev], what: dict[str, Any], after: dict[str, Any]) -> Ev:
    return _insert_after(events, _drop(events, **what), **after)


def _move_delivery(events: list[Ev], d: str, p: str, mid: str, after: dict[str, Any]) -> Ev:
    """Move daemon d's delivery of mid after ``after``, its connection p's right behind it."""
    moved = _move_after(events, {"ev": "deliver", "d": d, "mid": mid}, after)
    _move_after(
        events, {"ev": "cdeliver", "p": p, "mid": mid}, {"ev": "deliver", "d": d, "mid": mid}
    )
    return moved


def _drop_delivery(events: list[Ev], d: str, p: str, mid: str, **match: Any) -> None:
    """Daemon d does not deliver mid, so neither does its connection p."""
    _drop(events, ev="deliver", d=d, mid=mid, **match)
    _drop(events, ev="cdeliver", p=p, mid=mid)


def _cdeliver(p: str, d: str, mid: str, svc: str, groups: list[str], sender: str) -> Ev:
    return {
        "ev": "cdeliver", "p": p, "d": d, "mid": mid, "svc": svc, "groups": groups,
        "sender": sender,
    }  # fmt: skip


def _gview(p: str, d: str, group: str, kind: str, gid: str, **extra: Any) -> Ev:
    return {"ev": "gview", "p": p, "d": d, "group": group, "kind": kind, "gid": gid, **extra}


def _send(p: str, d: str, mid: str, svc: str, groups: list[str], conf: str) -> Ev:
    return {
        "ev": "send", "d": d, "p": p, "mid": mid, "svc": svc, "self_discard": False,
        "groups": groups, "conf": conf,
    }  # fmt: skip


def _churn(events: list[Ev]) -> None:
    """Five more re-formations of the full configuration after ``stable`` (L3)."""
    end = events.pop()
    prev = R4
    for e in range(5, 10):
        conf = f"R{e}.d1:0"
        for d in ALL:
            for kind, cid in (("transitional", f"T{e}.d1:0<{prev}"), ("regular", conf)):
                events.append(
                    {"t": end["t"], "ev": "install", "d": d, "conf": cid, "kind": kind,
                     "members": ALL, "epoch": e}
                )  # fmt: skip
        prev = conf
    events.append(end)


# ---------------------------------------------------------------------------- mutations


def trace_after_close(ev: list[Ev]) -> None:
    reject = {"ev": "reject", "p": C2, "d": D2, "op": "multicast", "group": "g", "reason": "x"}
    _insert_after(ev, reject, ev="close", p=C2)


def trace_after_crash(ev: list[Ev]) -> None:
    reject = {"ev": "reject", "p": C3, "d": D3, "op": "leave", "group": "g", "reason": "x"}
    _insert_after(ev, reject, ev="crash", d=D3)


def never_sent(ev: list[Ev]) -> None:
    ghost = {"ev": "deliver", "d": D1, "mid": "ghost", "svc": "RELIABLE", "conf": R4}
    _insert_after(ev, ghost, ev="deliver", d=D1, mid="m12")


def wrong_sender(ev: list[Ev]) -> None:
    _edit(ev, {"sender": C3}, ev="cdeliver", p=C2, mid="m1")


def sent_twice(ev: list[Ev]) -> None:
    _insert_after(ev, _send(C1, D1, "m12", "RELIABLE", ["g"], R4), ev="send", mid="m16")


def before_daemon(ev: list[Ev]) -> None:
    _move_after(ev, {"ev": "cdeliver", "p": C1, "mid": "m1"}, {"ev": "send", "mid": "m1"})


def _numbered(ev: list[Ev]) -> list[Ev]:
    """Number every daemon's deliveries per configuration as the core does (1, 2, ...),
    consistently across daemons (by first delivery), and return the deliver events."""
    dels = [e for e in ev if e["ev"] == "deliver"]
    ordinal: dict[tuple[str, str], int] = {}
    count: dict[str, int] = {}
    for e in dels:
        key = (e["conf"], e["mid"])
        if key not in ordinal:
            count[e["conf"]] = ordinal[key] = count.get(e["conf"], 0) + 1
        e["n"] = ordinal[key]
    return dels


def two_messages_one_position(ev: list[Ev]) -> None:
    dels = _numbered(ev)
    assert check_all(to_trace(ev)) == []  # consistent numbers are clean
    a = dels[0]
    b = next(e for e in dels if e["conf"] == a["conf"] and e["mid"] != a["mid"])
    b["n"] = a["n"]


def one_message_two_positions(ev: list[Ev]) -> None:
    dels = _numbered(ev)
    a = dels[0]
    other = next(e for e in dels if e["mid"] == a["mid"] and e["d"] != a["d"])
    other["n"] = 1000


def early_at_one_daemon_only(ev: list[Ev]) -> None:
    """A RELIABLE message delivered early (n = 0) at one daemon, at its ordinal at another."""
    dels = _numbered(ev)
    m12 = [e for e in dels if e["mid"] == "m12"]
    ordinal = m12[0]["n"]
    for e in m12:
        e["n"] = 0
    assert check_all(to_trace(ev)) == []  # early at every daemon of the configuration: clean
    m12[1]["n"] = ordinal


def agreed_without_ordinal(ev: list[Ev]) -> None:
    """An AGREED message delivered without an ordinal, alike at every daemon: only levels up to
    FIFO are delivered early (protocol/ordering.md section 8.1)."""
    for e in _numbered(ev):
        if e["mid"] == "m14":
            e["n"] = 0


def dup_deliver(ev: list[Ev]) -> None:
    again = {"ev": "deliver", "d": D2, "mid": "m12", "svc": "RELIABLE", "conf": R4}
    _insert_after(ev, again, ev="deliver", d=D2, mid="m12")


def dup_cdeliver(ev: list[Ev]) -> None:
    again = _cdeliver(C1, D1, "m12", "RELIABLE", ["g"], C2)
    _insert_after(ev, again, ev="cdeliver", p=C1, mid="m12")


def deliver_outside_installed(ev: list[Ev]) -> None:
    _move_delivery(ev, D3, C3, "m8", {"ev": "install", "d": D3, "conf": "T3.d3:0<R2.d1:0"})


def deliver_in_later_conf(ev: list[Ev]) -> None:
    _move_delivery(ev, D2, C2, "m10b", {"ev": "install", "d": D2, "conf": R4})["conf"] = R4


def not_self_included(ev: list[Ev]) -> None:
    _edit(ev, {"members": [D1]}, ev="install", d=D3, kind="transitional", epoch=2)


def conf_members_differ(ev: list[Ev]) -> None:
    _edit(ev, {"members": [D1, D2]}, ev="install", d=D2, conf=R4)


def epoch_goes_back(ev: list[Ev]) -> None:
    _edit(ev, {"epoch": 2}, ev="install", d=D3, kind="transitional", epoch=3)


def no_transitional(ev: list[Ev]) -> None:
    _drop(ev, ev="install", d=D3, conf=T4B)


def first_not_regular(ev: list[Ev]) -> None:
    _edit(ev, {"kind": "transitional"}, ev="install", d=D3, conf="R1.d3:0")


def transitional_splits(ev: list[Ev]) -> None:
    """d2 leaves T3A for its own R3.d2:0 while d1 goes to R3.d1:0 (same transitional)."""
    _edit(ev, {"conf": "R3.d2:0"}, ev="install", d=D2, conf=R3A)
    _drop_delivery(ev, D2, C2, "m10")
    _drop_delivery(ev, D2, C2, "m10b")


def delivered_across_change(ev: list[Ev]) -> None:
    _move_delivery(ev, D2, C2, "m10b", {"ev": "install", "d": D2, "conf": T4A})["conf"] = T4A


def sender_misses_own(ev: list[Ev]) -> None:
    _drop_delivery(ev, D3, C3, "m8")


def self_discard_ignored(ev: list[Ev]) -> None:
    own = _cdeliver(C1, D1, "m6", "AGREED", ["g"], C1)
    _insert_after(ev, own, ev="cdeliver", p=C3, mid="m6")


def sets_differ(ev: list[Ev]) -> None:
    _drop_delivery(ev, D2, C2, "m7")


def causal_daemon(ev: list[Ev]) -> None:
    _move_after(
        ev, {"ev": "deliver", "d": D3, "mid": "m4"}, {"ev": "deliver", "d": D3, "mid": "m4b"}
    )


def causal_client(ev: list[Ev]) -> None:
    _move_after(
        ev, {"ev": "cdeliver", "p": C2, "mid": "m4"}, {"ev": "cdeliver", "p": C2, "mid": "m4b"}
    )


def agreed_cycle(ev: list[Ev]) -> None:
    _move_after(
        ev, {"ev": "cdeliver", "p": C2, "mid": "m1"}, {"ev": "cdeliver", "p": C2, "mid": "m2"}
    )


def regular_hole(ev: list[Ev]) -> None:
    _drop_delivery(ev, D3, C3, "m6")


def transitional_hole(ev: list[Ev]) -> None:
    """m8 is sent by d2 (in T3A with d1) instead of d3: d1/d2 skip it in T3A illegally."""
    _edit(ev, {"p": C2, "d": D2}, ev="send", mid="m8")
    _edit(ev, {"sender": C2}, ev="cdeliver", mid="m8")


def safe_regular(ev: list[Ev]) -> None:
    for e in ev:
        if e.get("mid") == "m8":
            e["svc"] = "SAFE"


def safe_transitional(ev: list[Ev]) -> None:
    _drop_delivery(ev, D2, C2, "m9", conf=T3A)


def fifo_client(ev: list[Ev]) -> None:
    _move_after(ev, {"ev": "cdeliver", "mid": "m15a"}, {"ev": "cdeliver", "mid": "m15"})


def reliable_client(ev: list[Ev]) -> None:
    _drop(ev, ev="cdeliver", p=C1, mid="m13")


def reliable_daemon(ev: list[Ev]) -> None:
    _drop(ev, ev="deliver", d=D2, mid="m15")


def open_non_member(ev: list[Ev]) -> None:
    stray = _cdeliver(C3, D3, "m4", "CAUSAL", ["h"], C1)
    _insert_after(ev, stray, ev="cdeliver", p=C2, mid="m4")


def open_member_misses(ev: list[Ev]) -> None:
    _drop(ev, ev="cdeliver", p=C3, mid="m12")  # c3 leaves g later: no view closes the stretch


def multi_groups(ev: list[Ev]) -> None:
    _edit(ev, {"groups": ["g"]}, ev="cdeliver", p=C1, mid="m3")


def multi_101(ev: list[Ev]) -> None:
    big = _send(C1, D1, "big", "UNRELIABLE", [f"g{i}" for i in range(101)], R4)
    _insert_after(ev, big, ev="send", mid="m16")


def priv_view(ev: list[Ev]) -> None:
    view = _gview(
        C1, D1, C3, "regular", gid(R4, C3, 1), members=[C1], cause="JOIN", vs_sets=[[C1]],
        changed=[C1],
    )  # fmt: skip
    _insert_after(ev, view, ev="reject")


def priv_delivery(ev: list[Ev]) -> None:
    stray = _cdeliver(C1, D1, "m5", "RELIABLE", [C3], C2)
    _insert_after(ev, stray, ev="cdeliver", mid="m5")


def view_order(ev: list[Ev]) -> None:
    _edit(ev, {"members": [C2, C1, C3]}, ev="gview", p=C2, gid=gid(R2, "g", 3), kind="regular")


def vsset_network(ev: list[Ev]) -> None:
    _edit(ev, {"vs_sets": [[C1, C2], [C2, C3]]}, ev="gview", p=C3, gid=gid(R4, "g", 1))


def vsset_content(ev: list[Ev]) -> None:
    """c1 and c2 both come from R3.d1:0/g/1 through T4A but are split; c3 is put with c2."""
    _edit_all(ev, {"vs_sets": [[C1], [C2, C3]]}, ev="gview", gid=gid(R4, "g", 1))


def vsset_join(ev: list[Ev]) -> None:
    _edit(ev, {"vs_sets": [[C1]]}, ev="gview", p=C2, gid=gid(R2, "g", 2))


C1_TRANS = tgid(gid(R2, "g", 3), gid(R3A, "g", 1))  # c1's and c2's at the partition
C3_TRANS = tgid(gid(R2, "g", 3), gid(R3B, "g", 1))


def trans_pair(ev: list[Ev]) -> None:
    again = _gview(C3, D3, "g", "transitional", C3_TRANS, members=[C3])
    _insert_after(ev, again, ev="gview", p=C3, kind="transitional")


def trans_wrong_prev(ev: list[Ev]) -> None:
    wrong = tgid(gid(R2, "g", 2), gid(R3A, "g", 1))
    _edit(ev, {"gid": wrong}, ev="gview", p=C1, kind="transitional", gid=C1_TRANS)


def trans_wrong_next(ev: list[Ev]) -> None:
    wrong = tgid(gid(R2, "g", 3), gid(R3A, "g", 1))
    _edit(ev, {"gid": wrong}, ev="gview", p=C3, kind="transitional")


def trans_old_format(ev: list[Ev]) -> None:
    _edit(ev, {"gid": "g/3"}, ev="gview", p=C3, kind="transitional")


def trans_members(ev: list[Ev]) -> None:
    """c1's transitional view claims c3 moves on with it, but c3 is not in the next view."""
    _edit(ev, {"members": [C1, C2, C3]}, ev="gview", p=C1, kind="transitional", gid=C1_TRANS)


def trans_dangling(ev: list[Ev]) -> None:
    """c1 gets a transitional view at the very end and no regular view after it."""
    nxt = tgid(gid(R4, "g", 4), gid("R5.d1:0", "g", 1))
    late = _gview(C1, D1, "g", "transitional", nxt, members=[C1, C3])
    _insert_after(ev, late, ev="reject")


def self_leave_view(ev: list[Ev]) -> None:
    late = _gview(C3, D3, "g", "transitional", tgid(gid(R4, "g", 1), gid(R4, "g", 2)))
    late["members"] = [C3]
    _insert_after(ev, late, ev="gview", p=C3, kind="self_leave")


def views_missed(ev: list[Ev]) -> None:
    """c3 misses the NETWORK view of the merge that the others get (issue 10)."""
    _drop(ev, ev="gview", p=C3, gid=gid(R4, "g", 1))


def view_in_transitional(ev: list[Ev]) -> None:
    """c3 gets the NETWORK view of R3.d3:0 while d3 still has T3.d3:0 installed."""
    _move_after(
        ev,
        {"ev": "gview", "p": C3, "gid": gid(R3B, "g", 1)},
        {"ev": "gview", "p": C3, "gid": C3_TRANS},
    )


def view_bad_gid(ev: list[Ev]) -> None:
    _edit(ev, {"gid": "h/1"}, ev="gview", gid=gid(R2, "h", 1))


def vs_order(ev: list[Ev]) -> None:
    """c2 receives m9 before its transitional view, its vs-mate c1 after it."""
    _move_after(
        ev,
        {"ev": "gview", "p": C2, "gid": C1_TRANS},
        {"ev": "cdeliver", "p": C2, "mid": "m9"},
    )


def vs_set(ev: list[Ev]) -> None:
    _drop(ev, ev="cdeliver", p=C2, mid="m10b")


def safe_member_misses(ev: list[Ev]) -> None:
    """c1 and c2 receive SAFE m2 in view R2.d1:0/g/3; its member c3 never does."""
    _drop(ev, ev="cdeliver", p=C3, mid="m2")


def safe_trans_member_misses(ev: list[Ev]) -> None:
    """c1 receives SAFE m9 after its transitional view listing c2, which never receives it."""
    _drop(ev, ev="cdeliver", p=C2, mid="m9")


def self_leave_message(ev: list[Ev]) -> None:
    late = _cdeliver(C3, D3, "m14", "AGREED", ["g"], C1)
    _insert_after(ev, late, ev="cdeliver", p=C2, mid="m14")


def l1_unknown_live(ev: list[Ev]) -> None:
    ev[-1]["live"] = [*ALL, "d4:0"]


def l2_lost(ev: list[Ev]) -> None:
    _drop_delivery(ev, D3, C3, "m12")


def l4_core_too_slow(ev: list[Ev]) -> None:
    """A core phase over the safety phase whose bound (1 ms) the core's deliveries miss."""
    stable = next(i for i, e in enumerate(ev) if e["ev"] == "stable")
    core = [d.split(":")[0] for d in ALL]
    start = {"t": ev[0]["t"], "ev": "fault", "what": "core", "state": "start", "core": core,
             "until": ev[stable]["t"], "deliver_within_ms": 1}  # fmt: skip
    end = {"t": ev[stable]["t"], "ev": "fault", "what": "core", "state": "end", "core": core,
           "transitive": True}  # fmt: skip
    ev[:] = [start, *ev[:stable], end, *ev[stable:]]


def _case(case_id: str, expected: set[str], mutate: Mutation, base: Any = clean_events) -> Any:
    return pytest.param(base, expected, mutate, id=case_id)


CASES = [
    _case("TRACE-after-close", {"TRACE"}, trace_after_close),
    _case("TRACE-after-crash", {"TRACE"}, trace_after_crash, crash_events),
    _case("EVS-1.1-never-sent", {"EVS-1.1"}, never_sent),
    _case("EVS-1.1-wrong-sender", {"EVS-1.1"}, wrong_sender),
    _case("EVS-1.1-sent-twice", {"EVS-1.1"}, sent_twice),
    _case("EVS-1.1-before-daemon", {"EVS-1.1"}, before_daemon),
    _case("EVS-1.2-daemon", {"EVS-1.2"}, dup_deliver),
    _case("EVS-1.2-connection", {"EVS-1.2", "SP-MULTI"}, dup_cdeliver),
    _case("EVS-1.3", {"EVS-1.3"}, deliver_outside_installed),
    _case("EVS-1.4", {"EVS-1.4", "EVS-2.6", "EVS-4"}, deliver_in_later_conf),
    _case("EVS-2.1", {"EVS-2.1", "EVS-2.4"}, not_self_included),
    _case("EVS-2.2", {"EVS-2.2"}, conf_members_differ),
    _case("EVS-2.3", {"EVS-2.3"}, epoch_goes_back),
    _case("EVS-2.4-no-transitional", {"EVS-2.4"}, no_transitional),
    _case("EVS-2.4-first-not-regular", {"EVS-2.4"}, first_not_regular),
    # c2's views still say it is with c1 in R3.d1:0, which its daemon no longer installs.
    _case("EVS-2.5", {"EVS-2.5", "GV-VIEWS", "GV-VS", "SP-VSSET"}, transitional_splits),
    _case("EVS-2.6", {"EVS-2.6", "EVS-4"}, delivered_across_change),
    _case("EVS-3-self-delivery", {"EVS-3"}, sender_misses_own),
    _case("EVS-3-self-discard", {"EVS-3"}, self_discard_ignored),
    _case("EVS-4", {"EVS-4", "GV-VS"}, sets_differ),
    _case("EVS-5-daemon", {"EVS-5"}, causal_daemon),
    _case("EVS-5-client", {"EVS-5"}, causal_client),
    _case("EVS-6.1", {"EVS-6.1", "EVS-5"}, agreed_cycle),
    _case("EVS-6.2-regular-hole", {"EVS-6.2"}, regular_hole),
    _case("EVS-6.2-transitional-hole", {"EVS-6.2", "EVS-3"}, transitional_hole),
    _case("EVS-7.1", {"EVS-7.1", "GV-SAFE"}, safe_regular),
    _case("EVS-7.2", {"EVS-7.2", "EVS-4", "GV-VS", "GV-SAFE"}, safe_transitional),
    _case("SVC-FIFO", {"SVC-FIFO"}, fifo_client),
    _case("SVC-REL-connection", {"SVC-REL", "SP-OPEN", "GV-VS", "GV-SAFE"}, reliable_client),
    _case("SVC-REL-daemon", {"SVC-REL", "L2"}, reliable_daemon),
    _case("SP-OPEN-non-member", {"SP-OPEN"}, open_non_member),
    _case("SP-OPEN-member-misses", {"SP-OPEN"}, open_member_misses),
    _case("SP-MULTI-groups", {"SP-MULTI"}, multi_groups),
    _case("SP-MULTI-101-groups", {"SP-MULTI"}, multi_101),
    _case("SP-PRIV-view", {"SP-PRIV"}, priv_view),
    _case("SP-PRIV-delivery", {"SP-PRIV", "SP-OPEN"}, priv_delivery),
    _case("SP-VIEW-ORDER", {"SP-VIEW-ORDER"}, view_order),
    _case("SP-VSSET-network", {"SP-VSSET"}, vsset_network),
    _case("SP-VSSET-join", {"SP-VSSET"}, vsset_join),
    _case("SP-VSSET-content", {"SP-VSSET"}, vsset_content),
    _case("SP-TRANS-PAIR", {"SP-TRANS-PAIR"}, trans_pair),
    _case("SP-TRANS-PAIR-wrong-prev", {"SP-TRANS-PAIR"}, trans_wrong_prev),
    _case("SP-TRANS-PAIR-wrong-next", {"SP-TRANS-PAIR"}, trans_wrong_next),
    _case("SP-TRANS-PAIR-old-format", {"SP-TRANS-PAIR"}, trans_old_format),
    _case("SP-TRANS-PAIR-members", {"SP-TRANS-PAIR"}, trans_members),
    _case("SP-TRANS-PAIR-dangling", {"SP-TRANS-PAIR"}, trans_dangling),
    # A transitional view after leaving follows no regular view and is never closed.
    _case("SP-SELF-LEAVE-view", {"SP-SELF-LEAVE", "SP-TRANS-PAIR"}, self_leave_view),
    _case("SP-SELF-LEAVE-message", {"SP-SELF-LEAVE", "SP-OPEN"}, self_leave_message),
    _case("GV-VIEWS-missed", {"GV-VIEWS"}, views_missed),
    _case("GV-VIEWS-in-transitional", {"GV-VIEWS"}, view_in_transitional),
    _case("GV-VIEWS-gid", {"GV-VIEWS"}, view_bad_gid),
    _case("GV-VS-order", {"GV-VS"}, vs_order),
    _case("GV-VS-set", {"GV-VS"}, vs_set),  # SP-OPEN exempts c2: it closes later
    _case("GV-SAFE", {"GV-SAFE", "SP-OPEN"}, safe_member_misses),
    _case("GV-SAFE-transitional", {"GV-SAFE", "GV-VS"}, safe_trans_member_misses),
    _case("RET-POS-two-messages", {"RET-POS"}, two_messages_one_position),
    _case("RET-POS-two-ordinals", {"RET-POS"}, one_message_two_positions),
    _case("RET-POS-early-at-one-daemon", {"RET-POS"}, early_at_one_daemon_only),
    _case("RET-POS-agreed-without-ordinal", {"RET-POS"}, agreed_without_ordinal),
    _case("L1", {"L1"}, l1_unknown_live),
    _case("L2", {"L2"}, l2_lost),
    _case("L3", {"L3"}, _churn),
    _case("L4", {"L4"}, l4_core_too_slow),
]


@pytest.mark.parametrize(("base", "expected", "mutate"), CASES)
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
        assert own and all(v.prop == prop and v.message for v in own)


def test_every_property_has_a_breaking_case() -> None:
    ids = [str(case.id) for case in CASES]
    for prop in CHECKERS:
        assert any(i == prop or i.startswith(prop + "-") for i in ids), prop


@pytest.mark.parametrize("prop", sorted(CHECKERS))
def test_clean_traces_report_nothing_per_checker(prop: str) -> None:
    assert CHECKERS[prop](to_trace(clean_events())) == []
    assert CHECKERS[prop](to_trace(crash_events())) == []


def test_every_prefix_of_a_clean_trace_is_clean() -> None:
    """Safety checks are prefix-closed: a trace cut anywhere (no end) is still valid."""
    for base in (clean_events(), crash_events()):
        for n in range(1, len(base)):
            assert check_all(to_trace(base[:n])) == [], n


def test_l3_bound_is_a_parameter() -> None:
    trace = to_trace(clean_events())
    assert check_l3(trace) == []
    assert check_l3(trace, max_regular=0) == []  # the final merge happened before stable
    events = clean_events()
    _churn(events)
    assert check_l3(to_trace(events), max_regular=5) == []
    assert len(check_l3(to_trace(events), max_regular=4)) == len(ALL)


def test_liveness_needs_stable_and_end() -> None:
    events = [e for e in clean_events() if e["ev"] != "stable"]
    events[-1]["live"] = [D1]
    trace = to_trace(events)
    for prop in ("L1", "L2", "L3", "SVC-REL"):
        assert CHECKERS[prop](trace) == []


def test_liveness_judges_only_what_happens_before_end() -> None:
    # A live harness stops its daemons after writing "end": the views they install while
    # stopping are not part of the run. The same install before "end" is a real L1 failure.
    events = clean_events()
    final = [e for e in events if e["ev"] == "install" and e["d"] == D1][-1]
    shutdown = {**final, "conf": "T9.d1:0<" + final["conf"][1:], "kind": "transitional"}
    shutdown["members"] = [D1]
    after = [*events, {**shutdown, "t": events[-1]["t"] + 1}]
    assert CHECKERS["L1"](to_trace(after)) == []
    before = [*events[:-1], {**shutdown, "t": events[-1]["t"]}, events[-1]]
    assert [v.prop for v in CHECKERS["L1"](to_trace(before))] == ["L1"]


def test_failing_sender_is_exempt_from_self_delivery() -> None:
    events = crash_events()
    assert CHECKERS["EVS-3"](to_trace(events)) == []
    _drop(events, ev="crash", d=D3)  # d3:0 just stops: the trace ends before its next regular
    assert CHECKERS["EVS-3"](to_trace(events)) == []


def test_violation_messages_name_the_parties() -> None:
    events = clean_events()
    sender_misses_own(events)
    (v,) = CHECKERS["EVS-3"](to_trace(events))
    assert D3 in v.message and "m8" in v.message and R2 in v.message
    assert str(v).startswith("EVS-3 t=")


def test_transitional_hole_of_an_absent_sender_is_allowed() -> None:
    trace = to_trace(clean_events())
    assert [e.conf for e in trace.delivers[D1] if e.mid == "m9"] == [T3A]
    assert "m8" not in {e.mid for e in trace.delivers[D1]}
    assert CHECKERS["EVS-6.2"](trace) == []


def issue_10_events(fixed: bool) -> list[Ev]:
    """Swarm seed 7310022, group g2 (issue 10): d5 (c9, c10) is cut off from d1/d2 (c1, c7,
    c8); c2 and c6 join in the other side's transitional configuration; all merge in R4.d2:0.
    Before the fix c9 got no NETWORK view and the joiners shared a vs_set with c1, c7, c8."""
    d1, d2, d5 = "d1:0", "d2:0", "d5:0"
    daemons = [d1, d2, d5]
    hosts = ((1, d1), (6, d1), (2, d2), (7, d2), (8, d2), (9, d5), (10, d5))
    c = {n: f"#c{n}#{d}" for n, d in hosts}
    r3, r4 = "R3.d1:0", "R4.d2:0"
    b = TraceBuilder()
    for d in daemons:
        b.install(d, f"R1.{d}", "regular", [d], 1)
    for n, d in hosts:
        b.open(c[n], d)
    for d in daemons:
        b.change(d, f"T3.{d}<R1.{d}", [d], r3, daemons, 3)
    members: list[str] = []
    for k, n in enumerate((1, 7, 8, 9, 10), start=1):
        members = sorted([*members, c[n]])
        b.member_change("g2", gid(r3, "g2", k), members, "JOIN", c[n], members)
    b.multicast(c[1], "a1", "AGREED", ["g2"], r3, daemons, members)
    b.send(c[1], "a2", "AGREED", ["g2"], r3)
    last, nxt = gid(r3, "g2", 5), gid(r4, "g2", 1)
    side_a, side_b = [c[1], c[7], c[8]], [c[10], c[9]]
    for d in (d1, d2):
        b.install(d, f"T4.d2:0<{r3}", "transitional", [d1, d2], 4)
    b.trans_view(side_a, "g2", last, nxt)
    for d in (d1, d2):  # the joins of c2 and c6 in this transitional part are silent
        b.deliver(d, "a2", "AGREED", f"T4.d2:0<{r3}")
    for p in side_a:
        b.cdeliver(p, "a2", "AGREED", ["g2"], c[1])
    b.install(d5, f"T4.d5:0<{r3}", "transitional", [d5], 4)
    b.trans_view(side_b, "g2", last, nxt)
    for d in daemons:
        b.install(d, r4, "regular", daemons, 4)
    everyone = sorted(c.values())
    if fixed:
        b.regular_view(everyone, "g2", nxt, everyone, "NETWORK", [side_a, [c[2], c[6]], side_b])
    else:
        buggy = [side_b, [c[1], c[2], c[6], c[7], c[8]]]
        b.regular_view([p for p in everyone if p != c[9]], "g2", nxt, everyone, "NETWORK", buggy)
    b.emit("stable")
    b.emit("end", live=daemons)
    return b.events


def test_issue_10_missing_network_view_is_reported() -> None:
    assert check_all(to_trace(issue_10_events(fixed=True))) == []
    trace = to_trace(issue_10_events(fixed=False))
    found = check_all(trace)
    assert {v.prop for v in found} == {"GV-VIEWS", "SP-VSSET", "SP-TRANS-PAIR"}, found
    (missed,) = CHECKERS["GV-VIEWS"](trace)
    assert "#c9#d5:0" in missed.message and "R4.d2:0/g2/1" in missed.message
    (dangling,) = CHECKERS["SP-TRANS-PAIR"](trace)
    assert "#c9#d5:0" in dangling.message and "never followed" in dangling.message
    (mixed,) = CHECKERS["SP-VSSET"](trace)
    assert "#c2#d2:0" in mixed.message and "no view" in mixed.message


def test_gid_parsing() -> None:
    trace = to_trace(clean_events())
    assert regular_conf(trace, gid(R4, "g", 2), "g") == R4
    assert regular_conf(trace, gid(R4, "a/b", 1), "a/b") == R4  # group names may hold "/"
    assert regular_conf(trace, gid(T4A, "g", 1), "g") is None  # not a regular configuration
    assert regular_conf(trace, gid(R4, "g", 0), "g") is None
    assert regular_conf(trace, "g/1", "g") is None
    assert split_trans(tgid("a/g/1", "b/g/1")) == ("a/g/1", "b/g/1")
    assert split_trans("a/g/1") is None and split_trans("a > b > c") is None
