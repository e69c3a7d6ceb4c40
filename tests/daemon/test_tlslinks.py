"""TLS between daemons (``[security] key``): links are mutually authenticated and encrypted, a
stranger with no key or an unlisted one never gets a frame in, a keyed peer cannot speak as
another (its hello or its frames), and the bytes on the wire carry no plaintext."""

from __future__ import annotations

import contextlib
import json
import ssl
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from groupcomm.config import ConfigError, DaemonConfig, SecurityConfig, parse_config
from groupcomm.core.frames import Data, Leave, Status
from groupcomm.core.ids import ViewId
from groupcomm.daemon.tlschannel import LinkSecurity, TlsError
from groupcomm.keygen import make_keypair
from groupcomm.wire.peer import encode_frame
from groupcomm.wire.stream import record
from tests.core.helpers import msg
from tests.daemon.tap import Tap
from tests.daemon.test_tcplinks import Node, closed_by_peer, connect_raw, links_up, run_until
from tests.daemon.test_transport import free_ports, status


def keyed_configs(tmp: Path, names: list[str]) -> list[DaemonConfig]:
    """Configs of a keyed cluster on loopback, keys made in ``tmp``."""
    ports = free_ports(2 * len(names))
    for n in names:
        make_keypair(n, tmp, force=True)
    out = []
    for me in names:
        peers: list[dict[str, Any]] = []
        for i, n in enumerate(names):
            peers.append(
                {
                    "name": n,
                    "host": "127.0.0.1",
                    "data_port": ports[2 * i],
                    "control_port": ports[2 * i + 1],
                    "cert": str(tmp / f"{n}.crt"),
                }
            )
        raw = {
            "daemon": {"name": me, "client_endpoints": []},
            "security": {"key": str(tmp / f"{me}.key")},
            "peers": peers,
        }
        out.append(parse_config(raw, str(tmp / "cluster.toml")))
    return out


def tls_connect(cfg: DaemonConfig, ctx: ssl.SSLContext, nodes: list[Node]) -> ssl.SSLSocket | None:
    """A TLS client on ``cfg``'s data port, the nodes pumped while it shakes hands (they run
    in this thread); None if the handshake was refused."""
    tls = ctx.wrap_socket(connect_raw(cfg), do_handshake_on_connect=False)
    tls.setblocking(False)
    for _ in range(500):
        for n in nodes:
            n.pump()
        try:
            tls.do_handshake()
            return tls
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            time.sleep(0.002)
        except (ssl.SSLError, OSError):
            tls.close()
            return None
    raise AssertionError("TLS handshake neither finished nor failed")


def tls_closed(tls: ssl.SSLSocket, nodes: list[Node]) -> bool:
    """The daemon closed this TLS link (within about a second of pumping)."""
    for _ in range(200):
        for n in nodes:
            n.pump()
        try:
            if tls.recv(10) == b"":
                return True
        except (ssl.SSLWantReadError, BlockingIOError):
            time.sleep(0.005)
        except (ssl.SSLError, OSError):
            return True
    return False


def test_a_keyed_cluster_carries_frames_over_tls(tmp_path: Path) -> None:
    nodes = [Node(c) for c in keyed_configs(tmp_path, ["d1", "d2", "d3"])]
    try:
        run_until(nodes, lambda: links_up(nodes))
        for seq in range(1, 301):
            nodes[0].t.send(("d2", "d3"), status(seq=seq))
            if seq % 50 == 0:
                nodes[0].t.flush()
        run_until(nodes, lambda: len(nodes[1].got) == 300 and len(nodes[2].got) == 300)
        for n in nodes[1:]:
            assert [f.sent_seq for f in n.got if isinstance(f, Status)] == list(range(1, 301))
        assert all(n.t.stats()["tls"] for n in nodes)
        assert all(n.t.counters["tls_failed"] == 0 for n in nodes)
    finally:
        for n in nodes:
            n.close()


