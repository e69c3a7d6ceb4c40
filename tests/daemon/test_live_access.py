"""Client identities, group ACLs, admin rights and session limits against a real daemon process
(one daemon, a Unix and a TCP client endpoint, tokens and ``[[acl]]`` rules in its config).

Local clients are identified by SO_PEERCRED as this test's uid; TCP clients by token. Every
refusal must reach the client as the named error, and the daemon must go on serving."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from groupcomm.client import connect
from groupcomm.client.connection import (
    AccessDenied,
    AuthenticationFailed,
    Connection,
    SessionRefused,
    query_status,
)
from groupcomm.client.events import Message, Rejected
from groupcomm.localcluster import free_ports
from tests.daemon.onedaemon import DaemonProcess

T = 10.0
UID = os.getuid()
TOKEN = "ops-token-0123456789abcdef"


def _config(workdir: Path, tcp_port: int, data_port: int, control_port: int) -> str:
    return f"""
[daemon]
name = "d1"
client_endpoints = ["ipc://{workdir}/d1.sock", "tcp://127.0.0.1:{tcp_port}"]
admin = ["ops"]
max_sessions = 4
max_sessions_per_identity = 3

[[peers]]
name = "d1"
data_port = {data_port}
control_port = {control_port}

[clients.ops]
token = "{TOKEN}"

[[acl]]
groups = ["logs.*"]
join = ["*"]
send = ["ops"]

[[acl]]
groups = ["chat", "#*"]
join = ["uid:{UID}", "ops"]
send = ["uid:{UID}", "ops"]
"""


class Daemon(DaemonProcess):
    def __init__(self, workdir: Path) -> None:
        tcp, data, control = free_ports(3)
        self.ipc = f"ipc://{workdir}/d1.sock"
        self.tcp = f"tcp://127.0.0.1:{tcp}"
        super().__init__(workdir, _config(workdir, tcp, data, control), self.ipc)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(Path(tmp_path_factory.mktemp("live-access")))
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
async def ready(daemon: Daemon) -> AsyncIterator[Daemon]:
    await daemon.ready()
    yield daemon
    assert daemon.proc.poll() is None, daemon.log()  # still serving after every test


async def sessions_are(d: Daemon, want: set[str]) -> None:
    """Until the daemon's sessions are exactly ``want`` (a closed client's ``bye`` and another
    client's ``hello`` travel on different sockets: their order at the daemon is not fixed)."""
    deadline = time.monotonic() + T
    while True:
        sessions = (await query_status(d.ipc, T)).get("sessions")
        if isinstance(sessions, list) and set(sessions) == want:
            return
        assert time.monotonic() < deadline, f"sessions {sessions}, want {sorted(want)}"
        await asyncio.sleep(0.05)


async def receive_message(conn: Connection) -> Message:
    while True:
        event = await conn.receive(T)
        if isinstance(event, Message):
            return event


async def test_local_client_is_identified_by_peer_credentials(ready: Daemon) -> None:
    async with connect(ready.ipc, "me") as conn:
        assert conn.identity == f"uid:{UID}"
        info = await conn.status()
        clients = info["clients"]
        assert isinstance(clients, dict)
        assert clients["#me#d1"] == {"identity": f"uid:{UID}", "pid": os.getpid(), "via": "unix"}
    assert f"uid:{UID}" in ready.log() and "session_opened" in ready.log()


async def test_acl_refusals_are_named_errors(ready: Daemon) -> None:
    async with connect(ready.ipc, "reader") as conn:
        await conn.join("logs.app")  # join = ["*"]: may read
        with pytest.raises(AccessDenied) as err:
            await conn.multicast("logs.app", b"x")
        assert err.value.reason == (
            f"denied by [[acl]] #1 (group 'logs.*'): uid:{UID} may not send 'logs.app'"
        )
        with pytest.raises(AccessDenied, match=r"denied by \[\[acl\]\] #1"):
            await conn.multicast_many("logs.app", [b"a", b"b"])
        with pytest.raises(AccessDenied, match="no \\[\\[acl\\]\\] rule matches group 'secret'"):
            await conn.join("secret")
        with pytest.raises(AccessDenied, match="may not send 'secret'"):
            await conn.multicast(["chat", "secret"], b"x")
        # Allowed: chat (rule #2), also to the own private name (rule #2's "#*").
        await conn.join("chat")
        await conn.multicast("chat", b"hello")
        assert (await receive_message(conn)).payload == b"hello"
        await conn.multicast(conn.private_name, b"self")
        assert (await receive_message(conn)).payload == b"self"


