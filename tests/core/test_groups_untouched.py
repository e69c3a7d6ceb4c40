"""Groups that a daemon view change leaves alone are not looked at (issue 11).

With 10,000 groups a view change took seconds when every step walked every group and its
members. These tests build a table whose untouched groups record every read of their members,
run a partition, a merge and a DISCONNECT through ``GroupTable``, and demand that none of those
groups was read, while the touched group still gets exactly its views. Counting reads instead of
timing keeps them deterministic: a step that goes back to a loop over every group reads every
group's members and fails here.
"""

from __future__ import annotations

from _collections_abc import dict_items, dict_keys, dict_values
from collections.abc import Iterator

from groupcomm.core.groups import GroupsEntry, GroupTable

D1, D2, D3 = "d1:0", "d2:0", "d3:0"
A, B, C = "#a#d1", "#b#d2", "#c#d3"
UNTOUCHED = [f"g{i}" for i in range(200)]


class Watched(dict[str, str]):
    """A group's members ({conn: daemon}) that counts every read."""

    reads = 0

    def _read(self) -> None:
        self.reads += 1

    def __iter__(self) -> Iterator[str]:
        self._read()
        return super().__iter__()

    def __len__(self) -> int:
        self._read()
        return super().__len__()

    def __contains__(self, key: object) -> bool:
        self._read()
        return super().__contains__(key)

    def __getitem__(self, key: str) -> str:
        self._read()
        return super().__getitem__(key)

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self._read()
        return super().get(key, default)

    def items(self) -> dict_items[str, str]:
        self._read()
        return super().items()

    def keys(self) -> dict_keys[str, str]:
        self._read()
        return super().keys()

    def values(self) -> dict_values[str, str]:
        self._read()
        return super().values()


def _table(groups_of: dict[str, list[str]], daemon_of: dict[str, str]) -> GroupTable:
    """d1's table in regular configuration R1; every group in UNTOUCHED is then watched."""
    table = GroupTable(D1)
    table.open_local(A)
    table.set_conf("R1")
    for conn, groups in groups_of.items():
        for group in groups:
            table.join(conn, daemon_of[conn], group)
    for group in UNTOUCHED:
        table.table[group] = Watched(table.table[group])
    return table


def _unread(table: GroupTable) -> bool:
    watched = [table.table[g] for g in UNTOUCHED]
    return all(isinstance(m, Watched) and m.reads == 0 for m in watched)


def test_a_partition_reads_only_the_groups_it_cuts() -> None:
    # g0..g199 on d1 and d2; "t" also has c on d3, which is cut off.
    table = _table({A: [*UNTOUCHED, "t"], B: [*UNTOUCHED, "t"], C: ["t"]}, {A: D1, B: D2, C: D3})
    trans = table.begin_transitional({D1, D2}, "R2", [])
    assert [(v.conn, v.group, v.kind, v.members) for v in trans] == [
        (A, "t", "transitional", (A, B))
    ]
    table.set_conf("R2")
    entries: list[GroupsEntry] = [(D1, A, (*UNTOUCHED, "t")), (D2, B, (*UNTOUCHED, "t"))]
    views = table.install(entries, {D1: 0, D2: 0}, [{}])
    assert [(v.conn, v.group, v.cause, v.members) for v in views] == [(A, "t", "NETWORK", (A, B))]
    assert _unread(table)
    assert table.members("g7") == [A, B]
    assert table.joined(A) == tuple(sorted([*UNTOUCHED, "t"]))


def test_a_merge_reads_only_the_groups_it_joins() -> None:
    # d3 comes back with c in "t" only; d1 and d2 were one old view (cleanup 0), d3 another.
    table = _table({A: [*UNTOUCHED, "t"], B: UNTOUCHED}, {A: D1, B: D2})
    assert table.begin_transitional({D1, D2}, "R2", []) == []
    table.set_conf("R2")
    entries: list[GroupsEntry] = [(D1, A, (*UNTOUCHED, "t")), (D2, B, tuple(UNTOUCHED))]
    entries.append((D3, C, ("t",)))
    views = table.install(entries, {D1: 0, D2: 0, D3: 1}, [{}, {}])
    assert [(v.conn, v.group, v.members, v.vs_sets) for v in views] == [
        (A, "t", (A, C), ((A,), (C,)))
    ]
    assert _unread(table)


def test_a_disconnect_reads_only_the_groups_of_the_connection() -> None:
    table = _table({A: [*UNTOUCHED, "t"], B: UNTOUCHED, C: ["t"]}, {A: D1, B: D2, C: D3})
    views = table.disconnect(C)
    assert [(v.conn, v.group, v.cause, v.members) for v in views] == [
        (A, "t", "", (A,)),  # the transitional view: the members that move on
        (A, "t", "DISCONNECT", (A,)),
    ]
    assert _unread(table)
