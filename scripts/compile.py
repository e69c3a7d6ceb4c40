"""Compile the daemon's hot path with mypyc into build/compiled/ (groupcomm/compiled.py).

    python scripts/compile.py [--force] [--check]

Does nothing when the build there matches the source tree. Without mypy (the test extra) or a
C compiler it says so in one line and exits 0: the plain source then runs, with the same
behaviour, slower. ``GROUPCOMM_REQUIRE_COMPILED=1`` (CI) makes that an error, as is a build
that ``groupcomm.compiled.activate`` would not load. ``--check`` only reports: exit 0 if the
build is fresh, 1 if not. About 40 s on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["GROUPCOMM_COMPILED"] = "0"  # this process imports nothing compiled

from groupcomm import compiled  # noqa: E402

TEMP_DIR = ROOT / "build" / "mypyc-temp"
LOG = ROOT / "build" / "compile.log"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if fresh")
    parser.add_argument("--check", action="store_true", help="only say whether it is fresh")
    ns = parser.parse_args(argv)
    required = os.environ.get("GROUPCOMM_REQUIRE_COMPILED") == "1"
    why = compiled._check_build()
    if ns.check:
        print(f"compile: {why or 'fresh'}")
        return 0 if not why else 1
    if not why and not ns.force:
        print("compile: the compiled hot path is up to date")
        return 0
    problem = build()
    if problem is None:
        problem = verify()
    if problem is None:
        print(f"compile: compiled {len(compiled.MODULES)} modules into build/compiled")
        return 0
    shutil.rmtree(compiled.BUILD_DIR, ignore_errors=True)  # never leave a build that fails to load
    print(f"compile: the plain source will run (slower, same behaviour): {problem}")
    return 1 if required else 0


def build() -> str | None:
    """Compile ``MODULES``; None, or why it failed (the tool's output is in build/compile.log)."""
    try:
        from mypyc.build import mypycify
        from setuptools import Distribution  # type: ignore[import-untyped]
    except ImportError as exc:
        return f"mypyc unavailable ({exc.name} not installed; it comes with the test extra)"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return "no C compiler (cc)"
    shutil.rmtree(compiled.BUILD_DIR, ignore_errors=True)
    shutil.rmtree(TEMP_DIR, ignore_errors=True)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    sources = [str(compiled.module_source(name).relative_to(ROOT)) for name in compiled.MODULES]
    fingerprint = compiled.fingerprint(compiled.source_files())
    started = time.monotonic()
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)  # mypyc names modules by their path relative to the working directory
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            extensions = mypycify(sources, opt_level="3", multi_file=True, target_dir=str(TEMP_DIR))
            dist = Distribution({"name": "groupcomm-compiled", "ext_modules": extensions})
            cmd = dist.get_command_obj("build_ext")
            cmd.build_lib = str(compiled.BUILD_DIR)
            cmd.build_temp = str(TEMP_DIR)
            cmd.parallel = os.cpu_count() or 1
            dist.run_command("build_ext")
            outputs = cmd.get_outputs()
    except (Exception, SystemExit) as exc:  # mypy errors, compiler errors: all in the log
        LOG.write_text(out.getvalue() + f"\n{type(exc).__name__}: {exc}\n")
        return f"the build failed (build/compile.log): {str(exc)[:200]}"
    finally:
        os.chdir(cwd)
    LOG.write_text(out.getvalue())
    files: dict[str, str] = {}
    for path in map(Path, outputs):
        rel = path.relative_to(compiled.BUILD_DIR)
        name = ".".join((*rel.parts[:-1], rel.name.split(".")[0]))
        files[name] = rel.as_posix()
    missing = sorted(set(compiled.MODULES) - set(files))
    if missing:
        return f"the build made no module for {', '.join(missing)}"
    manifest = {
        "version": compiled.MANIFEST_VERSION,
        "tag": compiled.build_tag(),
        "files": files,
        "sources": fingerprint,
        "seconds": round(time.monotonic() - started, 1),
    }
    compiled.MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(TEMP_DIR, ignore_errors=True)
    return None


def verify() -> str | None:
    """A fresh interpreter must load the build: every listed module from its compiled file."""
    probe = (
        "import importlib, sys\n"
        "from groupcomm import compiled\n"
        "bad = [m for m in compiled.MODULES\n"
        "       if not importlib.import_module(m).__file__.startswith(str(compiled.BUILD_DIR))]\n"
        "sys.exit('not compiled: ' + ', '.join(bad) if bad else 0)\n"
    )
    env = dict(os.environ, GROUPCOMM_COMPILED="1")
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        return f"the build does not load: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


if __name__ == "__main__":
    sys.exit(main())
