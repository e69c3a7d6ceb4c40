"""Group views across daemon configurations (issue 10; protocol/membership.md section 12).

The worked example is swarm seed 7310022: daemon d5 is cut off while its connections c9 and c10
are members of g2 with connections on d1-d4; the transitional configuration delivers JOIN
operations of connections on d1-d4; then d5 merges back. Before the fix c9 and c10 got JOIN
views listing members outside their configuration and no NETWORK view at the merge.
"""

from __future__ import annotations

from groupcomm.core.commands import DeliverMembership
from groupcomm.core.groups import GroupOp, GroupsEntry, GroupTable, Table, joined_by, trans_gid
from groupcomm.core.service import Kind

D1, D2, D5 = "d1:0", "d2:0", "d5:0"
C1, C2, C6, C9, C10 = "#c1#d1", "#c2#d2", "#c6#d1", "#c9#d5", "#c10#d5"
JOIN, LEAVE = int(Kind.JOIN), int(Kind.LEAVE)


def _table_at_d5() -> GroupTable:
    """d5's table in regular configuration R3: g2 = {c1 (d1), c9, c10 (d5)}."""
    table = GroupTable(D5)
    table.open_local(C9)
    table.open_local(C10)
    table.set_conf("R3.d1:0")
    table.join(C1, D1, "g2")
    table.join(C9, D5, "g2")
    table.join(C10, D5, "g2")
    return table


def _entries(table: Table) -> list[GroupsEntry]:
    """A merged table as ``Install.groups``: (daemon, conn, groups of conn)."""
    by_conn: dict[tuple[str, str], list[str]] = {}
    for group, members in sorted(table.items()):
        for conn, daemon in members.items():
            by_conn.setdefault((daemon, conn), []).append(group)
    return [(d, c, tuple(gs)) for (d, c), gs in sorted(by_conn.items())]


def _kinds(views: list[DeliverMembership]) -> list[tuple[str, str, str]]:
    return [(v.conn, v.kind, v.gid) for v in views]


def test_no_regular_view_in_a_transitional_configuration() -> None:
    table = _table_at_d5()
    ops: list[GroupOp] = [(JOIN, C2, ("g2",)), (JOIN, C6, ("g2",))]
    trans = table.begin_transitional({D5}, "R4.d2:0", ops)
    expected_gid = trans_gid("R3.d1:0/g2/3", "R4.d2:0/g2/1")
    assert _kinds(trans) == [
        (C10, "transitional", expected_gid),
        (C9, "transitional", expected_gid),
    ]
    assert all(v.members == (C10, C9) for v in trans)  # the members moving with d5
    # The old view's leftover JOINs of connections on d2 and d1: silent (no JOIN view listing
    # members outside the transitional configuration {d5}).
    assert table.join(C2, D2, "g2") == []
    assert table.join(C6, D1, "g2") == []
    assert table.recipients(("g2",)) == [C10, C9]


def test_the_merge_gives_every_member_the_network_view() -> None:
    table = _table_at_d5()
    ops: list[GroupOp] = [(JOIN, C2, ("g2",))]
    table.begin_transitional({D5}, "R4.d2:0", ops)
    table.join(C2, D2, "g2")
    table.set_conf("R4.d2:0")
    # The merged table is the same member set d5 already holds: before the fix, no view.
    new = {"g2": {C1: D1, C2: D2, C9: D5, C10: D5}}
    vs_of = {D1: 0, D2: 0, D5: 1}
    # The Install's cleanups: 0 for d1 and d2 (c2's JOIN in its transitional part), 1 for d5.
    views = table.install(_entries(new), vs_of, [joined_by(ops), {}])
    assert _kinds(views) == [(C10, "regular", "R4.d2:0/g2/1"), (C9, "regular", "R4.d2:0/g2/1")]
    # c2 joined in the other side's transitional configuration: it had no view of g2, so it
    # is in a vs_set of its own (SP-VSSET: same old view and same previous group view).
    assert views[0].vs_sets == ((C1,), (C2,), (C10, C9))
    assert views[0].cause == "NETWORK"
    assert table.last_gid["g2"] == "R4.d2:0/g2/1"


