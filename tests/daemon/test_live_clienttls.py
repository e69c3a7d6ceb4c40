"""Remote clients over TLS against a real keyed daemon process (``tls://`` client endpoint).

The daemon ``d1`` has a key, a ``tls://`` endpoint, a clear ``tcp://`` one (allowed with a
warning, and here the control case of the eavesdropper test), one client identified by its
certificate (``alice``) and one by token (``ops``). A client pins ``d1.crt``; ``d2.crt`` is the
wrong pin, ``mallory.crt`` a certificate the daemon does not list."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from groupcomm.client import SyncConnection, connect
from groupcomm.client.connection import (
    AuthenticationFailed,
    Connection,
    DaemonNotTrusted,
    query_status,
)
from groupcomm.client.events import Message
from groupcomm.keygen import make_keypair
from groupcomm.localcluster import free_ports
from tests.daemon.onedaemon import DaemonProcess
from tests.daemon.tap import Tap

T = 20.0
TOKEN = "ops-token-0123456789abcdef"


def _config(w: Path, tls_port: int, tcp_port: int, data_port: int, control_port: int) -> str:
    return f"""
[daemon]
name = "d1"
client_endpoints = ["ipc://{w}/d1.sock", "tls://127.0.0.1:{tls_port}", "tcp://127.0.0.1:{tcp_port}"]

[security]
key = "d1.key"

[[peers]]
name = "d1"
data_port = {data_port}
control_port = {control_port}
cert = "d1.crt"

[clients.alice]
cert = "alice.crt"

[clients.ops]
token = "{TOKEN}"
"""


class Daemon(DaemonProcess):
    def __init__(self, workdir: Path) -> None:
        for name in ("d1", "d2", "alice", "mallory"):
            make_keypair(name, workdir)
        self.dir = workdir
        tls, tcp, data, control = free_ports(4)
        self.ipc = f"ipc://{workdir}/d1.sock"
        self.tls = f"tls://127.0.0.1:{tls}"
        self.tls_port = tls
        self.tcp = f"tcp://127.0.0.1:{tcp}"
        self.tcp_port = tcp
        super().__init__(workdir, _config(workdir, tls, tcp, data, control), self.ipc)

    def crt(self, name: str) -> str:
        return str(self.dir / f"{name}.crt")

    async def counters(self) -> dict[str, int]:
        info = await query_status(self.ipc, T)
        frontend = info["frontend"]
        assert isinstance(frontend, dict)
        return frontend


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(Path(tmp_path_factory.mktemp("live-clienttls")))
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
async def ready(daemon: Daemon) -> AsyncIterator[Daemon]:
    await daemon.ready()
    yield daemon
    assert daemon.proc.poll() is None, daemon.log()  # still serving after every test


async def receive_message(conn: Connection) -> Message:
    while True:
        event = await conn.receive(T)
        if isinstance(event, Message):
            return event


async def test_a_listed_client_cert_is_that_identity_and_the_session_works(ready: Daemon) -> None:
    async with connect(
        ready.tls, "a", daemon_cert=ready.crt("d1"), cert=ready.crt("alice"), timeout=T
    ) as conn:
        assert conn.identity == "alice"
        await conn.join("chat")
        await conn.multicast("chat", b"over tls")
        assert (await receive_message(conn)).payload == b"over tls"
        # Bigger than one TLS record (16 KiB), in a batch: sealed per turn, read back whole.
        payloads = [bytes([i]) * 40_000 for i in range(5)]
        await conn.multicast_many("chat", payloads)
        got = [(await receive_message(conn)).payload for _ in payloads]
        assert got == payloads
        info = await conn.status()
        clients = info["clients"]
        assert isinstance(clients, dict)
        assert clients["#a#d1"]["identity"] == "alice"
        assert str(clients["#a#d1"]["via"]).startswith("tls:127.0.0.1:")


async def test_a_wrong_pinned_daemon_cert_fails_cleanly(ready: Daemon) -> None:
    conn = connect(ready.tls, daemon_cert=ready.crt("d2"), cert=ready.crt("alice"), timeout=T)
    with pytest.raises(DaemonNotTrusted, match="did not present the pinned certificate"):
        await conn.open()
    assert conn.closed
    with pytest.raises(DaemonNotTrusted):
        await query_status(ready.tls, T, daemon_cert=ready.crt("d2"))


async def test_an_unlisted_client_cert_is_refused(ready: Daemon) -> None:
    before = (await ready.counters())["tls_failed"]
    conn = connect(ready.tls, daemon_cert=ready.crt("d1"), cert=ready.crt("mallory"), timeout=T)
    with pytest.raises(AuthenticationFailed, match="refused this client's TLS session"):
        await conn.open()
    assert (await ready.counters())["tls_failed"] == before + 1


async def test_without_a_cert_a_tls_client_needs_its_token(ready: Daemon) -> None:
    with pytest.raises(AuthenticationFailed, match="authentication required"):
        await connect(ready.tls, daemon_cert=ready.crt("d1"), timeout=T).open()
    async with connect(ready.tls, daemon_cert=ready.crt("d1"), token=TOKEN, timeout=T) as conn:
        assert conn.identity == "ops"
    # A certificate and someone else's token do not add up to anybody.
    with pytest.raises(AuthenticationFailed, match="the token is not alice's"):
        await connect(
            ready.tls, daemon_cert=ready.crt("d1"), cert=ready.crt("alice"), token=TOKEN, timeout=T
        ).open()


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
async def test_an_eavesdropper_sees_no_payload_and_no_token(ready: Daemon, scheme: str) -> None:
    """The same session through a tap: payload and token in clear over tcp:// (the test can
    fail), neither over tls://."""
    secret = b"attack at dawn 0123456789"
    tap = Tap(ready.tls_port if scheme == "tls" else ready.tcp_port)
    pin = ready.crt("d1") if scheme == "tls" else ""
    try:
        endpoint = f"{scheme}://127.0.0.1:{tap.port}"
        async with connect(endpoint, "tapped", token=TOKEN, timeout=T, daemon_cert=pin) as conn:
            assert conn.identity == "ops"
            await conn.join("tapped")
            await conn.multicast("tapped", secret)
            assert (await receive_message(conn)).payload == secret
        seen = tap.bytes()
        assert len(seen) > 300  # the session (and its handshake) passed through the tap
        assert (secret in seen) is (scheme == "tcp")
        assert (TOKEN.encode() in seen) is (scheme == "tcp")
    finally:
        tap.close()


