"""``viewset`` (protocol/client.md): a run of membership messages that differ only in group and
gid travels as one record to a client that asked for it with ``formats``, and the client hands
out exactly the events the ``view``/``views`` records would have given (issue 11: a view change
over 10,000 groups). A client that does not ask, and a daemon that does not know ``formats``,
keep the older records."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import groupcomm.client.connection as connection_module
import groupcomm.daemon.frontend as frontend_module
from groupcomm.client import Connection, connect
from groupcomm.client.events import Event, RegularView, SelfLeave, TransitionalView
from groupcomm.core.commands import DeliverMembership
from groupcomm.daemon.frontend import _view_records, _view_sets
from groupcomm.wire.client import (
    ClientWireError,
    FormatsReq,
    Reply,
    ViewMsg,
    Views,
    ViewSet,
    decode_request,
)
from tests.client.harness import mini_daemon

T = 10.0
GROUPS = [f"g{i:02d}" for i in range(30)]


def view(
    group: str, kind: str = "regular", members: tuple[str, ...] = ("#a#d1", "#b#d1")
) -> DeliverMembership:
    cause = {"regular": "NETWORK", "transitional": "", "self_leave": "LEAVE"}[kind]
    vs = (members,) if kind == "regular" else ()
    gid = "" if kind == "self_leave" else f"R2/{group}/1"
    return DeliverMembership("#a#d1", group, kind, gid, members, cause, vs, ())


def expand(records: list[Reply]) -> list[tuple[object, ...]]:
    """The membership messages the records stand for, as ``view`` fields."""
    out: list[tuple[object, ...]] = []
    for r in records:
        if isinstance(r, ViewMsg):
            out.append((r.group, r.kind, r.gid, r.members, r.cause, r.vs_sets, r.changed))
        elif isinstance(r, Views):
            out.extend(
                (v.group, v.kind, v.gid, v.members, v.cause, v.vs_sets, v.changed) for v in r.views
            )
        else:
            assert isinstance(r, ViewSet)
            shared = (r.members, r.cause, r.vs_sets, r.changed)
            out.extend((g, r.kind, gid, *shared) for g, gid in zip(r.groups, r.gids, strict=True))
    return out


def test_a_run_is_cut_where_anything_but_group_and_gid_changes() -> None:
    run = [
        *(view(g, "transitional") for g in ("a", "b", "c")),
        *(view(g) for g in ("a", "b")),
        view("c", members=("#a#d1",)),  # other members
        view("d", members=("#a#d1",)),
        view("e", "self_leave"),
    ]
    records = _view_sets(run)
    assert [type(r).__name__ for r in records] == ["ViewSet", "ViewSet", "ViewSet", "ViewMsg"]
    assert [len(r.groups) for r in records if isinstance(r, ViewSet)] == [3, 2, 2]
    want = [v[1:] for v in run]
    assert expand(records) == want
    assert expand(_view_records(run)) == want  # the older records carry the same
    assert _view_sets([view("x")]) == [ViewMsg(*view("x")[1:])]  # one alone stays a view
    # A DISCONNECT's views alternate (transitional, regular, per group): no stretch to share,
    # and the singles between stretches travel together as one ``views``.
    alternating = [v for g in ("a", "b", "c") for v in (view(g, "transitional"), view(g))]
    records = _view_sets(alternating)
    assert [type(r).__name__ for r in records] == ["Views"]
    assert expand(records) == [v[1:] for v in alternating]


def events_as_fields(events: list[Event]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for e in events:
        if isinstance(e, RegularView):
            out.append(("R", e.group, e.gid, e.members, e.cause, e.vs_sets, e.changed))
        elif isinstance(e, TransitionalView):
            out.append(("T", e.group, e.gid, e.members))
        elif isinstance(e, SelfLeave):
            out.append(("L", e.group))
    return out


async def views_until(conn: Connection, count: int) -> list[Event]:
    got: list[Event] = []
    while len(got) < count:
        got.extend(
            e
            for e in await conn.receive_many(timeout=5)
            if isinstance(e, RegularView | TransitionalView | SelfLeave)
        )
    return got


async def join_all(conn: Connection, groups: list[str]) -> None:
    """Join ``groups`` and wait for our own view of each (then the next client's joins come
    after ours everywhere)."""
    for g in groups:
        await conn.join(g)
    missing = set(groups)
    while missing:
        for e in await conn.receive_many(timeout=5):
            if isinstance(e, RegularView) and conn.private_name in e.members:
                missing.discard(e.group)


async def drain(*conns: Connection) -> None:
    """Take every event already on its way (the views of the others' joins)."""
    for conn in conns:
        with contextlib.suppress(TimeoutError):
            while True:
                await conn.receive_many(timeout=0.3)


def record_replies(conn: Connection) -> list[str]:
    """The names of the reply records ``conn`` gets from now on."""
    seen: list[str] = []
    real = conn._on_reply

    def spy(reply: Reply) -> None:
        seen.append(type(reply).__name__)
        real(reply)

    conn._on_reply = spy  # type: ignore[method-assign]
    return seen


async def partition_like_views() -> None:
    """The front-end and the clients, fed what a partition over many groups makes: every
    group's transitional view, then every group's NETWORK view (``GroupTable``). ``a`` asked
    for ``viewset``, ``b`` did not (``without_viewset_for_the_second_client``)."""
    async with (
        mini_daemon() as d,
        connect(d.endpoint, "a") as a,
        connect(d.endpoint, "b") as b,
    ):
        for conn in (a, b):
            await join_all(conn, GROUPS)
        await drain(a, b)
        kinds = {conn: record_replies(conn) for conn in (a, b)}
        both = (a.private_name, b.private_name)
        for kind, cause, gid in (
            ("transitional", "", "R1/{g}/3 > R2/{g}/1"),
            ("regular", "NETWORK", "R2/{g}/1"),
        ):
            vs = (both,) if kind == "regular" else ()
            for name in both:
                for g in GROUPS:
                    view = DeliverMembership(name, g, kind, gid.format(g=g), both, cause, vs, ())
                    d.fe.execute(view)
        want = [("T", g, f"R1/{g}/3 > R2/{g}/1", both) for g in GROUPS] + [
            ("R", g, f"R2/{g}/1", both, "NETWORK", (both,), ()) for g in GROUPS
        ]
        for conn in (a, b):
            assert events_as_fields(await views_until(conn, 2 * len(GROUPS))) == want
        assert kinds[a] == ["ViewSet", "ViewSet"]
        assert kinds[b] == ["Views"]


def without_viewset_for_the_second_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second client to open asks only for a format the daemon does not know: it gets
    the older records, as a client from before ``formats`` would."""
    real = FormatsReq
    opened: list[int] = []

    def formats(names: tuple[str, ...]) -> FormatsReq:
        opened.append(1)
        return real(names if len(opened) != 2 else ("a-later-format",))

    monkeypatch.setattr(connection_module, "FormatsReq", formats)


def test_a_run_of_views_comes_as_one_viewset(monkeypatch: pytest.MonkeyPatch) -> None:
    without_viewset_for_the_second_client(monkeypatch)
    asyncio.run(asyncio.wait_for(partition_like_views(), T))


async def both_clients_agree() -> None:
    """A client that asks for ``viewset`` and one that does not get the same events."""
    async with (
        mini_daemon() as d,
        connect(d.endpoint, "a") as a,
        connect(d.endpoint, "b") as b,
        connect(d.endpoint, "c") as c,
    ):
        for conn in (c, a, b):
            await join_all(conn, GROUPS)
        await drain(a, b)
        seen_a, seen_b = record_replies(a), record_replies(b)
        await c.close()
        # A DISCONNECT: a transitional and a regular view per group.
        got_a = events_as_fields(await views_until(a, 2 * len(GROUPS)))
        got_b = events_as_fields(await views_until(b, 2 * len(GROUPS)))
        assert got_a == got_b
        regular = [e for e in got_a if e[0] == "R"]
        assert [e[1] for e in regular] == GROUPS
        assert all(e[4] == "DISCONNECT" and e[6] == ("#c#d1",) for e in regular)
        assert seen_a == seen_b == ["Views"]  # alternating views: nothing to share


def test_clients_with_and_without_viewset_see_the_same_views(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_viewset_for_the_second_client(monkeypatch)
    asyncio.run(asyncio.wait_for(both_clients_agree(), T))


async def old_daemon() -> None:
    async with mini_daemon() as d, connect(d.endpoint, "a") as a, connect(d.endpoint, "c") as c:
        for conn in (c, a):
            await join_all(conn, GROUPS[:5])
        await drain(a)
        kinds = record_replies(a)
        await c.close()
        got = events_as_fields(await views_until(a, 10))
        assert [e[1] for e in got if e[0] == "R"] == GROUPS[:5]
        assert "ViewSet" not in kinds and "Views" in kinds
        assert a.errors == []  # the older daemon's refusal of ``formats`` is expected


def test_a_daemon_that_does_not_know_formats_is_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = decode_request

    def older(data: bytes, **kw: int) -> object:
        request = real(data, **kw)
        if isinstance(request, FormatsReq):  # what a daemon before ``formats`` says
            raise ClientWireError("unknown op 'formats'")
        return request

    monkeypatch.setattr(frontend_module, "_decode_request", older)
    asyncio.run(asyncio.wait_for(old_daemon(), T))
