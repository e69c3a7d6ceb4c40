"""The client-protocol codec: round trips, strict validation, garbage -> only ClientWireError."""

from __future__ import annotations

import contextlib
import re

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupcomm.wire import WireError
from groupcomm.wire.client import (
    AccessReply,
    AccessReq,
    AdminReply,
    AdminReq,
    Bye,
    ClientWireError,
    Closed,
    Consumed,
    CreditGrant,
    Delivered,
    ErrorMsg,
    FormatsReq,
    Hello,
    JoinReq,
    LeaveReq,
    McastBatchReq,
    McastReq,
    Msgs,
    RejectMsg,
    Reply,
    Request,
    StatusReply,
    StatusReq,
    ViewMsg,
    Views,
    ViewSet,
    Welcome,
    decode_reply,
    decode_request,
    encode,
)

REQUESTS: list[Request] = [
    Hello("alice", True),
    Hello("", False),
    Hello("ops", True, "a-token-0123456789"),
    AccessReq(8, "send", ("logs.app", "#a#d1")),
    AccessReq(9, "join", ("chat",)),
    JoinReq(1, "chat"),
    LeaveReq(2, "chat"),
    McastReq(3, ("a", "#b#d1"), 0x10 | 0x40, 65535, b"\x00payload"),
    McastBatchReq(7, ("a",), 0x10, 0, (b"one", b"", b"three")),
    Consumed(12345),
    StatusReq(4),
    AdminReq(5, "partition", ("d1", "d2")),
    Bye(),
    FormatsReq(("viewset",)),
    FormatsReq(("viewset", "a-later-format")),
]
REPLIES: list[Reply] = [
    Welcome("#alice#d1", "d1", 65536, 8 << 20),
    Welcome("#alice#d1", "d1", 65536, 8 << 20, "uid:1000", True),
    CreditGrant(100),
    Msgs((Delivered("#a#d1", ("g",), 0x10, 0, b"x", "a|1|2"),)),
    Msgs(()),
    ViewMsg("g", "regular", "R1/g/1", ("#a#d1",), "JOIN", (("#a#d1",),), ("#a#d1",)),
    ViewMsg("g", "transitional", "R1.d1:0/g/1 > R2.d1:0/g/1", ("#a#d1",), "", (), ()),
    Views(
        (
            ViewMsg("g", "transitional", "R1/g/1 > R2/g/2", ("#a#d1",), "", (), ()),
            ViewMsg("g", "regular", "R2/g/2", ("#a#d1",), "NETWORK", (("#a#d1",),), ("#b#d2",)),
            ViewMsg("h", "self_leave", "", (), "", (), ()),
        )
    ),
    ViewSet(
        "regular",
        ("#a#d1", "#b#d2"),
        "NETWORK",
        (("#a#d1",), ("#b#d2",)),
        (),
        ("g1", "g2", "g3"),
        ("R2/g1/1", "R2/g2/1", "R2/g3/1"),
    ),
    ViewSet("self_leave", (), "LEAVE", (), ("#a#d1",), ("g",), ("",)),
    RejectMsg(3, "join", None, "no"),
    RejectMsg(4, "mcast", "logs.app", "denied by [[acl]] #1 (group 'logs.*'): x", "denied"),
    AccessReply(8, ("", "denied: no [[acl]] rule matches group 'x'")),
    StatusReply(6, {"view": "1.d1", "n": 3, "nested": {"l": [1, "x", None]}}),
    AdminReply(5, True, "queued"),
    ErrorMsg("malformed", "bad"),
    Closed("slow consumer"),
]


@pytest.mark.parametrize("msg", REQUESTS, ids=lambda m: type(m).__name__)
def test_request_round_trip(msg: Request) -> None:
    assert decode_request(encode(msg)) == msg


@pytest.mark.parametrize("msg", REPLIES, ids=lambda m: type(m).__name__)
def test_reply_round_trip(msg: Reply) -> None:
    assert decode_reply(encode(msg)) == msg


def test_fields_added_later_are_optional_and_omitted_when_unset() -> None:
    # An older peer's shorter messages still decode; a hello without a token, a welcome and a
    # reject without the new fields look exactly as before, so an older daemon accepts them.
    assert msgpack.unpackb(encode(Hello("a", True))) == [1, "hello", "a", True]
    assert msgpack.unpackb(encode(RejectMsg(1, "join", "g", "no"))) == [
        1,
        "reject",
        1,
        "join",
        "g",
        "no",
    ]
    old = msgpack.packb([1, "welcome", "#a#d1", "d1", 10, 20])
    assert decode_reply(old) == Welcome("#a#d1", "d1", 10, 20, "", False)
    assert msgpack.unpackb(encode(Welcome("#a#d1", "d1", 10, 20, "x", False))) == [
        *(1, "welcome", "#a#d1", "d1", 10, 20, "x", False)
    ]  # max_message_bytes omitted at its default: older clients read it
    big = [1, "welcome", "#a#d1", "d1", 10, 20, "uid:0", True, 1 << 26]
    assert decode_reply(msgpack.packb(big)) == Welcome(
        "#a#d1", "d1", 10, 20, "uid:0", True, 1 << 26
    )
    with pytest.raises(ClientWireError, match=r"welcome has 8 fields, expected 4\.\.7"):
        decode_reply(msgpack.packb([*big, 1]))
    assert "secret-token" not in repr(Hello("a", True, "secret-token-0123456789"))


