"""The Spread codec's validation (what kills a session, what a connect is refused with) and the
``[spread]`` configuration table."""

from __future__ import annotations

import struct

import pytest

from groupcomm.config import DEFAULT_CLIENT_ENDPOINTS, ConfigError, parse_config
from groupcomm.core.commands import DeliverMembership
from groupcomm.daemon.spreadmap import (
    group_id,
    lightweight_transitional,
    membership_message,
    spread_name,
    transitional_group_id,
)
from groupcomm.wire import spread as sp
from groupcomm.wire.errors import WireError

ME = "#me#d1"


def header(mtype: int, groups: int, dlen: int, hint: int = sp.ENDIAN_MARKER) -> bytes:
    return struct.pack("<I32siIi", mtype | sp.ENDIAN_MARKER, sp.name_field(ME), groups, hint, dlen)


def reader() -> sp.SpreadReader:
    r = sp.SpreadReader()
    assert isinstance(r.feed(sp.encode_connect(3, 14, 0, 1, b"me"))[0], sp.ConnectRequest)
    return r


@pytest.mark.parametrize(
    ("groups", "dlen"), [(101, 0), (-1, 0), (1, -1), (1, sp.MAX_MESSAGE_BODY_LEN - 48 - 31)]
)
def test_a_bad_header_kills_before_the_body(groups: int, dlen: int) -> None:
    with pytest.raises(sp.SpreadWireError):
        reader().feed(header(sp.AGREED_MESS, groups, dlen))


def test_the_largest_message_passes() -> None:
    body = b"x" * (sp.MAX_MESSAGE_BODY_LEN - 48 - 32)
    (msg,) = reader().feed(header(sp.AGREED_MESS, 1, len(body)) + sp.name_field("G") + body)
    assert isinstance(msg, sp.ClientMessage)
    assert sp.message_problem(msg, ME, sp.MAX_MESSAGE_BODY_LEN) == ""


@pytest.mark.parametrize(
    ("mtype", "groups", "sender", "hint", "bad"),
    [
        (sp.AGREED_MESS, ("G",), ME, 0x0000FF00, False),
        (sp.AGREED_MESS | sp.SELF_DISCARD, ("G",), ME, 0, False),
        (sp.AGREED_MESS | sp.SAFE_MESS, ("G",), ME, 0, True),  # two services
        (0, ("G",), ME, 0, True),  # none
        (sp.JOIN_MESS | sp.AGREED_MESS, ("G",), ME, 0, True),
        (sp.JOIN_MESS, ("G", "H"), ME, 0, True),
        (sp.REG_MEMB_MESS, ("G",), ME, 0, True),  # not a client's bit
        (sp.AGREED_MESS, ("G",), "#other#d1", 0, True),
        (sp.AGREED_MESS, ("G",), ME, 0x01000000, True),  # hint bits outside the type
        (sp.KILL_MESS, (ME,), ME, 0, False),
    ],
)
def test_message_problem(
    mtype: int, groups: tuple[str, ...], sender: str, hint: int, bad: bool
) -> None:
    msg = sp.ClientMessage(mtype, sender, groups, hint, b"", b"", True)
    assert bool(sp.message_problem(msg, ME, sp.MAX_MESSAGE_BODY_LEN)) == bad


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bytes((3, 0, 1, 0)), sp.REJECT_VERSION),
        (bytes((5, 0, 1, 1, 11)), sp.REJECT_ILLEGAL_NAME),
    ],
)
def test_connect_rejects(data: bytes, code: int) -> None:
    (item,) = sp.SpreadReader().feed(data)
    assert (
        item == sp.ConnectRejected(code, item.reason)
        if isinstance(item, sp.ConnectRejected)
        else False
    )


