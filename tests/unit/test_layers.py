"""Imports point down the layers only (DESIGN.md): settings -> data / modeling / generators / metrics
-> trainers -> pipelines -> cli. In the middle layer data and modeling do not import each other, and
no two modules (a package's __init__ included) import each other."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "turbo"
RANK = {
    "settings": 0,
    "data": 1,
    "modeling": 1,
    "generators": 1,
    "metrics": 1,
    "trainers": 2,
    "pipelines": 3,
    "cli": 4,
}
# inside the middle layer: data and modeling stand alone; generators run what modeling loads on
# samples that data makes; metrics may use all three
ALLOWED_SIDEWAYS = {
    ("generators", "modeling"),
    ("generators", "data"),
    ("metrics", "modeling"),
    ("metrics", "generators"),
    ("metrics", "data"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found += [(node.lineno, name) for name in names if name.startswith("turbo.")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("turbo.")]
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_imports_point_down_only() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = path.relative_to(PACKAGE).parts[0]
        if here not in RANK:
            continue
        for line, name in _imports(path):
            there = name.split(".")[1]
            if there not in RANK or there == here:
                continue
            upward = RANK[there] > RANK[here]
            sideways = RANK[there] == RANK[here] and (here, there) not in ALLOWED_SIDEWAYS
            if upward or sideways:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {name}")
    assert not wrong, "\n".join(wrong)


def test_no_two_modules_import_each_other() -> None:
    modules = {_module(path): path for path in PACKAGE.rglob("*.py")}
    edges = {
        name: {imported for _, imported in _imports(path) if imported in modules}
        for name, path in modules.items()
    }
    cycles = sorted(
        f"{a} <-> {b}" for a, targets in edges.items() for b in targets if a < b and a in edges.get(b, set())
    )
    assert not cycles, "\n".join(cycles)