def test_wire_format_is_version_op_fields() -> None:
    assert msgpack.unpackb(encode(JoinReq(7, "g"))) == [1, "join", 7, "g"]
    assert msgpack.unpackb(encode(JoinReq(7, "g", "earliest"))) == [1, "join", 7, "g", "earliest"]
    assert decode_request(encode(JoinReq(7, "g", 1.5e9))) == JoinReq(7, "g", 1.5e9)
    assert decode_request(encode(Hello("a", True, "", "drop"))) == Hello("a", True, "", "drop")
    assert msgpack.unpackb(encode(Hello("a", True))) == [1, "hello", "a", True]
    assert msgpack.unpackb(encode(Bye())) == [1, "bye"]


@pytest.mark.parametrize(
    "obj",
    [
        [2, "join", 1, "g"],  # version
        [1, "nope"],  # op
        [1, "join", 1],  # arity
        [1, "join", -1, "g"],  # range
        [1, "join", True, "g"],  # bool is not int
        [1, "hello", "a", 1],  # int is not bool
        [1, "mcast", 1, [], 16, 0, b""],  # no group
        [1, "mcast", 1, ["g"] * 101, 16, 0, b""],  # too many groups
        [1, "mcast", 1, ["g"], 16, 70000, b""],  # msg_type
        [1, "mcast", 1, ["g"], 16, 0, "text"],  # payload must be bin
        [1, "admin", 1, "heal", "x"],  # args must be an array
        [1, "hello", "a", True, "token", "block", "extra"],  # hello has 2..4 fields
        [1, "hello", "a", True, "", "sometimes"],  # the slow-consumer policy is one of three
        [1, "join", 1, "g", ""],  # since: a position is not empty
        [1, "join", 1, "g", -1.0],  # since: a time is not negative
        [1, "join", 1, "g", True],  # since: a bool is neither
        [1, "hello", "a", True, 5],  # the token is a string
        [1, "access", 1, "admin", ["g"]],  # op is join or send
        [1, "access", 1, "send", []],  # at least one group
        "hello",
        {"op": "hello"},
    ],
)
def test_invalid_requests_raise_client_wire_error(obj: object) -> None:
    with pytest.raises(ClientWireError):
        decode_request(msgpack.packb(obj, use_bin_type=True))


def test_bounds() -> None:
    with pytest.raises(ClientWireError, match="exceeds"):
        decode_request(encode(McastReq(1, ("g",), 16, 0, b"x" * 100)), max_size=50)
    with pytest.raises(ClientWireError):
        decode_request(encode(McastReq(1, ("g",), 16, 0, b"x" * 100)), max_payload=10)
    with pytest.raises(ClientWireError):
        decode_request(msgpack.packb([1, "join", 1, "g" * 5000]))
    assert issubclass(ClientWireError, WireError)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_garbage_bytes_raise_only_client_wire_error(data: bytes) -> None:
    for decode in (decode_request, decode_reply):
        with contextlib.suppress(ClientWireError):
            decode(data)


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["hello", "join", "mcast", "mcastb", "admin", "msgs", "view", "status", "x"]),
    _values,
)
def test_well_formed_msgpack_with_wrong_fields(op: str, fields: object) -> None:
    args = fields if isinstance(fields, list) else [fields]
    try:
        data = msgpack.packb([1, op, *args], use_bin_type=True)
    except (OverflowError, ValueError):
        return
    for decode in (decode_request, decode_reply):
        with contextlib.suppress(ClientWireError):
            decode(data)


@pytest.mark.parametrize(
    ("payloads", "problem"),
    [
        ([], "mcastb.payloads: expected 1..65536 entries, got 0"),
        ([b"x", "text"], "mcastb.payloads[1]: expected bin, got str"),
        (b"x", "mcastb.payloads: expected array, got bytes"),
    ],
)
def test_batch_payloads_are_checked_one_by_one(payloads: object, problem: str) -> None:
    data = msgpack.packb([1, "mcastb", 1, ["g"], 0x10, 0, payloads], use_bin_type=True)
    with pytest.raises(ClientWireError, match=re.escape(problem)):
        decode_request(data)


@pytest.mark.parametrize(
    "obj",
    [
        [1, "views", []],  # empty batch
        [1, "views", [["g", "regular", "R1", [], "JOIN", []]]],  # 6 fields
        [1, "views", [["g", "odd", "R1", [], "JOIN", [], []]]],  # kind
        [1, "views", "x"],
    ],
)
def test_bad_views_batches_are_refused(obj: object) -> None:
    with pytest.raises(ClientWireError):
        decode_reply(msgpack.packb(obj))


M = ["#a#d1"]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (["odd", M, "", [], [], ["g"], ["x"]], "viewset.kind: unknown view kind 'odd'"),
        (["regular", M, "JOIN", [], [], [], []], "viewset.groups: expected 1.."),
        (["regular", M, "JOIN", [], [], ["g", ""], ["x", "y"]], "viewset.groups[1]: must not"),
        (["regular", M, "JOIN", [], [], ["g", "h"], ["x"]], "viewset.gids: expected an array of 2"),
        (["regular", M, "JOIN", [], [], ["g"], [7]], "viewset.gids[0]: expected str, got int"),
        (["regular", M, "JOIN", "x", [], ["g"], ["x"]], "viewset.vs_sets: expected array"),
        (["regular", [1], "JOIN", [], [], ["g"], ["x"]], "viewset.members[0]: expected str"),
        (["regular", M, "JOIN", [], [], ["g"]], "viewset has 6 fields, expected 7"),
    ],
)
def test_bad_viewsets_are_refused_by_name(fields: list[object], problem: str) -> None:
    with pytest.raises(ClientWireError, match=re.escape(problem)):
        decode_reply(msgpack.packb([1, "viewset", *fields]))


@pytest.mark.parametrize("fields", [[[]], [["viewset", ""]], [["x"] * 17], [[1]], ["viewset"], []])
def test_bad_formats_requests_are_refused(fields: list[object]) -> None:
    with pytest.raises(ClientWireError):
        decode_request(msgpack.packb([1, "formats", *fields]))
