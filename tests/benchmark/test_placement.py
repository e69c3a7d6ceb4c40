"""The epgm settings a namespace LAN's daemons get, and when epgm is refused (no LAN made)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from groupcomm.benchmark import placement
from groupcomm.benchmark.placement import epgm_group, epgm_toml, transport_problem
from groupcomm.config import parse_config


def test_every_subnet_gets_its_own_group_and_port() -> None:
    groups = {epgm_group(k) for k in range(256)}
    assert len({g for g, _ in groups}) == 256 and len({p for _, p in groups}) == 256
    assert epgm_group(3) == ("239.192.79.3", placement.EPGM_PORT_BASE + 3)
    with pytest.raises(ValueError):
        epgm_group(256)


def test_the_epgm_table_is_a_valid_daemon_config() -> None:
    group, port = epgm_group(7)
    text = (
        '[daemon]\nname = "d1"\ntransport = "epgm"\n\n'
        '[[peers]]\nname = "d1"\nhost = "10.77.7.1"\n\n' + epgm_toml("10.77.7.1", group, port)
    )
    config = parse_config(tomllib.loads(text))
    assert config.transport == "epgm"
    assert config.epgm.endpoint == f"epgm://10.77.7.1;{group}:{port}"


def test_epgm_needs_a_lan_and_pgm(monkeypatch: pytest.MonkeyPatch) -> None:
    import zmq

    assert transport_problem("tcp", False) is None
    assert "needs --netns" in (transport_problem("epgm", False) or "")
    monkeypatch.setattr(zmq, "has", lambda what: False)
    assert "has no PGM" in (transport_problem("epgm", True) or "")
    monkeypatch.setattr(zmq, "has", lambda what: what == "pgm")
    assert transport_problem("epgm", True) is None
    assert "unknown transport" in (transport_problem("udp", True) or "")


def test_loopback_refuses_epgm(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="--netns"):
        placement.Loopback().cluster(tmp_path, ("d1",), {}, "epgm")