async def test_a_stranger_that_never_completes_the_handshake_is_closed(ready: Daemon) -> None:
    before = (await ready.counters())["tls_timeouts"]
    loop = asyncio.get_running_loop()

    def linger() -> bytes:
        with socket.create_connection(("127.0.0.1", ready.tls_port)) as sock:
            sock.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then silence
            sock.settimeout(60)  # a bound on the test, not on the daemon
            try:
                return sock.recv(100)  # b"": the daemon closed the link
            except ConnectionResetError:
                return b""

    assert await loop.run_in_executor(None, linger) == b""
    assert (await ready.counters())["tls_timeouts"] == before + 1


def test_sync_connection_and_cli_over_tls(daemon: Daemon) -> None:
    asyncio.run(daemon.ready())
    with SyncConnection(
        daemon.tls, "sync", daemon_cert=daemon.crt("d1"), cert=daemon.crt("alice"), timeout=T
    ) as conn:
        assert conn.identity == "alice"
    env = {
        **os.environ,
        "GROUPCOMM_DAEMON_CERT": daemon.crt("d1"),
        "GROUPCOMM_CERT": daemon.crt("alice"),
    }
    base = [sys.executable, "-m", "groupcomm"]
    status = subprocess.run(
        [*base, "status", "--json", "--endpoint", daemon.tls],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["daemon"].startswith("d1:")
    send = subprocess.run(
        [*base, "send", "chat", "hi", "--endpoint", daemon.tls, "--daemon-cert", daemon.crt("d2")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert send.returncode == 1
    assert "did not present the pinned certificate" in send.stderr


def test_clear_tcp_endpoints_of_a_keyed_daemon_are_warned_about(daemon: Daemon) -> None:
    asyncio.run(daemon.ready())
    log = daemon.log()
    assert "client_endpoints_clear" in log and daemon.tcp in log
