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


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, name: str, known: frozenset[str]) -> set[str]:
    """The modules of ``known`` that ``path`` (module ``name``) imports anywhere in its text:
    at the top, inside functions and under ``if TYPE_CHECKING:`` alike."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)  # a submodule, or a name from base
    return found & known


def import_cycles(root: Path, package: str = "groupcomm/core") -> list[str]:
    """Import circles among the modules of ``package``, as ``a -> b -> a`` (one for every
    import that closes a circle, so none goes unreported). A circle hidden behind
    ``TYPE_CHECKING`` or inside a function still counts: the modules still depend on each
    other (issue 11)."""
    paths = {_module_name(root, p): p for p in sorted((root / package).rglob("*.py"))}
    known = frozenset(paths)
    graph = {name: sorted(_imported_modules(p, name, known) - {name}) for name, p in paths.items()}
    cycles: list[str] = []
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        for target in graph[name]:
            if target in stack:
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in done:
                visit(target, [*stack, target])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    return cycles


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


def test_core_has_no_import_cycles() -> None:
    # The round (membership) and the request intake (requests) reach the Node through narrow
    # interfaces they define themselves; node imports them, never the reverse.
    assert import_cycles(ROOT) == []


def test_cycle_checker_catches_circles(tmp_path: Path) -> None:
    core = tmp_path / "groupcomm" / "core"
    core.mkdir(parents=True)
    (core / "__init__.py").write_text("")
    (core / "node.py").write_text("from groupcomm.core import membership\n")
    (core / "membership.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from groupcomm.core.node import Node\n"
    )
    (core / "a.py").write_text("from . import b\n")
    (core / "b.py").write_text("def f() -> None:\n    import groupcomm.core.c\n")
    (core / "c.py").write_text("from .a import x\n")
    (core / "leaf.py").write_text("from groupcomm.core.node import y\nimport groupcomm.core\n")
    assert import_cycles(tmp_path) == [
        "groupcomm.core.a -> groupcomm.core.b -> groupcomm.core.c -> groupcomm.core.a",
        "groupcomm.core.node -> groupcomm.core.membership -> groupcomm.core.node",
    ]


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
