"""The layering rules of docs/architecture.md, enforced by reading every import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STDLIB = frozenset(sys.stdlib_module_names)
# The core is sans-IO and deterministic: no clocks, sockets, event loops, logging or threads.
CORE_FORBIDDEN = frozenset(
    {
        "time",
        "datetime",
        "socket",
        "asyncio",
        "logging",
        "selectors",
        "threading",
        "subprocess",
        "os",
        "signal",
        "multiprocessing",
        "secrets",
        "uuid",
    }
)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _global_random_calls(path: Path) -> list[int]:
    """Lines calling module-level ``random.xxx()``; only ``random.Random`` (injected) is fine."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "random"
        and node.attr != "Random"
    ]


def layering_violations(root: Path) -> list[str]:
    problems: list[str] = []
    for path in sorted((root / "groupcomm").rglob("*.py")):
        rel = path.relative_to(root)
        layer = rel.parts[1] if len(rel.parts) > 2 else ""
        for line, module in _imports(path):
            top = module.split(".")[0]
            where = f"{rel}:{line} imports {module}"
            if top in ("sim", "tests"):
                problems.append(f"{where}: nothing in groupcomm may import {top}")
            if layer == "core":
                core_ok = module.startswith("groupcomm.core") or (
                    top in STDLIB and top not in CORE_FORBIDDEN
                )
                if not core_ok:
                    problems.append(f"{where}: core imports only the standard library")
            elif layer == "wire":
                ok = module.startswith(("groupcomm.core", "groupcomm.wire")) or top in (
                    STDLIB | {"msgpack"}
                )
                if not ok:
                    problems.append(f"{where}: wire imports only core and msgpack")
        if layer == "core":
            problems.extend(f"{rel}:{n}: global random" for n in _global_random_calls(path))
    return problems


def test_project_respects_layering() -> None:
    assert layering_violations(ROOT) == []


def test_checker_catches_violations(tmp_path: Path) -> None:
    core = tmp_path / "groupcomm" / "core"
    wire = tmp_path / "groupcomm" / "wire"
    core.mkdir(parents=True)
    wire.mkdir(parents=True)
    (core / "bad.py").write_text(
        "import time\nimport msgpack\nimport random\nfrom sim import runner\nx = random.random()\n"
    )
    (wire / "bad.py").write_text("import zmq\nimport groupcomm.daemon\n")
    problems = layering_violations(tmp_path)
    assert any("imports time" in p for p in problems)
    assert any("imports msgpack" in p for p in problems)
    assert any("imports sim" in p for p in problems)
    assert any("global random" in p for p in problems)
    assert any("imports zmq" in p for p in problems)
    assert any("imports groupcomm.daemon" in p for p in problems)
