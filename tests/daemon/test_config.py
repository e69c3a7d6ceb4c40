"""groupcomm.config: defaults, a full file, validation errors that name the file and the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from groupcomm.accessconfig import AccessConfig
from groupcomm.config import (
    DEFAULT_CLIENT_ENDPOINTS,
    ConfigError,
    DaemonConfig,
    PeerConfig,
    ProtocolConfig,
    core_config,
    load_config,
    parse_config,
)
from groupcomm.core.config import CoreConfig

FULL = """
[daemon]
name = "d2"
client_endpoints = ["tcp://10.0.0.2:4803"]
log_json = true
log_level = "debug"
trace = "/var/log/groupcomm/d2.jsonl"
admin = ["uid:0"]
slow_consumer_bytes = 1000000
session_send_window = 65536

[[peers]]
name = "d1"
host = "10.0.0.1"
data_port = 5000
control_port = 5001

[[peers]]
name = "d2"
host = "10.0.0.2"

[protocol]
heartbeat_ms = 50
suspect_timeout_ms = 500
flush_timeout_ms = 300
install_timeout_ms = 600
gather_timeout_ms = 200
tick_ms = 5
window_msgs = 1000
window_bytes = 100000
"""


def write(tmp_path: Path, text: str, name: str = "cluster.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_zero_config_defaults() -> None:
    cfg = load_config(None)
    assert cfg.name == "d1"
    assert cfg.client_endpoints == DEFAULT_CLIENT_ENDPOINTS
    assert cfg.peers == (
        PeerConfig(name="d1", host="127.0.0.1", data_port=4810, control_port=4811),
    )
    assert cfg.me.data_endpoint == "tcp://127.0.0.1:4810"
    assert cfg.access == AccessConfig()  # no rules, no tokens, no admin
    assert cfg.access.admin == frozenset() and cfg.access.max_sessions == 1000
    assert cfg.log_json is False and cfg.trace == ""
    assert cfg.slow_consumer_bytes == 8 << 20 and cfg.session_send_window == 1 << 20
    core = CoreConfig(name="x", incarnation=0, peers=("x",))
    assert cfg.protocol.heartbeat_ms == core.heartbeat_ms
    assert cfg.protocol.suspect_timeout_ms == core.suspect_timeout_ms
    assert cfg.protocol.window_bytes == core.window_bytes


def test_name_override_without_file_is_a_singleton_of_that_name() -> None:
    cfg = load_config(None, name="d7", log_json=True, trace="t.jsonl")
    assert cfg.name == "d7" and cfg.peer_names == ("d7",)
    assert cfg.log_json and cfg.trace == "t.jsonl"


def test_full_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL))
    assert cfg == DaemonConfig(
        name="d2",
        client_endpoints=("tcp://10.0.0.2:4803",),
        log_json=True,
        log_level="debug",
        trace="/var/log/groupcomm/d2.jsonl",
        slow_consumer_bytes=1_000_000,
        session_send_window=65536,
        peers=(
            PeerConfig(name="d1", host="10.0.0.1", data_port=5000, control_port=5001),
            PeerConfig(name="d2", host="10.0.0.2", data_port=4810, control_port=4811),
        ),
        protocol=ProtocolConfig(
            heartbeat_ms=50,
            suspect_timeout_ms=500,
            flush_timeout_ms=300,
            install_timeout_ms=600,
            gather_timeout_ms=200,
            tick_ms=5,
            window_msgs=1000,
            window_bytes=100000,
        ),
        access=AccessConfig(admin=frozenset({"uid:0"})),
        source=str(tmp_path / "cluster.toml"),
    )
    # command-line overrides win over the file
    over = load_config(write(tmp_path, FULL), name="d1", log_json=False)
    assert over.name == "d1" and not over.log_json


def test_allow_admin_is_refused_with_what_to_write_instead(tmp_path: Path) -> None:
    text = FULL.replace('admin = ["uid:0"]\n', "allow_admin = true\n")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert str(err.value).startswith(f"{tmp_path / 'cluster.toml'}: [daemon] allow_admin is ")
    assert f'admin = ["uid:{os.getuid()}"]' in str(err.value) and 'admin = ["*"]' in str(err.value)


def test_core_config() -> None:
    cfg = load_config(None)
    core = core_config(cfg, incarnation=42, trace_messages=True)
    assert core.name == "d1" and core.incarnation == 42 and core.peers == ("d1",)
    assert core.trace_messages and core.heartbeat_ms == cfg.protocol.heartbeat_ms
    a = core_config(cfg).incarnation
    assert a > 1_600_000_000_000  # wall-clock milliseconds: a restart is a new incarnation


def test_fingerprint_is_sorted_protocol_settings() -> None:
    fp = ProtocolConfig().fingerprint()
    assert [k for k, _ in fp] == sorted(k for k, _ in fp)
    assert len(fp) == 10
    assert ProtocolConfig(heartbeat_ms=41).fingerprint() != fp
    # Star and all-to-all daemons cannot share a view (protocol/membership.md section 2).
    assert ProtocolConfig(star_members=3).fingerprint() != fp


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[protocol]\nheartbeat_ms = -3\n",
            "[protocol] heartbeat_ms must be a positive integer, got -3",
        ),
        ("[protocol]\ntick_ms = 0\n", "[protocol] tick_ms must be a positive integer, got 0"),
        ("[protocol]\nstar_members = 1\n", "[protocol] star_members must be at least 2, got 1"),
        ("[protocol]\nwindow_msgs = 1.5\n", "[protocol] window_msgs must be a positive integer"),
        ("[protocol]\nflush_timeout_ms = true\n", "[protocol] flush_timeout_ms must be a positive"),
        (
            "[protocol]\nheartbeat_ms = 1200\n",
            "[protocol] suspect_timeout_ms must exceed heartbeat_ms, got 1000 <= 1200",
        ),
        ("[protocol]\nheartbeat = 30\n", "[protocol] unknown key 'heartbeat'"),
        ("[daemon]\nnmae = 'd1'\n", "[daemon] unknown key 'nmae'"),
        ("[deamon]\nname = 'd1'\n", "unknown key 'deamon'"),
        ("[daemon]\nlog_json = 'yes'\n", "[daemon] log_json must be true or false, got 'yes'"),
        ("[daemon]\nallow_admin = false\n", "[daemon] allow_admin is replaced by [daemon] admin"),
        ("[daemon]\ntrace = 3\n", "[daemon] trace must be a string, got 3"),
        ("[daemon]\nlog_level = 'loud'\n", "[daemon] log_level must be one of"),
        ("[daemon]\nname = 'a:b'\n", "[daemon] name must be 1..64 characters without ':'"),
        ("[daemon]\nname = ''\n", "[daemon] name must be 1..64 characters"),
        ("[daemon]\nslow_consumer_bytes = 0\n", "[daemon] slow_consumer_bytes must be a positive"),
        ("[daemon]\nsession_send_window = -1\n", "[daemon] session_send_window must be a positive"),
        ("[daemon]\nclient_endpoints = 'tcp://x:1'\n", "[daemon] client_endpoints must be a list"),
        ("[daemon]\nclient_endpoints = ['udp://x:1']\n", "[daemon] client_endpoints: 'udp://x:1'"),
        ("protocol = 3\n", "protocol must be a table, got 3"),
        ("peers = []\n", "peers must be a non-empty array of tables"),
        ("[[peers]]\nhost = '127.0.0.1'\n", "[[peers]] #1 name is required"),
        ("[[peers]]\nname = 'd1'\nport = 3\n", "[[peers]] #1 unknown key 'port'"),
        ("[[peers]]\nname = 'd1'\ndata_port = 70000\n", "[[peers]] d1: data_port must be a port"),
        (
            "[[peers]]\nname = 'd1'\ncontrol_port = 'x'\n",
            "[[peers]] d1: control_port must be a port",
        ),
        ("[[peers]]\nname = 'd1'\nhost = ''\n", "[[peers]] d1: host must not be empty"),
        ("[[peers]]\nname = 'd1'\n[[peers]]\nname = 'd1'\n", "[[peers]] d1: name is listed twice"),
        (
            "[[peers]]\nname = 'd1'\n[[peers]]\nname = 'd2'\n",
            "[[peers]] d2: data_port 4810 on 127.0.0.1 is already used by d1 (data_port)",
        ),
        (
            "[[peers]]\nname = 'd1'\ndata_port = 5000\ncontrol_port = 5000\n",
            "[[peers]] d1: control_port 5000 on 127.0.0.1 is already used by d1 (data_port)",
        ),
        (
            "[[peers]]\nname = 'd2'\n",
            "this daemon 'd1' is not among [[peers]] (d2)",
        ),
        ("[daemon\n", "invalid TOML"),
        (
            "[daemon]\ntransport = 'pgm'\n",
            "[daemon] transport must be one of tcp, zmq, epgm, got 'pgm'",
        ),
        ("[daemon]\ntransport = 'epgm'\n", "[epgm] interface is required with transport"),
        ("[epgm]\ninterface = 'eth0;x'\n", "[epgm] interface must be an interface name"),
        ("[epgm]\ngroup = '10.0.0.1'\n", "[epgm] group must be an IPv4 multicast address"),
        ("[epgm]\ngroup = 'x'\n", "[epgm] group must be an IPv4 multicast address"),
        ("[epgm]\nport = 0\n", "[epgm] port must be a port number"),
        ("[epgm]\nrate_kbps = 0\n", "[epgm] rate_kbps must be a positive integer"),
        ("[epgm]\nrecovery = 5\n", "[epgm] unknown key 'recovery'"),
    ],
)
def test_validation_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: "), str(info.value)
    assert message in str(info.value), str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read"):
        load_config(tmp_path / "nope.toml")


def test_bad_name_override() -> None:
    with pytest.raises(ConfigError, match="--name must be"):
        load_config(None, name="a#b")


def test_epgm_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[daemon]\ntransport = 'epgm'\n[epgm]\ninterface = '10.1.2.3'\ngroup = '239.1.2.3'\n"
        "port = 6000\nrate_kbps = 50000\nrecovery_ms = 300\n",
    )
    cfg = load_config(path)
    assert cfg.transport == "epgm"
    assert cfg.epgm.endpoint == "epgm://10.1.2.3;239.1.2.3:6000"
    assert (cfg.epgm.rate_kbps, cfg.epgm.recovery_ms) == (50000, 300)
    default = load_config(write(tmp_path, "[daemon]\nname = 'd1'\n"))
    assert default.transport == "tcp"
    # Deliberately far above libzmq's own defaults (100 kbit/s, 10 s), see config.py.
    assert default.epgm.rate_kbps == 1_000_000 and default.epgm.recovery_ms == 1_000


def test_slow_consumer_ms(tmp_path: Path) -> None:
    assert DaemonConfig().slow_consumer_ms == 250
    path = tmp_path / "c.toml"
    path.write_text("[daemon]\nslow_consumer_ms = 1500\n")
    assert load_config(path).slow_consumer_ms == 1500
    path.write_text("[daemon]\nslow_consumer_ms = 0\n")
    with pytest.raises(ConfigError, match="slow_consumer_ms"):
        load_config(path)


def test_max_message_bytes_is_a_protocol_setting_and_sizes_the_slow_consumer_limit() -> None:
    big = 64 << 20
    cfg = parse_config({"protocol": {"max_message_bytes": big}})
    assert cfg.protocol.max_message_bytes == big
    assert ("max_message_bytes", big) in cfg.protocol.fingerprint()
    assert cfg.slow_consumer_bytes == 2 * big  # the default grows with it
    assert cfg.slow_consumer_ms == 2048  # ... and so does the stall rule's: 64 MiB / 32 KiB
    assert parse_config({"protocol": {"max_message_bytes": 1 << 20}}).slow_consumer_ms == 250
    given = {"protocol": {"max_message_bytes": big}, "daemon": {"slow_consumer_ms": 300}}
    assert parse_config(given).slow_consumer_ms == 300
    assert core_config(cfg, incarnation=1).max_message_bytes == big
    with pytest.raises(ConfigError, match="slow_consumer_bytes must be at least twice"):
        parse_config(
            {"protocol": {"max_message_bytes": big}, "daemon": {"slow_consumer_bytes": big}}
        )
    with pytest.raises(ConfigError, match="max_message_bytes must be at most"):
        parse_config({"protocol": {"max_message_bytes": 2 << 30}})
