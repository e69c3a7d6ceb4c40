"""The skip-or-fail gates of ``tests/netlan_support.py``: a missing capability skips with its
reason, but fails under ``GROUPCOMM_REQUIRE_*=1`` (what ``.ci/run`` sets), so CI cannot pass by
skipping the namespace and PGM tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import zmq

from groupcomm import netlan
from tests import netlan_support

SKIP, FAIL = pytest.skip.Exception, pytest.fail.Exception


def outcome(gate: Callable[[], None]) -> tuple[str, str]:
    """("pass" | "skip" | "fail", message) of calling ``gate``; a skip must not escape here, or
    a broken gate would only turn this test into a skip."""
    try:
        gate()
    except SKIP as e:
        return "skip", str(e)
    except FAIL as e:
        return "fail", str(e)
    return "pass", ""


def test_missing_netns_skips_or_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlan, "available", lambda: "no namespaces here")
    monkeypatch.delenv("GROUPCOMM_REQUIRE_NETNS", raising=False)
    assert outcome(netlan_support.require_netns) == ("skip", "no namespaces here")
    monkeypatch.setenv("GROUPCOMM_REQUIRE_NETNS", "1")
    assert outcome(netlan_support.require_netns) == (
        "fail",
        "GROUPCOMM_REQUIRE_NETNS=1 but: no namespaces here",
    )


def test_missing_pgm_skips_or_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zmq, "has", lambda capability: False)
    monkeypatch.delenv("GROUPCOMM_REQUIRE_PGM", raising=False)
    kind, text = outcome(netlan_support.require_pgm)
    assert kind == "skip" and "has no PGM" in text
    monkeypatch.setenv("GROUPCOMM_REQUIRE_PGM", "1")
    kind, text = outcome(netlan_support.require_pgm)
    assert kind == "fail" and text.startswith("GROUPCOMM_REQUIRE_PGM=1 but: libzmq")


def test_present_capabilities_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlan, "available", lambda: None)
    monkeypatch.setattr(zmq, "has", lambda capability: capability == "pgm")
    monkeypatch.setenv("GROUPCOMM_REQUIRE_NETNS", "1")
    monkeypatch.setenv("GROUPCOMM_REQUIRE_PGM", "1")
    assert outcome(netlan_support.require_netns) == ("pass", "")
    assert outcome(netlan_support.require_pgm) == ("pass", "")
