"""Gates for tests that need network namespaces (root, iproute2, iptables) or a pyzmq with PGM.

Without them a test skips and says why, so the suite still runs on a laptop as a normal user.
CI must not get a green run that proved nothing, so there ``GROUPCOMM_REQUIRE_NETNS=1`` and
``GROUPCOMM_REQUIRE_PGM=1`` (set by ``.ci/run``) turn the skip into a failure with the same
reason.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

import pytest

from groupcomm import netlan

T = 15.0  # seconds, bound of every helper's wait


def _gate(reason: str | None, env: str) -> None:
    if reason is None:
        return
    if os.environ.get(env) == "1":
        pytest.fail(f"{env}=1 but: {reason}", pytrace=False)
    pytest.skip(reason)


def pgm_problem() -> str | None:
    """``None`` if this pyzmq's libzmq has PGM (epgm endpoints), else why not."""
    import zmq

    if zmq.has("pgm"):
        return None
    return (
        f"libzmq {zmq.zmq_version()} (pyzmq {zmq.__version__}) has no PGM: "
        "run scripts/setup.sh as root to build pyzmq against the system libzmq"
    )


def require_netns() -> None:
    """Skip (or fail under ``GROUPCOMM_REQUIRE_NETNS=1``) unless a ``NetLan`` can be made."""
    _gate(netlan.available(), "GROUPCOMM_REQUIRE_NETNS")


def require_pgm() -> None:
    """Skip (or fail under ``GROUPCOMM_REQUIRE_PGM=1``) unless epgm is available."""
    _gate(pgm_problem(), "GROUPCOMM_REQUIRE_PGM")


def run_on(
    lan: netlan.NetLan, i: int, argv: Sequence[str], timeout: float = T
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` on host ``i`` of ``lan`` (bounded); the finished process."""
    return subprocess.run(
        [*lan.exec_prefix(i), *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def start_on(
    lan: netlan.NetLan, i: int, argv: Sequence[str], *, stdin: bool = False
) -> subprocess.Popen[str]:
    """Start ``argv`` on host ``i``, stdout and stderr (and stdin if asked) piped as text."""
    return subprocess.Popen(
        [*lan.exec_prefix(i), *argv],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = T) -> str:
    """Its remaining stdout once it exits (killed after ``timeout``); asserts it exited 0."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args!r} ran over {timeout} s: {err}") from None
    assert proc.returncode == 0, f"{proc.args!r} exited {proc.returncode}: {err}"
    return out


def set_udp_loss(lan: netlan.NetLan, i: int, percent: float) -> None:
    """Drop ``percent`` % of the UDP packets (PGM data, NAKs and repairs: multicast and unicast)
    arriving at host ``i``, TCP untouched; counted in ``drop.loss`` like ``NetLan.set_loss``,
    which it replaces (and ``NetLan.clear_loss`` undoes)."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    rules = (
        "*filter\n-F GC_LOSS_IN\n-F GC_LOSS_OUT\n"
        f"-A GC_LOSS_IN -p udp -m statistic --mode random --probability {percent / 100:.6f}"
        ' -m comment --comment "gc:drop.loss" -j DROP\nCOMMIT\n'
    )
    netlan.run([*lan.exec_prefix(i), "iptables-restore", "--noflush"], stdin=rules)