def test_names_and_group_ids() -> None:
    assert sp.connect_name_problem(b"a#b") == sp.REJECT_ILLEGAL_NAME
    assert sp.connect_name_problem(b"ok.$~") == 0
    long = "#" + "n" * 20 + "#" + "a-daemon-name"
    alias = spread_name(long)
    assert len(alias) == 31 and alias == spread_name(long) and alias.startswith(long[:22])
    assert spread_name("G") == "G"
    gid = group_id("R7.d1:123/G/3")
    assert gid[1:] == (7, 3) and gid == group_id("R7.d1:123/other/3")  # one view, one proc_id
    assert transitional_group_id("R7.d1:123/G/3 > R8.d1:123/G/1") == gid


def test_names_a_spread_client_sees_have_at_most_31_bytes() -> None:
    """libspread 5.0.1 closes a session whose private group has 32 bytes (``SP_connect``:
    "illegal values received! 5.0.1; 32"), seen with spuser against a daemon whose name has
    20 characters: a 32-byte name is aliased like a longer one."""
    private = "#abcdefghij#abcdefghijklmnopqrst"  # 10-character user, 20-character daemon
    assert len(private) == 32
    alias = spread_name(private)
    assert len(alias) == sp.MAX_NAME_LEN == 31 and alias.startswith(private[:22] + "~")
    assert spread_name(private[:-1]) == private[:-1]
    request = sp.ConnectRequest(5, 0, 1, 1, b"abcdefghij")
    assert sp.encode_accept(request, alias)[4] == 31
    with pytest.raises(WireError):
        sp.encode_accept(request, private)


def _view(kind: str, gid: str, cause: str = "") -> DeliverMembership:
    members = ("#a#d1", "#b#d2")
    return DeliverMembership(
        conn="#a#d1", group="G", kind=kind, gid=gid, members=members, cause=cause,
        vs_sets=(), changed=(),
    )  # fmt: skip


def test_no_transitional_message_before_a_leave_or_disconnect() -> None:
    """groupcomm puts a transitional view before a LEAVE/DISCONNECT view inside one daemon
    view; Spread 5.0.1 sends the regular message alone there (``groups.c``), and only a daemon
    view change gives a ``TRANSITION_MESS``."""
    inside = _view("transitional", "R7.d1:1/G/3 > R7.d1:1/G/4")
    assert lightweight_transitional(inside) and membership_message(inside) is None
    change = _view("transitional", "R7.d1:1/G/3 > R8.d1:1/G/1")
    assert not lightweight_transitional(change)
    message = membership_message(change)
    assert message is not None
    assert int.from_bytes(message[:4], "little") == sp.TRANSITION_MESS | sp.ENDIAN_MARKER
    assert message[48:] == sp.group_id_bytes(group_id("R7.d1:1/G/3"))
    regular = membership_message(_view("regular", "R7.d1:1/G/4", "LEAVE"))
    assert regular is not None and regular[0:2] == bytes((0x80, 0x12))
    # The first leave after a daemon view change that gave the group no view: its last gid is
    # from the configuration before, as at a view change; the LEAVE view after it tells.
    first = _view("transitional", "R7.d1:1/G/3 > R8.d1:1/G/1")
    leave = _view("regular", "R8.d1:1/G/1", "LEAVE")
    assert lightweight_transitional(first, leave) and membership_message(first, leave) is None
    network = _view("regular", "R8.d1:1/G/1", "NETWORK")
    assert not lightweight_transitional(first, network)


def test_spread_config() -> None:
    off = parse_config({})
    assert not off.spread.enabled and off.client_endpoints == DEFAULT_CLIENT_ENDPOINTS
    assert all("4803" not in e for e in off.client_endpoints)
    on = parse_config({"spread": {"enabled": True}})
    assert on.spread.endpoints == ("ipc:///tmp/4803", "tcp://127.0.0.1:4803")
    custom = parse_config({"spread": {"enabled": True, "port": 5000, "unix_socket": ""}})
    assert custom.spread.endpoints == ("tcp://127.0.0.1:5000",)
    for bad in ({"port": 0}, {"enabled": "yes"}, {"max_message_bytes": 1000}, {"nope": 1}):
        with pytest.raises(ConfigError, match=r"\[spread\]"):
            parse_config({"spread": bad})
