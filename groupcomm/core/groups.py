"""Process groups: membership derived from the ordered stream and from daemon view changes.

Every daemon applies the same JOIN/LEAVE/DISCONNECT operations in the same total order, so every
daemon holds the same table and computes identical group views (SP-VIEW-ORDER) without extra
rounds. Only the views for *local* connections are emitted. This module does not decide when
operations are delivered (that is the epoch's job) nor what a view change keeps (viewchange).

How group views follow daemon configurations (protocol/services.md section 4,
protocol/membership.md section 12): in a regular configuration every operation yields its
regular view at once. In a transitional configuration no regular view is emitted at all: the
groups that lose members get one transitional view, operations change the table silently (a
leaver still gets its self_leave), and the next regular install emits one NETWORK view for every
group that was in transition or touched (GV-VIEWS, SP-TRANS-PAIR).

Cost of a view change: the table is also indexed by connection (``by_conn``). Entering a
transitional configuration and installing a regular one find the groups whose views may change
with set operations per connection, and run Python code only for those: a group that a view
change leaves alone costs a few set and dict operations in C, however many groups there are
(issue 11: 10,000 groups cost no more Python than their connections). So does a DISCONNECT.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from groupcomm.core.commands import DeliverMembership
from groupcomm.core.service import Kind

# group -> conn -> daemon token hosting that conn
Table = dict[str, dict[str, str]]
# The same table per connection: conn -> daemon token -> groups (one daemon per connection but
# for malformed input).
ByConn = dict[str, dict[str, set[str]]]
# One entry of ``Install.groups``: (daemon token, conn, groups of conn).
GroupsEntry = tuple[str, str, tuple[str, ...]]
# A group operation of the ordered stream: (kind, conn, groups).
GroupOp = tuple[int, str, tuple[str, ...]]
JOIN, LEAVE, DISCONNECT = int(Kind.JOIN), int(Kind.LEAVE), int(Kind.DISCONNECT)
# A group's NETWORK view at an install but for its name and gid (``GroupTable._shape``):
# members, vs_sets, whether all come from one old view, the local members who get it.
_Shape = tuple[tuple[str, ...], tuple[tuple[str, ...], ...], bool, tuple[str, ...]]
# A group's transitional view but for its name and gid (``GroupTable.begin_transitional``):
# whether every member moves on (then there is none), the members moving on, the local ones.
_Moving = tuple[bool, tuple[str, ...], tuple[str, ...]]


def trans_gid(prev_gid: str, next_gid: str) -> str:
    """A transitional group view names the regular views it links (SP-TRANS-PAIR)."""
    return f"{prev_gid} > {next_gid}"


def removed_by(ops: Iterable[GroupOp]) -> tuple[dict[str, set[str]], set[str]]:
    """Connections that ``ops`` take out: per group (LEAVE), and out of every group
    (DISCONNECT)."""
    left: dict[str, set[str]] = {}
    disconnected: set[str] = set()
    for kind, conn, groups in ops:
        if kind == LEAVE and len(groups) == 1:
            left.setdefault(groups[0], set()).add(conn)
        elif kind == DISCONNECT:
            disconnected.add(conn)
    return left, disconnected


def joined_by(ops: Iterable[GroupOp]) -> dict[str, set[str]]:
    """group -> connections that a JOIN among ``ops`` brings in (joins are never no-ops:
    ``requests`` stamps a join only for a non-member, so the joiner had no view of it)."""
    out: dict[str, set[str]] = {}
    for kind, conn, groups in ops:
        if kind == JOIN and len(groups) == 1:
            out.setdefault(groups[0], set()).add(conn)
    return out


class GroupTable:
    def __init__(self, me: str) -> None:
        self.me = me
        self.table: Table = {}
        self.by_conn: ByConn = {}  # the table by connection, kept by join, leave and install
        self.local: set[str] = set()  # connections open on this daemon (use open/close_local)
        self._recipients: dict[tuple[str, ...], list[str]] = {}  # cleared on every change
        self.conf = ""
        self.counters: dict[str, int] = {}
        self.last_gid: dict[str, str] = {}  # gid of each group's last regular view
        self.in_transition: set[str] = set()  # groups with a TRANS view awaiting REG
        # Set only between the transitional configuration and the next regular install:
        self.transitional = False
        self.touched: set[str] = set()  # groups an operation changed silently
        self.unviewed: dict[str, set[str]] = {}  # silent joiners: no view yet, so no messages
        self.requested: dict[str, set[str]] = {}  # conn -> groups once its own ops are applied

    # -------------------------------------------------------------- queries
    def members(self, group: str) -> list[str]:
        return sorted(self.table.get(group, {}))

    def joined(self, conn: str) -> tuple[str, ...]:
        return tuple(sorted(set().union(*self.by_conn.get(conn, {}).values())))

    def groups_on(self, daemon: str) -> dict[str, set[str]]:
        """conn -> its groups, for every connection of the table hosted on ``daemon`` (copies)."""
        return {conn: set(per[daemon]) for conn, per in self.by_conn.items() if daemon in per}

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
                silent = self.unviewed.get(group, ())
                # SP-OPEN: a silent joiner is not a member by its own views until its NETWORK view
                out.update(c for c in members if c in local and c not in silent)
        return sorted(out)

    def open_local(self, conn: str) -> None:
        self.local.add(conn)
        self._recipients.clear()

    def close_local(self, conn: str) -> None:
        self.local.discard(conn)
        self.requested.pop(conn, None)
        self._recipients.clear()

    def local_state(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((conn, self.joined(conn)) for conn in sorted(self.local))

    # -------------------------------------------------------------- requests
    def request(self, conn: str, group: str, join: bool) -> bool:
        """Record a join/leave request; False if it changes nothing (already a member, or not
        one), so that no no-op operation is stamped. Every delivered JOIN then brings in a
        non-member, which is what the vs_sets of a merge rely on (``joined_by``)."""
        groups = self.requested.setdefault(conn, set())  # a new session is in no group
        if (group in groups) == join:
            return False
        if join:
            groups.add(group)
        else:
            groups.discard(group)
        return True

    # ------------------------------------------------------------ operations
    def set_conf(self, conf: str) -> None:
        self.conf = conf
        self.counters = {}

    def join(self, conn: str, daemon: str, group: str) -> list[DeliverMembership]:
        members = self.table.setdefault(group, {})
        if conn in members:
            return []
        members[conn] = daemon
        self.by_conn.setdefault(conn, {}).setdefault(daemon, set()).add(group)
        self._recipients.clear()
        if self.transitional:
            self.touched.add(group)
            self.unviewed.setdefault(group, set()).add(conn)
            return []
        return self._views(group, "JOIN", (conn,), members)

    def leave(self, conn: str, group: str, cause: str) -> list[DeliverMembership]:
        members = self.table.get(group)
        if not members or conn not in members:
            return []
        self._unindex(conn, members.pop(conn), group)
        self._recipients.clear()
        out: list[DeliverMembership] = []
        if conn in self.local and cause == "LEAVE":
            # SP-SELF-LEAVE: the leaver gets one self-leave notice, then nothing for the group.
            out.append(DeliverMembership(conn, group, "self_leave", "", (), "LEAVE", (), (conn,)))
        if self.transitional:
            self.touched.add(group)
            self.unviewed.get(group, set()).discard(conn)
        if not members:
            del self.table[group]
            self.last_gid.pop(group, None)  # read only while the group has members
            return out
        if self.transitional:
            return out  # the next regular install shows the result (NETWORK view)
        return out + self._views(group, cause, (conn,), members, with_trans=True)

    def disconnect(self, conn: str) -> list[DeliverMembership]:
        out: list[DeliverMembership] = []
        for group in self.joined(conn):
            out.extend(self.leave(conn, group, "DISCONNECT"))
        return out

    def _unindex(self, conn: str, daemon: str, group: str) -> None:
        per = self.by_conn[conn]
        groups = per[daemon]
        groups.discard(group)
        if not groups:
            del per[daemon]
            if not per:
                del self.by_conn[conn]

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
        if with_trans:
            # The remaining members move together from the old view into the new one.
            tgid = trans_gid(self.last_gid.get(group, ""), gid)
            out.extend(
                DeliverMembership(c, group, "transitional", tgid, ordered, "", (), ())
                for c in local
            )
        self.last_gid[group] = gid
        out.extend(
            DeliverMembership(c, group, "regular", gid, ordered, cause, (changed,), changed)
            for c in local
        )
        return out

    def _next_gid(self, group: str) -> str:
        n = self.counters.get(group, 0) + 1
        self.counters[group] = n
        return f"{self.conf}/{group}/{n}"

    # ----------------------------------------------------------- view change
    def begin_transitional(
        self, survivors: set[str], next_conf: str, ops: Sequence[GroupOp]
    ) -> list[DeliverMembership]:
        """Enter the transitional configuration whose members are ``survivors``, which
        precedes regular configuration ``next_conf`` and delivers the group operations ``ops``.

        A group whose members do not all move together into the next regular view (some are
        on daemons outside ``survivors``, or leave in ``ops``) gets one transitional view now,
        listing the members that do; its NETWORK view at the install closes it."""
        self.transitional = True
        left, disconnected = removed_by(ops)
        # The groups with a member that may not move on; the others cannot get a view.
        suspects: set[str] = set()
        for conn, per in self.by_conn.items():
            gone = conn in disconnected
            for daemon, groups in per.items():
                if gone or daemon not in survivors:
                    suspects.update(groups)
        for group, leavers in left.items():
            if not leavers.isdisjoint(self.table.get(group, ())):
                suspects.add(group)
        out: list[DeliverMembership] = []
        local = self.local
        # Groups with the same members lose the same ones: their transitional views differ
        # only in name and gid, so the members moving on are computed once per member list
        # (not for a group with leavers in ``ops``: its losses are its own).
        shapes: dict[tuple[tuple[str, str], ...], _Moving] = {}
        for group in sorted(suspects):
            members = self.table[group]
            key = tuple(members.items())
            shape = None if group in left else shapes.get(key)
            if shape is None:
                lost = left[group] | disconnected if group in left else disconnected
                moving = sorted(c for c, d in members.items() if d in survivors and c not in lost)
                together = tuple(moving)
                shape = (
                    len(moving) == len(members),
                    together,
                    tuple(c for c in moving if c in local),
                )
                if group not in left:
                    shapes[key] = shape
            all_move, together, here = shape
            if all_move:
                continue
            self.in_transition.add(group)
            if not here:
                continue  # nobody here to tell
            tgid = trans_gid(self.last_gid.get(group, ""), f"{next_conf}/{group}/1")
            out.extend(
                DeliverMembership(c, group, "transitional", tgid, together, "", (), ())
                for c in here
            )
        return out

    def install(
        self,
        entries: Iterable[GroupsEntry],
        vs_of_daemon: Mapping[str, int],
        joined_in_trans: Sequence[Mapping[str, set[str]]],
    ) -> list[DeliverMembership]:
        """Replace the table by the merged one of the Install (``entries``: its ``groups``);
        NETWORK views where the group was in transition, was changed in the transitional
        configuration, changed membership, or has members from more than one old view.

        ``vs_of_daemon`` maps each member daemon to the index of its cleanup (its old view) and
        ``joined_in_trans[i]`` the connections that joined a group in cleanup ``i``'s
        transitional part: SP-VSSET puts two members in one vs_set exactly when they come from
        the same old view and the same previous group view (a silent joiner had none).

        Only candidate groups are looked at, found per connection: a group none of whose
        connections changed, whose members all come from our old view's side, that was not in
        transition nor touched, keeps its members and gets no view."""
        new = _index(entries)
        # The candidates, in set operations per connection: groups in transition or touched,
        # groups a connection joined, left or moved in, and groups with members on another
        # side than ours (a merge, or a daemon that was in our view but installed another).
        candidates = self.in_transition | self.touched
        old = self.by_conn
        for conn in old.keys() | new.keys():
            was = old.get(conn, {})
            now = new.get(conn, {})
            if was != now:
                for daemon in was.keys() | now.keys():
                    candidates |= was.get(daemon, set()) ^ now.get(daemon, set())
        home = vs_of_daemon.get(self.me)
        for per in new.values():
            for daemon, groups in per.items():
                if vs_of_daemon[daemon] != home:  # a KeyError for a daemon outside the view
                    candidates |= groups
        after_of: Table = {}  # the Install's members of every candidate group
        for conn, per in new.items():
            for daemon, groups in per.items():
                for group in groups & candidates:
                    after_of.setdefault(group, {})[conn] = daemon
        out: list[DeliverMembership] = []
        views: dict[str, str] = {}
        # Groups with the same members (in the same order: ``after_of`` is filled connection by
        # connection) get the same members, vs_sets and recipients: computed once per shape,
        # unless a connection joined the group in a transitional part (its vs_set depends on
        # the group).
        fresh = set().union(*joined_in_trans)
        shapes: dict[tuple[tuple[str, str], ...], _Shape] = {}
        local = self.local
        for group in sorted(candidates):
            before = self.table.get(group, {})
            after = after_of.get(group)
            if after is None:
                if self.table.pop(group, None) is not None:
                    self.last_gid.pop(group, None)
                continue
            self.table[group] = after  # ``before`` stays the old members
            key = tuple(after.items())
            shape = None if group in fresh else shapes.get(key)
            if shape is None:
                shape = self._shape(group, after, vs_of_daemon, joined_in_trans)
                if group not in fresh:
                    shapes[key] = shape
            ordered, vs_sets, one_side, here = shape
            if (
                one_side
                and before.keys() == after.keys()
                and group not in self.in_transition
                and group not in self.touched
            ):
                continue
            gid = f"{self.conf}/{group}/1"
            # Only members of the last regular view can be lost: a silent joiner that is gone
            # again was never shown to anyone (EVS-2.4 at the group level: trans within both).
            silent = self.unviewed.get(group, set())
            viewed = [c for c in sorted(before) if c not in silent]
            if group not in self.in_transition and any(c not in after for c in viewed):
                moving = tuple(c for c in viewed if c in after)
                tgid = trans_gid(self.last_gid.get(group, ""), gid)
                out.extend(
                    DeliverMembership(c, group, "transitional", tgid, moving, "", (), ())
                    for c in moving
                    if c in local
                )
            out.extend(
                DeliverMembership(c, group, "regular", gid, ordered, "NETWORK", vs_sets, ())
                for c in here
            )
            views[group] = gid
        self.by_conn = new
        self.last_gid.update(views)
        self._recipients.clear()
        self.in_transition.clear()
        self.transitional = False
        self.touched.clear()
        self.unviewed.clear()
        # SP-VIEW-ORDER: gids must not depend on what this daemon saw before the merge, so every
        # group restarts at the same counter everywhere, whether or not it got a view here.
        self.counters = dict.fromkeys(self.table, 1)
        return out

    def _shape(
        self,
        group: str,
        after: Mapping[str, str],
        vs_of_daemon: Mapping[str, int],
        joined_in_trans: Sequence[Mapping[str, set[str]]],
    ) -> _Shape:
        """A group's NETWORK view at an install, but for its name and gid: its members, its
        vs_sets (SP-VSSET: same old view and same previous group view), whether all members
        come from one old view, and the local members who get the view."""
        ordered = tuple(sorted(after))
        sets: dict[tuple[int, bool], list[str]] = {}
        for conn in ordered:
            side = vs_of_daemon[after[conn]]
            fresh = conn in joined_in_trans[side].get(group, ())
            sets.setdefault((side, fresh), []).append(conn)
        vs_sets = tuple(tuple(s) for _, s in sorted(sets.items()))
        one_side = len({side for side, _ in sets}) == 1
        return ordered, vs_sets, one_side, tuple(c for c in ordered if c in self.local)


def _index(entries: Iterable[GroupsEntry]) -> ByConn:
    """The Install's table by connection. A connection listed twice (only a malformed report
    does that) keeps each group at the daemon listed last, as filling a ``Table`` entry by
    entry would."""
    by_conn: ByConn = {}
    for daemon, conn, groups in entries:
        if not groups:
            continue
        per = by_conn.get(conn)
        if per is None:
            by_conn[conn] = {daemon: set(groups)}
            continue
        fresh = set(groups)
        for other in [d for d in per if d != daemon]:
            per[other] -= fresh
            if not per[other]:
                del per[other]
        per.setdefault(daemon, set()).update(fresh)
    return by_conn
