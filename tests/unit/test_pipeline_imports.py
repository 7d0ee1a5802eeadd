"""No pipeline imports another command's pipeline (DESIGN.md: one file per method, read top to bottom;
shared steps are plain functions): what two commands share lives in a shared-step module beside them
(pipelines/train/common.py, splits.py, reference.py, rollout.py, inference/common.py, ...) or in a
lower layer, never in a module of the command table."""

from __future__ import annotations

import ast
from pathlib import Path

from turbo.settings.commands import COMMANDS

PACKAGE = Path(__file__).resolve().parents[2] / "turbo"
COMMAND_MODULES = {command.pipeline.split(":")[0] for command in COMMANDS.values()}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every turbo module (or module.name) that `path` imports, lazily or not."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("turbo.")]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def test_the_command_table_names_pipeline_modules() -> None:
    assert COMMAND_MODULES and all(name.startswith("turbo.pipelines.") for name in COMMAND_MODULES)
    assert {"turbo.pipelines.train.dpo", "turbo.pipelines.inference.multimodal"} <= COMMAND_MODULES


def test_no_pipeline_imports_another_commands_pipeline() -> None:
    wrong = []
    for path in sorted((PACKAGE / "pipelines").rglob("*.py")):
        here = module_name(path)
        for line, name in imported_modules(path):
            if name in COMMAND_MODULES and name != here:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_sideways_import(tmp_path: Path) -> None:
    source = "def run():\n    from turbo.pipelines.inference.multimodal import media_inputs\n"
    (tmp_path / "x.py").write_text(source, encoding="utf-8")
    names = {name for _, name in imported_modules(tmp_path / "x.py")}
    assert names & COMMAND_MODULES == {"turbo.pipelines.inference.multimodal"}
