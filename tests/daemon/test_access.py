"""Access control without sockets: the ``[[acl]]``/``[clients]``/admin/limit settings
(validation errors name the file and the key) and their evaluation (``groupcomm.daemon.access``),
then the session layer refusing what they deny."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from groupcomm.accessconfig import AccessConfig, AclRule, ClientToken
from groupcomm.config import ConfigError, load_config, parse_config
from groupcomm.daemon.access import (
    ANONYMOUS_IDENTITY,
    Access,
    AuthError,
    Identity,
    Throttle,
    local_identity,
)
from groupcomm.daemon.sessions import DENIED, LIMIT, Granted, OpenRefused, Refused, SessionLayer

TOKEN_A = "alice-token-0123456789"
TOKEN_B = "bob-token-0123456789ab"

RULES = f"""
[clients.alice]
token = "{TOKEN_A}"

[clients.bob]
token = "{TOKEN_B}"

[[acl]]
groups = ["logs.audit"]
join = ["alice"]

[[acl]]
groups = ["logs.*", "metrics"]
join = ["*"]
send = ["alice", "uid:0"]

[[acl]]
groups = ["team.*"]
join = ["gid:100"]
send = ["gid:100", "anonymous"]
"""

ALICE = Identity("alice", frozenset({"alice"}), 0, "token")
BOB = Identity("bob", frozenset({"bob"}), 0, "token")


def access(text: str = RULES) -> Access:
    return Access(parse_config(_toml(text), "acl.toml").access)


def _toml(text: str) -> dict[str, object]:
    return tomllib.loads(text)


# ------------------------------------------------------------------------------ evaluation


def test_no_rules_allow_everything_and_admin_is_off() -> None:
    a = Access(AccessConfig())
    assert not a.acl_active
    assert a.check(ANONYMOUS_IDENTITY, "send", "anything") == ""
    assert a.check(ANONYMOUS_IDENTITY, "join", "#x#d1") == ""
    assert a.check_admin(local_identity(1, 0, 0)) == (
        "admin is off: no identity is listed in [daemon] admin"
    )


def test_first_matching_rule_decides() -> None:
    a = access()
    # Rule #1 matches logs.audit before rule #2's logs.*: only alice may join, nobody may send.
    assert a.check(ALICE, "join", "logs.audit") == ""
    assert a.check(BOB, "join", "logs.audit") == (
        "denied by [[acl]] #1 (group 'logs.audit'): bob may not join 'logs.audit'"
    )
    assert a.check(ALICE, "send", "logs.audit") == (
        "denied by [[acl]] #1 (group 'logs.audit'): alice may not send 'logs.audit'"
    )
    # Rule #2: everyone reads, alice and uid 0 send.
    assert a.check(BOB, "join", "logs.app") == ""
    assert a.check(BOB, "send", "logs.app") == (
        "denied by [[acl]] #2 (group 'logs.*'): bob may not send 'logs.app'"
    )
    assert a.check(ALICE, "send", "metrics") == ""
    assert a.check(local_identity(7, 0, 5), "send", "metrics") == ""


def test_unmatched_groups_are_closed_once_rules_exist() -> None:
    assert access().check(ALICE, "join", "chat") == (
        "denied: no [[acl]] rule matches group 'chat' (default deny): alice may not join 'chat'"
    )


def test_patterns_are_case_sensitive_fnmatch() -> None:
    a = access()
    assert a.check(BOB, "join", "LOGS.app").startswith("denied: no [[acl]] rule")
    assert a.check(BOB, "join", "logs.") == ""  # "*" matches an empty rest too


def test_local_identity_matches_uid_and_gid() -> None:
    a = access()
    member = local_identity(42, 1000, 100)
    assert member.name == "uid:1000" and member.pid == 42
    assert a.check(member, "send", "team.x") == ""
    assert a.check(local_identity(42, 1000, 101), "join", "team.x") == (
        "denied by [[acl]] #3 (group 'team.*'): uid:1000 may not join 'team.x'"
    )
    assert a.check(ANONYMOUS_IDENTITY, "send", "team.x") == ""  # "anonymous" is listed
    assert a.check(ANONYMOUS_IDENTITY, "join", "team.x").startswith("denied by [[acl]] #3")


def test_tokens_identify_and_refuse() -> None:
    a = access()
    assert a.identify(None, TOKEN_B).name == "bob"
    assert a.identify((1, 2, 3), TOKEN_A) == ALICE  # a token wins on a Unix socket too
    assert a.identify((1, 2, 3), "") == local_identity(1, 2, 3)
    with pytest.raises(AuthError, match="authentication failed: unknown token"):
        a.identify(None, TOKEN_A[:-1])
    with pytest.raises(AuthError, match="authentication required"):
        a.identify(None, "")  # TCP without a token while tokens are configured
    open_daemon = Access(AccessConfig())
    assert open_daemon.identify(None, "") == ANONYMOUS_IDENTITY
    with pytest.raises(AuthError):
        open_daemon.identify(None, "some-token-0123456789")


def test_admin_and_session_limits() -> None:
    a = Access(AccessConfig(admin=frozenset({"alice", "uid:0"}), max_sessions=3))
    assert a.check_admin(ALICE) == "" and a.check_admin(local_identity(1, 0, 0)) == ""
    assert a.check_admin(BOB) == "admin denied: bob is not listed in [daemon] admin"
    assert Access(AccessConfig(admin=frozenset({"*"}))).check_admin(ANONYMOUS_IDENTITY) == ""
    assert a.check_open(BOB, 2, 0) == ""
    assert a.check_open(BOB, 3, 0) == (
        "session limit: this daemon has 3 sessions ([daemon] max_sessions)"
    )
    b = Access(AccessConfig(max_sessions=10, max_sessions_per_identity=2))
    assert b.check_open(BOB, 5, 2) == (
        "session limit: bob has 2 sessions on this daemon ([daemon] max_sessions_per_identity)"
    )


def test_throttle_counts_what_it_leaves_out() -> None:
    t = Throttle(10.0)
    assert t.admit("k", 0.0) == 0
    assert t.admit("k", 1.0) is None and t.admit("k", 2.0) is None
    assert t.admit("other", 2.0) == 0
    assert t.admit("k", 10.5) == 2


# ------------------------------------------------------------------------------ config


def test_parsed_settings() -> None:
    cfg = parse_config(
        _toml(RULES + '[daemon]\nadmin = ["alice", "uid:0", "user:root"]\nmax_sessions = 10\n'),
        "acl.toml",
    ).access
    assert cfg.clients == (
        ClientToken(name="alice", token=TOKEN_A),
        ClientToken(name="bob", token=TOKEN_B),
    )
    assert TOKEN_A not in repr(cfg)
    assert cfg.admin == frozenset({"alice", "uid:0"})  # user:root resolved to uid:0
    assert cfg.max_sessions == 10 and cfg.max_sessions_per_identity == 5  # half by default
    assert cfg.acl[1] == AclRule(
        number=2,
        groups=("logs.*", "metrics"),
        join=frozenset({"*"}),
        send=frozenset({"alice", "uid:0"}),
    )


def test_token_file(tmp_path: Path) -> None:
    secret = tmp_path / "alice.token"
    secret.write_text(TOKEN_A + "\n")
    secret.chmod(0o600)
    config = tmp_path / "cluster.toml"
    config.write_text('[clients.alice]\ntoken_file = "alice.token"\n')  # next to the config
    assert load_config(config).access.clients == (ClientToken(name="alice", token=TOKEN_A),)
    secret.chmod(0o644)
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert str(err.value) == (
        f"{config}: [clients.alice] token_file {str(secret)!r} is accessible by other users "
        "(mode 644): chmod 600 it"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[clients.alice]\ntoken = 'short'\n", "[clients.alice] token must be at least 16"),
        ("[clients.alice]\npassword = 'x'\n", "[clients.alice] unknown key 'password'"),
        ("[clients.alice]\n", "[clients.alice] needs a token, a token_file or a cert"),
        (
            "[clients.alice]\ntoken = '0123456789abcdefg'\ntoken_file = 'x'\n",
            "[clients.alice] needs at most one of token, token_file",
        ),
        ("[clients.anonymous]\ntoken = '0123456789abcdefg'\n", "[clients.anonymous]: a client"),
        ("[clients.'uid:0']\ntoken = '0123456789abcdefg'\n", "[clients.uid:0]: a client name"),
        (
            "[clients.a]\ntoken = '0123456789abcdefg'\n[clients.b]\ntoken = '0123456789abcdefg'\n",
            "[clients.b] has the same token as [clients.a]",
        ),
        ("[clients.a]\ntoken_file = 'nope'\n", "[clients.a] token_file"),
        ("clients = 3\n", "clients must be a table of tables"),
        ("acl = 3\n", "acl must be an array of tables ([[acl]])"),
        ("[[acl]]\njoin = ['*']\n", "[[acl]] #1: groups must be a non-empty list"),
        ("[[acl]]\ngroups = []\n", "[[acl]] #1: groups must be a non-empty list"),
        ("[[acl]]\ngroups = ['x']\nread = ['*']\n", "[[acl]] #1: unknown key 'read'"),
        ("[[acl]]\ngroups = ['x']\njoin = 'alice'\n", "[[acl]] #1 join must be a list"),
        (
            "[[acl]]\ngroups = ['x']\n[[acl]]\ngroups = ['y']\nsend = ['alcie']\n",
            "[[acl]] #2 send: 'alcie' is not an identity: use uid:N, gid:N, user:NAME",
        ),
        ("[[acl]]\ngroups = ['x']\njoin = ['user:no-such-user-x']\n", "no such user on this"),
        ("[[acl]]\ngroups = ['x']\njoin = ['group:no-such-group-x']\n", "no such group on this"),
        ("[daemon]\nadmin = 'uid:0'\n", "[daemon] admin must be a list of identities"),
        ("[daemon]\nadmin = ['root']\n", "[daemon] admin: 'root' is not an identity"),
        ("[daemon]\nmax_sessions = 0\n", "[daemon] max_sessions must be a positive integer"),
        (
            "[daemon]\nmax_sessions = 5\nmax_sessions_per_identity = 6\n",
            "[daemon] max_sessions_per_identity (6) must not exceed max_sessions (5)",
        ),
        ("[daemon]\nallow_admin = true\n", "[daemon] allow_admin is replaced by [daemon] admin"),
    ],
)
def test_validation_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_allow_admin_message_says_what_to_write() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"daemon": {"allow_admin": True}}, "c.toml")
    assert f'admin = ["uid:{os.getuid()}"]' in str(err.value)


# ------------------------------------------------------------------------------ sessions


def layer(a: Access) -> SessionLayer:
    return SessionLayer("d1", send_window=1000, slow_consumer_bytes=5000, access=a)


def test_session_layer_refuses_denied_requests_and_returns_the_window() -> None:
    s = layer(access())
    bob = s.open("bob", True, 0, BOB).conn
    s.take_events()
    s.join(bob, 1, "logs.app", 0)  # allowed: everyone reads logs.*
    s.join(bob, 2, "chat", 0)
    s.multicast(bob, 3, ("logs.app",), 0x04, 0, b"12345", 0)
    s.multicast_batch(bob, 4, ("metrics",), 0x04, 0, (b"ab", b"cd"), 0)
    s.leave(bob, 6, "chat", 0)  # leaving is always allowed
    assert [type(e).__name__ for e in s.take_events()] == ["JoinRequested", "LeaveRequested"]
    notices = s.take_notices()
    assert notices == [
        Refused(
            bob,
            2,
            "join",
            "chat",
            "denied: no [[acl]] rule matches group 'chat' (default deny): bob may not join 'chat'",
            DENIED,
        ),
        Refused(
            bob,
            3,
            "mcast",
            "logs.app",
            "denied by [[acl]] #2 (group 'logs.*'): bob may not send 'logs.app'",
            DENIED,
        ),
        Granted(bob, 5),
        Refused(
            bob,
            4,
            "mcast",
            "metrics",
            "denied by [[acl]] #2 (group 'metrics'): bob may not send 'metrics'",
            DENIED,
        ),
        Granted(bob, 2),
        Refused(
            bob,
            5,
            "mcast",
            "metrics",
            "denied by [[acl]] #2 (group 'metrics'): bob may not send 'metrics'",
            DENIED,
        ),
        Granted(bob, 2),
    ]
    assert s.counters["denied"] == 4
    alice = s.open("alice", True, 0, ALICE).conn
    s.take_events()
    s.multicast_batch(alice, 1, ("metrics",), 0x04, 0, (b"ab", b"cd"), 0)
    assert len(s.take_events()) == 2 and s.take_notices() == []


def test_session_layer_limits_sessions_before_creating_them() -> None:
    s = layer(Access(AccessConfig(max_sessions=3, max_sessions_per_identity=2)))
    s.open("a1", True, 0, ALICE)
    s.open("a2", True, 0, ALICE)
    with pytest.raises(OpenRefused) as err:
        s.open("a3", True, 0, ALICE)
    assert err.value.code == LIMIT and "alice has 2 sessions" in str(err.value)
    assert "#a3#d1" not in s.sessions
    s.open("b1", True, 0, BOB)
    with pytest.raises(OpenRefused, match="this daemon has 3 sessions"):
        s.open("b2", True, 0, BOB)
    s.close("#a1#d1", "bye")
    s.open("a3", True, 0, ALICE)  # the closed session's slot is free again
    assert s.per_identity == {"alice": 2, "bob": 1} and s.counters["limited"] == 2
