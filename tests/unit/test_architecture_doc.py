"""docs/architecture.md says what the code is: its layer list is tests/unit/test_layers.py's, its
registry table is the registries tests/unit/test_registries.py checks, each with a checklist."""

from __future__ import annotations

import re
from pathlib import Path

from turbo.settings.commands import load_object

from .test_layers import RANK
from .test_registries import REGISTRIES

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_the_layer_list_is_the_one_the_import_test_enforces() -> None:
    [line] = [line for line in text().splitlines() if line.startswith("Layers, lowest first:")]
    groups = [re.findall(r"`(\w+)`", group) for group in line.split(":", 1)[1].split("→")]
    by_rank: dict[int, set[str]] = {}
    for layer, rank in RANK.items():
        by_rank.setdefault(rank, set()).add(layer)
    assert [set(group) for group in groups] == [by_rank[rank] for rank in sorted(by_rank)]


def test_the_registry_table_is_the_registries_the_code_has() -> None:
    rows = re.findall(r"^\| (\w+) \| `([\w.:]+)` \| `([\w.:]+)` \|$", text(), flags=re.M)
    assert {kind: (union, implementations) for kind, union, implementations in rows} == REGISTRIES
    for _, union, implementations in rows:
        load_object(union), load_object(implementations)  # the names exist


def test_every_registry_has_a_checklist() -> None:
    headings = set(re.findall(r"^### (\w+)$", text(), flags=re.M))
    assert headings == set(REGISTRIES)


def test_the_files_the_doc_names_exist() -> None:
    root = DOC.parents[1]
    named = set(
        re.findall(
            r"`((?:turbo|tests|docs|settings|pipelines|trainers|modeling|metrics|data|generators)"
            r"/[\w/]+\.(?:py|md))",
            text(),
        )
    )
    missing = []
    for path in named:
        candidates = [root / path, root / "turbo" / path]
        if not any(candidate.exists() for candidate in candidates):
            missing.append(path)
    assert not missing, sorted(missing)
