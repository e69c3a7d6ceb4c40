"""The compiled hot path: mypyc builds of the modules every daemon turn runs through.

``scripts/compile.py`` (run by ``scripts/setup.sh``, so by both README commands) compiles
``MODULES`` from this same source with mypyc into ``build/compiled/`` and writes a manifest of
the sources it compiled. ``import groupcomm`` calls ``activate``: when the manifest matches the
source tree, a finder at the front of ``sys.meta_path`` loads exactly those modules from their
compiled files; anything else, and any module of a stale or missing build, is the plain Python
source. The behaviour is the same either way; a compiled daemon turn costs about half
(``docs/performance.md``, "A compiled hot path").

``GROUPCOMM_COMPILED`` chooses per process: ``auto`` (the default) uses a fresh build if there
is one, ``0`` never uses it, ``1`` requires it (``activate`` raises ``CompiledUnavailable``
otherwise). The test suite runs its own process on the source, because its mutation tests
replace functions of the core, which compiled classes do not allow; the daemons it starts use
the build (``tests/conftest.py``, ``tests/test_compiled.py``).

Adding a module to ``MODULES``: mypyc compiles what ``mypy --strict`` accepts, but runs it with
a few differences from CPython, and the in-process tests cannot see them (they run the source).
The ones met so far: a call may not pass a keyword with the name of a positional-only parameter
of a compiled function (``PeerLog.warn(peer, ..., /, **fields)`` with a ``peer`` field, which
kept ``daemon/transport.py`` out); a value of the wrong type raises ``TypeError`` at a compiled
function's boundary or typed assignment where the source would reach its own check (hence the
codec fuzz); native classes cannot be monkeypatched, subclassed from source modules or
introspected with ``dataclasses``. And what ``@dataclass`` or ``NamedTuple`` generate at import
(``__init__``, ``__new__``, ``__eq__``) stays interpreted: a record built on every turn needs a
written ``__init__`` (``core/frames.py``, docstring) or ``tuple.__new__``. Run
``tests/test_compiled.py`` and the live tests (``tests/daemon``), which start compiled daemons,
before adding one.

Standard library only: this runs before anything else of the package is imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

ENV = "GROUPCOMM_COMPILED"
ROOT = Path(__file__).resolve().parent.parent  # the checkout: groupcomm/ and build/
BUILD_DIR = ROOT / "build" / "compiled"
MANIFEST = BUILD_DIR / "manifest.json"
MANIFEST_VERSION = 1

# What a daemon turn runs through: the protocol core, the codecs, and the daemon's loop, links
# and session layer. Not the client library (applications may replace its methods in tests) and
# nothing that only runs at start-up. ``__init__`` modules stay plain.
MODULES: tuple[str, ...] = (
    "groupcomm.core.commands",
    "groupcomm.core.config",
    "groupcomm.core.epoch",
    "groupcomm.core.events",
    "groupcomm.core.fragments",
    "groupcomm.core.frames",
    "groupcomm.core.groups",
    "groupcomm.core.ids",
    "groupcomm.core.membership",
    "groupcomm.core.node",
    "groupcomm.core.requests",
    "groupcomm.core.service",
    "groupcomm.core.tracing",
    "groupcomm.core.viewchange",
    "groupcomm.wire.client",
    "groupcomm.wire.errors",
    "groupcomm.wire.peer",
    "groupcomm.wire.spread",
    "groupcomm.wire.stream",
    "groupcomm.daemon.clientlinks",
    "groupcomm.daemon.driver",
    "groupcomm.daemon.frontend",
    "groupcomm.daemon.frontends",
    "groupcomm.daemon.readiness",
    "groupcomm.daemon.sessions",
    "groupcomm.daemon.tcplinks",
)


class CompiledUnavailable(RuntimeError):
    """``GROUPCOMM_COMPILED=1`` and no fresh build to use."""


def source_files() -> list[Path]:
    """Every Python file of the package: a compiled module can depend on any of them (constants
    it imports, classes it subclasses), so a change to any makes the build stale."""
    return sorted((ROOT / "groupcomm").rglob("*.py"))


def module_source(name: str) -> Path:
    return ROOT.joinpath(*name.split(".")).with_suffix(".py")


def fingerprint(files: Sequence[Path]) -> dict[str, list[int | str]]:
    """``relative path -> [size, mtime_ns, sha256]`` of ``files``."""
    out: dict[str, list[int | str]] = {}
    for path in files:
        data = path.read_bytes()
        st = path.stat()
        out[path.relative_to(ROOT).as_posix()] = [
            st.st_size,
            st.st_mtime_ns,
            hashlib.sha256(data).hexdigest(),
        ]
    return out


def stale_sources(recorded: dict[str, list[int | str]]) -> list[str]:
    """The sources that differ from what the build compiled (added, removed or changed). Size
    and mtime first; a file whose mtime moved (a fresh checkout) is hashed."""
    current = {p.relative_to(ROOT).as_posix(): p for p in source_files()}
    stale = sorted(set(current) ^ set(recorded))
    for rel, path in current.items():
        entry = recorded.get(rel)
        if entry is None:
            continue
        size, mtime_ns, digest = entry
        st = path.stat()
        if st.st_size != size or (
            st.st_mtime_ns != mtime_ns and hashlib.sha256(path.read_bytes()).hexdigest() != digest
        ):
            stale.append(rel)
    return sorted(stale)


def build_tag() -> str:
    """What a build is only valid for: this interpreter's ABI."""
    return f"{sys.implementation.cache_tag}-{sys.platform}"