def test_strangers_without_a_listed_key_get_nothing_in(tmp_path: Path) -> None:
    nodes = [Node(c) for c in keyed_configs(tmp_path, ["d1", "d2"])]
    d1 = nodes[0]
    try:
        run_until(nodes, lambda: links_up(nodes))
        with capture_logs():
            # plain TCP speaking the open protocol: a hello, then a frame
            s = connect_raw(d1.cfg)
            hello = {"name": "d2", "settings": d1.t.settings}
            s.sendall(record(b"H" + json.dumps(hello).encode()))
            s.sendall(record(b"F" + encode_frame(status("d2:1", seq=99))))
            assert closed_by_peer(s, nodes)
            # TLS with a key of its own, not listed in the cluster
            (tmp_path / "evil").mkdir()
            key, cert = make_keypair("evil", tmp_path / "evil")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.load_cert_chain(cert, key)
            tls = tls_connect(d1.cfg, ctx, nodes)
            if tls is not None:  # TLS 1.3: the client finishes before the server checks it
                with contextlib.suppress(OSError):
                    tls.send(record(b"H" + json.dumps(hello).encode()))
                assert tls_closed(tls, nodes)
                tls.close()
        assert d1.t.counters["tls_failed"] >= 2
        assert d1.t.counters["frames_received"] == 0
        assert not any(isinstance(f, Status) and f.sent_seq == 99 for f in d1.got)
        nodes[1].t.send(("d1",), status("d2:1", seq=7))
        run_until(nodes, lambda: any(isinstance(f, Status) and f.sent_seq == 7 for f in d1.got))
    finally:
        for n in nodes:
            n.close()


def test_a_keyed_peer_cannot_name_itself_another_daemon(tmp_path: Path) -> None:
    c1, c2, _ = keyed_configs(tmp_path, ["d1", "d2", "d3"])
    nodes = [Node(c1), Node(c2)]  # d3 is down; d2 holds its own key only
    d1, d2 = nodes
    try:
        run_until(nodes, lambda: links_up(nodes))
        with capture_logs() as logs:
            d2.t.send(("d1",), status("d3:1", seq=5))  # a frame of d3's over d2's link
            d2.t.send(("d1",), status("d2:1", seq=6))
            run_until(nodes, lambda: any(isinstance(f, Status) and f.sent_seq == 6 for f in d1.got))
            assert d1.t.counters["frames_forged"] == 1
            # d2's certificate with a hello naming d3: the link is closed
            security = LinkSecurity(c2)
            tls = tls_connect(c1, security.client, nodes)
            assert tls is not None
            tls.sendall(
                record(b"H" + json.dumps({"name": "d3", "settings": d1.t.settings}).encode())
            )
            assert tls_closed(tls, nodes)
        assert d1.t.counters["frames_forged"] == 2
        assert [f.sent_seq for f in d1.got if isinstance(f, Status)] == [6]
        assert any(e["event"] == "peer_forged_hello" and e["claims"] == "d3" for e in logs)
    finally:
        for n in nodes:
            n.close()


@pytest.mark.parametrize("keyed", [False, True])
def test_an_eavesdropper_on_the_path_sees_only_ciphertext(tmp_path: Path, keyed: bool) -> None:
    """The same traffic through a tap: plaintext without keys (the test can fail), none with."""
    secret = b"attack at dawn 0123456789"
    c1, c2 = keyed_configs(tmp_path, ["d1", "d2"])
    tap = Tap(c2.me.data_port)
    # d1 dials d2 through the tap
    c1 = replace(c1, peers=(c1.me, replace(c1.peer("d2"), data_port=tap.port)))
    if not keyed:
        c1, c2 = _open(c1), _open(c2)
    # d2 listens before d1 dials: d1's link is up as soon as the tap accepts it, and a tap that
    # then finds no d2 to forward to closes it, with the Data below already written into it.
    n2 = Node(c2)
    nodes = [Node(c1), n2]
    try:
        run_until(
            nodes,
            lambda: "d2" in nodes[0].t.stats()["links_up"] and n2.t.peer["d1"].hellos > 0,
            timeout=20,
        )
        view = ViewId(1, "d1:1")
        data = Data(view=view, sender="d1:1", first_seq=1, msgs=(msg(secret.decode()),))
        nodes[0].t.send(("d2",), data)
        run_until(nodes, lambda: any(isinstance(f, Data) for f in nodes[1].got), timeout=20)
        seen = tap.bytes()
        assert (secret in seen) is (not keyed)
    finally:
        tap.close()
        for n in nodes:
            n.close()


