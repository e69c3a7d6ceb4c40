"""The compiled hot path (groupcomm/compiled.py, scripts/compile.py): what loads it, what keeps a
stale build out, and that the build behaves like the source where it could differ.

This process runs the source (tests/conftest.py); everything compiled runs in child processes,
as the daemons the other live tests start do. Without a fresh build the tests that need one skip,
unless ``GROUPCOMM_REQUIRE_COMPILED=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from groupcomm import compiled
from groupcomm.client.connection import query_status
from groupcomm.localcluster import LocalCluster
from tests.daemon.live import wait_daemons

ROOT = Path(__file__).resolve().parent.parent


def need_build() -> None:
    why = compiled._check_build()
    if not why:
        return
    if os.environ.get("GROUPCOMM_REQUIRE_COMPILED") == "1":
        pytest.fail(f"GROUPCOMM_REQUIRE_COMPILED=1 but {why}")
    pytest.skip(f"no fresh compiled build: {why} (python scripts/compile.py)")


def child_env(mode: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != compiled.ENV}
    if mode is not None:
        env[compiled.ENV] = mode
    return env


def run(
    args: list[str], mode: str | None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in the checkout, with ``GROUPCOMM_COMPILED=mode`` (None: unset)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=child_env(mode),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


WHERE = (
    "import importlib, json\n"
    "from groupcomm import compiled\n"
    "print(json.dumps([compiled.active(), compiled.why_not(),\n"
    "    {m: importlib.import_module(m).__file__ for m in compiled.MODULES}]))\n"
)


def test_a_new_process_loads_every_listed_module_from_a_fresh_build() -> None:
    need_build()
    done = run(["-c", WHERE], None)  # the default, auto
    assert done.returncode == 0, done.stderr
    active, why, files = json.loads(done.stdout)
    assert active and why == ""
    assert all(f.startswith(str(compiled.BUILD_DIR)) for f in files.values()), files


def test_groupcomm_compiled_0_runs_the_source() -> None:
    done = run(["-c", WHERE], "0")
    assert done.returncode == 0, done.stderr
    active, why, files = json.loads(done.stdout)
    assert not active and why == "GROUPCOMM_COMPILED=0"
    assert all(f.endswith(".py") and f.startswith(str(ROOT / "groupcomm")) for f in files.values())


def test_a_bad_mode_is_refused_by_name() -> None:
    done = run(["-c", "import groupcomm"], "yes")
    assert done.returncode != 0
    assert "GROUPCOMM_COMPILED='yes': expected auto, 0 or 1" in done.stderr


def fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout of two source files and no build, as ``compiled`` sees it."""
    root = tmp_path / "checkout"
    (root / "groupcomm" / "core").mkdir(parents=True)
    (root / "groupcomm" / "a.py").write_text("A = 1\n")
    (root / "groupcomm" / "core" / "b.py").write_text("B = 2\n")
    monkeypatch.setattr(compiled, "ROOT", root)
    monkeypatch.setattr(compiled, "BUILD_DIR", root / "build" / "compiled")
    monkeypatch.setattr(compiled, "MANIFEST", root / "build" / "compiled" / "manifest.json")
    return root


def test_any_changed_added_or_removed_source_makes_the_build_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fake_tree(tmp_path, monkeypatch)
    recorded = compiled.fingerprint(compiled.source_files())
    assert compiled.stale_sources(recorded) == []
    a = root / "groupcomm" / "a.py"
    os.utime(a, ns=(1, 1))  # a fresh checkout moves mtimes: same bytes, still fresh
    assert compiled.stale_sources(recorded) == []
    a.write_text("A = 3\n")  # same size, new bytes
    assert compiled.stale_sources(recorded) == ["groupcomm/a.py"]
    a.write_text("A = 1\n")
    (root / "groupcomm" / "core" / "c.py").write_text("")
    (root / "groupcomm" / "core" / "b.py").unlink()
    assert compiled.stale_sources(recorded) == ["groupcomm/core/b.py", "groupcomm/core/c.py"]