async def test_daemon_enforces_rules_for_a_client_that_does_not_ask(ready: Daemon) -> None:
    async with connect(ready.ipc, "sneaky") as conn:
        conn._acl = False  # as an older or hostile client: no ``access`` round trip first
        join = await conn.join("secret")
        send = await conn.multicast("logs.app", b"x")
        batch = await conn.multicast_many("logs.app", [b"1", b"2"])
        rejected: list[Rejected] = []
        while len(rejected) < 4:
            event = await conn.receive(T)
            if isinstance(event, Rejected):
                rejected.append(event)
        assert [(r.req, r.op, r.code) for r in rejected] == [
            (join, "join", "denied"),
            (send, "mcast", "denied"),
            (batch[0], "mcast", "denied"),
            (batch[1], "mcast", "denied"),
        ]
        assert rejected[1].group == "logs.app" and "#1" in rejected[1].reason
        await conn.drain(T)  # the refused multicasts gave their send window back
        info = await conn.status()
        frontend = info["frontend"]
        assert isinstance(frontend, dict) and frontend["denied"] >= 4


async def test_tokens_authenticate_tcp_clients(ready: Daemon) -> None:
    with pytest.raises(AuthenticationFailed, match="authentication required"):
        await connect(ready.tcp, "anon").open()
    with pytest.raises(AuthenticationFailed, match="unknown token"):
        await connect(ready.tcp, "bad", token="not-the-token-0123456789").open()
    async with connect(ready.tcp, "ops", token=TOKEN) as ops:
        assert ops.identity == "ops"
        await ops.join("logs.app")
        await ops.multicast("logs.app", b"from ops")
        assert (await receive_message(ops)).payload == b"from ops"
    assert TOKEN not in ready.log()  # a secret never reaches the log


async def test_only_admins_see_who_else_is_connected(ready: Daemon) -> None:
    """With access control on, ``status`` lists other sessions (identities, pids, addresses)
    only to admin identities and to local processes of the daemon's own user; a stranger on the
    TCP endpoint (no token: it may not even open a session) sees none."""
    async with connect(ready.tcp, "boss", token=TOKEN) as boss:
        everyone = await boss.status()  # ops is an admin
        assert "#boss#d1" in str(everyone["sessions"]) and "#boss#d1" in str(everyone["clients"])
        local = await query_status(ready.ipc, T)  # this test runs as the daemon's user
        assert "#boss#d1" in str(local["sessions"])
        stranger = await query_status(ready.tcp, T)
        assert stranger["sessions"] == [] and stranger["clients"] == {}
        assert isinstance(stranger["frontend"], dict)  # counters stay public


async def test_admin_needs_a_listed_identity(ready: Daemon) -> None:
    async with connect(ready.ipc, "local") as local:
        ok, text = await local.admin("heal")
        assert (ok, text) == (False, f"admin denied: uid:{UID} is not listed in [daemon] admin")
    async with connect(ready.tcp, "admin", token=TOKEN) as ops:
        assert await ops.admin("heal") == (True, "queued")
    assert "admin_refused" in ready.log()


async def test_session_limits_refuse_the_next_session(ready: Daemon) -> None:
    # max_sessions_per_identity = 3, max_sessions = 4.
    await sessions_are(ready, set())
    mine = [await connect(ready.ipc, f"s{i}").open() for i in range(3)]
    try:
        with pytest.raises(SessionRefused) as err:
            await connect(ready.ipc, "s3").open()
        assert str(err.value) == (
            f"session limit: uid:{UID} has 3 sessions on this daemon "
            "([daemon] max_sessions_per_identity)"
        )
        ops = await connect(ready.tcp, "ops4", token=TOKEN).open()
        try:
            with pytest.raises(SessionRefused, match=r"this daemon has 4 sessions"):
                await connect(ready.tcp, "ops5", token=TOKEN).open()
        finally:
            await ops.close()
        await mine.pop().close()
        await sessions_are(ready, {"#s0#d1", "#s1#d1"})
        again = await connect(ready.ipc, "s3").open()  # a slot freed: admitted again
        mine.append(again)
    finally:
        for conn in mine:
            await conn.close()
