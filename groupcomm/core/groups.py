"""Process groups: membership derived from the ordered stream and from daemon view changes.

Every daemon applies the same JOIN/LEAVE/DISCONNECT operations in the same total order, so every
daemon holds the same table and computes identical group views (SP-VIEW-ORDER) without extra
rounds. Only the views for *local* connections are emitted. This module does not decide when
operations are delivered (that is the epoch's job) nor what a view change keeps (viewchange).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from groupcomm.core.commands import DeliverMembership

# group -> conn -> daemon token hosting that conn
Table = dict[str, dict[str, str]]


class GroupTable:
    def __init__(self, me: str) -> None:
        self.me = me
        self.table: Table = {}
        self.local: set[str] = set()  # connections open on this daemon (use open/close_local)
        self._recipients: dict[tuple[str, ...], list[str]] = {}  # cleared on every change
        self.conf = ""
        self.counters: dict[str, int] = {}
        self.in_transition: set[str] = set()  # groups with a TRANS view awaiting REG

    # -------------------------------------------------------------- queries
    def members(self, group: str) -> list[str]:
        return sorted(self.table.get(group, {}))

    def joined(self, conn: str) -> tuple[str, ...]:
        return tuple(sorted(g for g, members in self.table.items() if conn in members))

    def recipients(self, groups: tuple[str, ...]) -> list[str]:
        """Local connections that receive a message addressed to ``groups`` (each once)."""
        cached = self._recipients.get(groups)
        if cached is None:
            cached = self._recipients[groups] = self._compute_recipients(groups)
        return cached

    def _compute_recipients(self, groups: Iterable[str]) -> list[str]:
        out: set[str] = set()
        local = self.local
        for group in groups:
            if group.startswith("#"):
                if group in local:
                    out.add(group)  # SP-PRIV: a private name reaches exactly that connection
                continue
            members = self.table.get(group)
            if members:
                out.update(c for c in members if c in local)
        return sorted(out)

    def open_local(self, conn: str) -> None:
        self.local.add(conn)
        self._recipients.clear()

    def close_local(self, conn: str) -> None:
        self.local.discard(conn)
        self._recipients.clear()

    def local_state(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((conn, self.joined(conn)) for conn in sorted(self.local))

    # ------------------------------------------------------------ operations
    def set_conf(self, conf: str) -> None:
        self.conf = conf
        self.counters = {}

    def join(self, conn: str, daemon: str, group: str) -> list[DeliverMembership]:
        members = self.table.setdefault(group, {})
        if conn in members:
            return []
        members[conn] = daemon
        self._recipients.clear()
        return self._views(group, "JOIN", (conn,), members)

    def leave(self, conn: str, group: str, cause: str) -> list[DeliverMembership]:
        members = self.table.get(group)
        if not members or conn not in members:
            return []
        del members[conn]
        self._recipients.clear()
        out: list[DeliverMembership] = []
        if conn in self.local and cause == "LEAVE":
            # SP-SELF-LEAVE: the leaver gets one self-leave notice, then nothing for the group.
            out.append(_view(conn, group, "self_leave", "", (), "LEAVE", (), (conn,)))
        if not members:
            del self.table[group]
            return out
        return out + self._views(group, cause, (conn,), members, with_trans=True)

    def disconnect(self, conn: str) -> list[DeliverMembership]:
        out: list[DeliverMembership] = []
        for group in sorted(self.table):
            if conn in self.table[group]:
                out.extend(self.leave(conn, group, "DISCONNECT"))
        return out

    def _views(
        self,
        group: str,
        cause: str,
        changed: tuple[str, ...],
        members: Mapping[str, str],
        with_trans: bool = False,
    ) -> list[DeliverMembership]:
        gid = self._next_gid(group)
        ordered = tuple(sorted(members))
        out: list[DeliverMembership] = []
        local = [c for c in ordered if c in self.local]
        if with_trans and group not in self.in_transition:
            out.extend(_view(c, group, "transitional", gid + "t", (), "", (), ()) for c in local)
        self.in_transition.discard(group)
        out.extend(
            _view(c, group, "regular", gid, ordered, cause, (changed,), changed) for c in local
        )
        return out

    def _next_gid(self, group: str) -> str:
        n = self.counters.get(group, 0) + 1
        self.counters[group] = n
        return f"{self.conf}/{group}/{n}"

    # ----------------------------------------------------------- view change
    def begin_transitional(self, survivors: set[str]) -> list[DeliverMembership]:
        """TRANS views for groups that lost members on daemons outside ``survivors``."""
        out: list[DeliverMembership] = []
        for group in sorted(self.table):
            members = self.table[group]
            if group in self.in_transition:
                continue
            if any(d not in survivors for d in members.values()):
                out.extend(self._trans(group))
        return out

    def _trans(self, group: str) -> list[DeliverMembership]:
        self.in_transition.add(group)
        gid = f"{self.conf}/{group}/trans"
        members = self.table[group]
        return [
            _view(c, group, "transitional", gid, (), "", (), ())
            for c in sorted(members)
            if c in self.local
        ]

    def install(self, new: Table, vs_of_daemon: Mapping[str, int]) -> list[DeliverMembership]:
        """Replace the table by the merged one; NETWORK views where membership changed."""
        out: list[DeliverMembership] = []
        for group in sorted(set(self.table) | set(new)):
            before = self.table.get(group, {})
            after = new.get(group, {})
            if set(before) == set(after):
                if group in self.in_transition and after:
                    out.extend(self._network(group, after, vs_of_daemon))
                continue
            lost = any(c not in after for c in before)
            if lost and group not in self.in_transition and before:
                out.extend(self._trans(group))
            if after:
                out.extend(self._network(group, after, vs_of_daemon))
        self.table = {g: dict(m) for g, m in new.items() if m}
        self._recipients.clear()
        self.in_transition.clear()
        # SP-VIEW-ORDER: gids must not depend on what this daemon saw before the merge, so every
        # group restarts at the same counter everywhere, whether or not it got a view here.
        self.counters = dict.fromkeys(self.table, 1)
        return out

    def _network(
        self, group: str, after: Mapping[str, str], vs_of_daemon: Mapping[str, int]
    ) -> list[DeliverMembership]:
        self.in_transition.discard(group)
        ordered = tuple(sorted(after))
        sets: dict[int, list[str]] = {}
        for conn in ordered:
            sets.setdefault(vs_of_daemon[after[conn]], []).append(conn)
        vs_sets = tuple(tuple(s) for _, s in sorted(sets.items()))
        gid = f"{self.conf}/{group}/1"
        return [
            _view(c, group, "regular", gid, ordered, "NETWORK", vs_sets, ())
            for c in ordered
            if c in self.local
        ]


def _view(
    conn: str,
    group: str,
    kind: str,
    gid: str,
    members: tuple[str, ...],
    cause: str,
    vs_sets: tuple[tuple[str, ...], ...],
    changed: tuple[str, ...],
) -> DeliverMembership:
    return DeliverMembership(
        conn=conn,
        group=group,
        kind=kind,
        gid=gid,
        members=members,
        cause=cause,
        vs_sets=vs_sets,
        changed=changed,
    )