def _open(cfg: DaemonConfig) -> DaemonConfig:
    peers = tuple(replace(p, cert="") for p in cfg.peers)
    return replace(cfg, security=SecurityConfig(), peers=peers)


def test_key_and_cert_settings_are_checked_with_clear_errors(tmp_path: Path) -> None:
    make_keypair("d1", tmp_path)
    make_keypair("d2", tmp_path)
    peers = [
        {"name": "d1", "data_port": 5000, "control_port": 5001, "cert": "d1.crt"},
        {"name": "d2", "data_port": 5002, "control_port": 5003, "cert": "d2.crt"},
    ]
    src = str(tmp_path / "cluster.toml")
    ok = parse_config({"security": {"key": "d1.key"}, "peers": peers}, src)
    assert ok.security.enabled and ok.peer("d2").cert == str(tmp_path / "d2.crt")  # relative
    cases: list[tuple[dict[str, Any], str]] = [
        ({"peers": peers}, "cert is set but [security] key is not"),
        (
            {
                "security": {"key": "d1.key"},
                "peers": [peers[0], {"name": "d2", "data_port": 5002, "control_port": 5003}],
            },
            "[[peers]] d2 has no cert",
        ),
        ({"security": {"key": "nope.key"}, "peers": peers}, "[security] key: cannot read"),
        (
            {"security": {"key": "d1.key"}, "peers": peers, "daemon": {"transport": "zmq"}},
            'secures transport = "tcp" only',
        ),
        ({"security": {"key": "d1.key", "extra": 1}, "peers": peers}, "unknown key 'extra'"),
    ]
    (tmp_path / "open.key").write_bytes((tmp_path / "d1.key").read_bytes())
    (tmp_path / "open.key").chmod(0o644)
    cases.append(({"security": {"key": "open.key"}, "peers": peers}, "chmod 600 it"))
    for raw, want in cases:
        with pytest.raises(ConfigError) as err:
            parse_config(raw, src)
        assert want in str(err.value) and src in str(err.value)
    # the key of another daemon, or a certificate that is not one: refused when the links start
    wrong = parse_config({"security": {"key": "d2.key"}, "peers": peers}, src)
    with pytest.raises(TlsError, match=r"d2\.key"):
        LinkSecurity(wrong)
    (tmp_path / "bad.crt").write_text("not a certificate\n")
    bad = [peers[0], {**peers[1], "cert": "bad.crt"}]
    with pytest.raises(TlsError, match="d2 cert"):
        LinkSecurity(parse_config({"security": {"key": "d1.key"}, "peers": bad}, src))
    # PEM armour around bytes that are no certificate: refused by OpenSSL, said as a TlsError
    (tmp_path / "junk.crt").write_text(ssl.DER_cert_to_PEM_cert(b"\x30\x03\x02\x01\x01"))
    junk = [peers[0], {**peers[1], "cert": "junk.crt"}]
    with pytest.raises(TlsError, match="cannot use"):
        LinkSecurity(parse_config({"security": {"key": "d1.key"}, "peers": junk}, src))


def test_a_final_leave_goes_out_sealed_at_close(tmp_path: Path) -> None:
    """The shutdown path (``close(linger_ms)``) seals what the last turn queued: a keyed
    daemon's ``Leave`` reaches its peers like an open one's."""
    c1, c2 = keyed_configs(tmp_path, ["d1", "d2"])
    d1, d2 = Node(c1), Node(c2)
    try:
        run_until([d1, d2], lambda: links_up([d1, d2]))
        leave = Leave(view=ViewId(1, "d1:1"), sender="d1:1")
        d1.t.send(("d2",), leave)  # no flush: the driver closes right after its last turn
        d1.t.close(linger_ms=200)
        run_until([d2], lambda: leave in d2.got)
    finally:
        d1.close()
        d2.close()
