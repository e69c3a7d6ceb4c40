"""Configuration of TLS for clients: ``tls://`` endpoints need the daemon's key, client
certificates must be readable PEM and usable somewhere; every error names the file and key.
And a ``ClientLinks`` TLS link whose handshake never completes is closed by ``expire``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from groupcomm.config import ConfigError, load_config
from groupcomm.daemon.clientlinks import ClientLinks
from groupcomm.daemon.clienttls import ClientTls
from groupcomm.daemon.readiness import Readiness
from groupcomm.keygen import make_keypair
from groupcomm.localcluster import free_ports

PEER = '[[peers]]\nname = "d1"\ncert = "d1.crt"\n'
KEY = '[security]\nkey = "d1.key"\n'
TLS = '[daemon]\nclient_endpoints = ["tls://127.0.0.1:4900"]\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[daemon]\nclient_endpoints = ["tls://127.0.0.1:4900"]\n',
            "[daemon] client_endpoints 'tls://127.0.0.1:4900' needs [security] key",
        ),
        (
            '[daemon]\nclient_endpoints = ["tcp://127.0.0.1:4900"]\n'
            + KEY
            + PEER
            + '[clients.alice]\ncert = "alice.crt"\n',
            "[clients.alice] cert identifies a client only on a tls:// client endpoint",
        ),
        (TLS + KEY + PEER + '[clients.alice]\ncert = "nope.crt"\n', "[clients.alice] cert "),
        (TLS + KEY + PEER + '[clients.alice]\ncert = "d1.key"\n', "not a PEM certificate"),
        (TLS + KEY + PEER + "[clients.alice]\ncert = 3\n", "[clients.alice] cert must be a path"),
        (
            TLS + KEY + PEER + '[clients.a]\ncert = "alice.crt"\n[clients.b]\ncert = "alice.crt"\n',
            "[clients.b] has the same cert as [clients.a]",
        ),
        ('[daemon]\nclient_endpoints = ["tls://nohost"]\n', "expected tls://HOST:PORT"),
    ],
)
def test_client_tls_config_errors_name_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    make_keypair("d1", tmp_path)
    make_keypair("alice", tmp_path)
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_a_valid_client_tls_config_loads(tmp_path: Path) -> None:
    make_keypair("d1", tmp_path)
    make_keypair("alice", tmp_path)
    path = tmp_path / "cluster.toml"
    path.write_text(TLS + KEY + PEER + '[clients.alice]\ncert = "alice.crt"\ntoken_file = "t"\n')
    (tmp_path / "t").write_text("alice-token-0123456789")
    (tmp_path / "t").chmod(0o600)
    cfg = load_config(path)
    (alice,) = cfg.access.cert_clients
    assert (alice.name, alice.cert, alice.token) == (
        "alice",
        str(tmp_path / "alice.crt"),
        "alice-token-0123456789",
    )
    assert ClientTls(cfg).by_der == {alice.cert_der: "alice"}


def test_a_tls_link_whose_handshake_never_completes_is_closed(tmp_path: Path) -> None:
    make_keypair("d1", tmp_path)
    (port,) = free_ports(1)
    path = tmp_path / "cluster.toml"
    path.write_text(f'[daemon]\nclient_endpoints = ["tls://127.0.0.1:{port}"]\n' + KEY + PEER)
    now = [100.0]
    links = ClientLinks(
        [f"tls://127.0.0.1:{port}"],
        max_record=1000,
        out_limit=1 << 20,
        tls=ClientTls(load_config(path)),
        clock=lambda: now[0],
    )
    readiness = Readiness()
    links.attach(readiness)
    stranger = socket.create_connection(("127.0.0.1", port))
    try:
        while links.links() == 0:  # accepted
            readiness.wait(100)
            links.receive(10)
        links.expire()
        assert links.links() == 1  # not late yet
        now[0] += links.handshake_timeout_s + 0.1
        links.expire()
        assert links.links() == 0
        assert links.counters["tls_timeouts"] == 1
        stranger.settimeout(10)
        assert stranger.recv(10) == b""  # closed by the daemon
    finally:
        stranger.close()
        links.close()
        readiness.close()