class _Finder:
    """Loads the listed modules from their compiled files (``importlib.abc.MetaPathFinder``)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        return importlib.util.spec_from_file_location(fullname, file)


_state: dict[str, object] = {"active": False, "why": "not activated"}


def active() -> bool:
    """Whether this process loads the compiled modules."""
    return bool(_state["active"])


def why_not() -> str:
    """Why this process runs the plain source ("" when it runs the build)."""
    return "" if active() else str(_state["why"])


def activate() -> bool:
    """Install the finder if ``GROUPCOMM_COMPILED`` allows it and the build is fresh; whether
    this process now loads the compiled modules. Idempotent."""
    if active():
        return True
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "0", "1"):
        raise CompiledUnavailable(f"{ENV}={mode!r}: expected auto, 0 or 1")
    if mode == "0":
        _state["why"] = f"{ENV}=0"
        return False
    files, why = _fresh_build()
    if why:
        _state["why"] = why
        if mode == "1":
            raise CompiledUnavailable(f"{ENV}=1 but {why}; run: python scripts/compile.py")
        return False
    loaded = [name for name in files if name in sys.modules]
    if loaded:  # imported as source already: mixing the two would give two copies of a class
        _state["why"] = f"already imported from source: {', '.join(sorted(loaded)[:3])}"
        if mode == "1":
            raise CompiledUnavailable(str(_state["why"]))
        return False
    sys.meta_path.insert(0, _Finder(files))
    _state["active"] = True
    _state["why"] = ""
    return True


def _check_build() -> str:
    """ "" if the build in ``BUILD_DIR`` matches this source tree and interpreter, else why not."""
    return _fresh_build()[1]


def _fresh_build() -> tuple[dict[str, Path], str]:
    """The build's module files by module name and "", or ``{}`` and why it cannot be used: the
    manifest read once, for both the check and the finder."""
    try:
        manifest = json.loads(MANIFEST.read_text())
    except FileNotFoundError:
        return {}, "no compiled build"
    except (OSError, ValueError) as exc:
        return {}, f"unreadable {MANIFEST.name}: {exc}"
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        return {}, "a compiled build of another format"
    if manifest.get("tag") != build_tag():
        return {}, f"a compiled build for {manifest.get('tag')}, not {build_tag()}"
    files = manifest.get("files")
    if not isinstance(files, dict) or not set(MODULES) <= set(files):
        return {}, "a compiled build of other modules"
    paths = {name: BUILD_DIR / rel for name, rel in files.items()}
    for name, path in paths.items():
        if not path.is_file():
            return {}, f"compiled file missing: {files[name]}"
    stale = stale_sources(manifest.get("sources", {}))
    if stale:
        more = f" and {len(stale) - 1} more" if len(stale) > 1 else ""
        return {}, f"stale compiled build ({stale[0]}{more} changed since)"
    return paths, ""