def test_a_leave_in_the_transitional_configuration_opens_a_transition() -> None:
    table = GroupTable(D5)
    for conn in (C9, C10):
        table.open_local(conn)
    table.set_conf("R3.d1:0")
    table.join(C9, D5, "g")
    table.join(C10, D5, "g")
    ops: list[GroupOp] = [(LEAVE, C10, ("g",))]
    trans = table.begin_transitional({D5}, "R4.d5:0", ops)
    # c10 leaves during the transitional configuration: c9 alone moves on.
    assert [(v.conn, v.members) for v in trans] == [(C9, (C9,))]
    left = table.leave(C10, "g", "LEAVE")
    assert [(v.conn, v.kind) for v in left] == [(C10, "self_leave")]
    table.set_conf("R4.d5:0")
    views = table.install(_entries({"g": {C9: D5}}), {D5: 0}, [{}])
    assert [(v.conn, v.kind, v.cause, v.members) for v in views] == [
        (C9, "regular", "NETWORK", (C9,))
    ]


def test_an_unchanged_group_gets_no_view_at_install() -> None:
    table = _table_at_d5()
    table.begin_transitional({D1, D5}, "R4.d1:0", [])
    table.set_conf("R4.d1:0")
    views = table.install(_entries({"g2": {C1: D1, C9: D5, C10: D5}}), {D1: 0, D5: 0}, [{}])
    assert views == []
    assert table.last_gid["g2"] == "R3.d1:0/g2/3"  # the members' last view is still that one


def test_a_join_of_a_member_is_not_stamped() -> None:
    table = GroupTable(D5)
    table.open_local(C9)
    assert table.request(C9, "g", join=True)
    assert not table.request(C9, "g", join=True)
    assert table.request(C9, "g", join=False)
    assert not table.request(C9, "g", join=False)
    table.close_local(C9)
    assert table.request(C9, "g", join=True)  # a reopened name starts in no group


def _views_of_one_change(groups: list[str]) -> dict[str, list[tuple[object, ...]]]:
    """At d5, with ``groups`` all joined by c1 (d1), c9 and c10 (d5), and g-c2 by c2 (d2) too:
    d1 is cut off from d2 and d5, whose transitional part delivers c10's LEAVE of g-left and
    c2's JOIN of g-fresh; then d1 merges back. Every view d5 emits, per group."""
    table = GroupTable(D5)
    for conn in (C9, C10):
        table.open_local(conn)
    table.set_conf("R3.d1:0")
    for g in groups:
        for conn, daemon in ((C1, D1), (C9, D5), (C10, D5)):
            table.join(conn, daemon, g)
        if g == "g-c2":
            table.join(C2, D2, g)
    ops: list[GroupOp] = [(LEAVE, C10, ("g-left",)), (JOIN, C2, ("g-fresh",))]
    ops = [op for op in ops if op[2][0] in groups]
    out = table.begin_transitional({D2, D5}, "R4.d1:0", ops)
    if "g-left" in groups:
        out += table.leave(C10, "g-left", "LEAVE")
    if "g-fresh" in groups:
        out += table.join(C2, D2, "g-fresh")
    table.set_conf("R4.d1:0")
    new = {g: {C1: D1, C9: D5, C10: D5} for g in groups}
    for g in ("g-c2", "g-fresh"):
        if g in groups:
            new[g][C2] = D2
    if "g-left" in groups:
        del new["g-left"][C10]
    # Cleanup 0: d1's side; 1: d2 and d5's, where c2's JOIN was delivered.
    out += table.install(_entries(new), {D1: 0, D2: 1, D5: 1}, [{}, joined_by(ops)])
    per: dict[str, list[tuple[object, ...]]] = {}
    for v in out:
        per.setdefault(v.group, []).append(tuple(v))
    return per


def test_groups_with_the_same_members_get_their_own_views() -> None:
    # GroupTable computes a view change once per member list (issue 11: 10,000 groups). A
    # group with a leaver in the transitional part, or a joiner there, may share its member
    # list with other groups but not its views (g-fresh ends with g-c2's members, c2 in a
    # vs_set of its own): each group must get exactly the views it gets alone.
    groups = ["g-a", "g-c2", "g-left", "g-b", "g-fresh", "g-c"]
    together = _views_of_one_change(groups)
    for g in groups:
        assert together[g] == _views_of_one_change([g])[g], g
    # (kind, members, cause, vs_sets, changed): everything but conn, group and gid. The
    # special groups differ from the plain ones, so the check above can tell them apart.
    shapes = {repr([(v[2], *v[4:]) for v in together[g]]) for g in groups}
    assert len(shapes) == 4