def test_without_a_usable_build_auto_runs_the_source_and_1_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fake_tree(tmp_path, monkeypatch)
    monkeypatch.setattr(compiled, "_state", {"active": False, "why": ""})
    monkeypatch.setenv(compiled.ENV, "auto")
    assert not compiled.activate()
    assert compiled.why_not() == "no compiled build"
    monkeypatch.setenv(compiled.ENV, "1")
    with pytest.raises(compiled.CompiledUnavailable, match="no compiled build"):
        compiled.activate()
    # A build of this very tree, then one source changes: stale, not loaded.
    build = root / "build" / "compiled"
    build.mkdir(parents=True)
    files = {name: f"{name}.so" for name in compiled.MODULES}
    for rel in files.values():
        (build / rel).write_bytes(b"")
    manifest = {
        "version": compiled.MANIFEST_VERSION,
        "tag": compiled.build_tag(),
        "files": files,
        "sources": compiled.fingerprint(compiled.source_files()),
    }
    compiled.MANIFEST.write_text(json.dumps(manifest))
    assert compiled._check_build() == ""
    (root / "groupcomm" / "a.py").write_text("A = 2\n")
    assert compiled._check_build() == "stale compiled build (groupcomm/a.py changed since)"
    with pytest.raises(compiled.CompiledUnavailable, match="stale"):
        compiled.activate()
    manifest["tag"] = "cpython-399-plan9"
    compiled.MANIFEST.write_text(json.dumps(manifest))
    assert "for cpython-399-plan9" in compiled._check_build()
    assert not compiled.active()  # nothing was installed in this process
    assert not any(type(f).__name__ == "_Finder" for f in sys.meta_path)


def test_the_compiled_codecs_refuse_hostile_bytes_with_their_own_error_only() -> None:
    """A compiled function raises TypeError for a value of the wrong type where the source
    would reach its own check: the decoders must still raise nothing but WireError. (Shown to
    fail: without the payload type check in ``peer._msg`` the compiled build raised TypeError
    for 22 of 9,300 inputs, the source for none.)"""
    need_build()
    done = run(["-m", "tests.compiled_fuzz", "7", "400"], "1", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 raised something else" in done.stdout


IMMUTABLE = (
    "from groupcomm import compiled\n"
    "from groupcomm.core import events, frames, ids\n"
    "from groupcomm.daemon import sessions\n"
    "from groupcomm.wire import client\n"
    "assert compiled.active()\n"
    "v = ids.ViewId(epoch=1, coord='d1')\n"
    "m = frames.new_msg(0, '#c#d1', 16, ('g',), 0, b'p')\n"
    "records = [\n"
    "    (v, 'epoch'),\n"
    "    (m, 'payload'),\n"
    "    (frames.Status(view=v, sender='d1', max_epoch=1, proposal=None, sent_seq=0,\n"
    "                   ordered_upto=0, ord_known=0, aru=0, stable=0), 'aru'),\n"
    "    (frames.Data(view=v, sender='d1', first_seq=1, msgs=(m,)), 'msgs'),\n"
    "    (frames.Ordered(view=v, first_gseq=1, ranges=()), 'first_gseq'),\n"
    "    (events.TimerFired(name='tick'), 'name'),\n"
    "    (client.McastReq(1, ('g',), 16, 0, b'p'), 'payload'),\n"
    "    (client.CreditGrant(5), 'nbytes'),\n"
    "    (sessions.Granted('#c#d1', 5), 'nbytes'),\n"
    "]\n"
    "for record, name in records:\n"
    "    try:\n"
    "        setattr(record, name, 0)\n"
    "    except AttributeError:\n"
    "        continue\n"
    "    raise SystemExit(f'{type(record).__name__}.{name} could be assigned')\n"
    "print('immutable', len(records))\n"
)


def test_the_compiled_per_turn_records_are_immutable() -> None:
    """``ViewId``, ``Msg``, ``Status`` and the other per-turn records are not ``frozen=True``
    (their written ``__init__`` compiles natively, ``core/frames.py``): their ``Final`` fields
    must make them read-only in the build, as ``frozen`` did."""
    need_build()
    done = run(["-c", IMMUTABLE], "1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "immutable 9" in done.stdout


def test_the_compiled_core_keeps_every_property_on_simulator_seeds() -> None:
    """The simulator's swarm, in processes that load the build: every checker on every seed."""
    need_build()
    done = run(["-m", "sim", "swarm", "--seeds", "0-39", "--jobs", "2"], "1", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "40 seeds (--buggify), 0 failed" in done.stdout


async def test_a_daemon_says_it_runs_the_compiled_build(tmp_path: Path) -> None:
    need_build()
    cluster = LocalCluster(tmp_path, ("d1",), trace=False)
    cluster.start()
    try:
        await wait_daemons(cluster, ("d1",), 20)
        status = await query_status(cluster.endpoints["d1"], 5.0)
        assert status["compiled"] is True, status.get("compiled_why_not")
        assert status["compiled_why_not"] == ""
    finally:
        cluster.stop()
