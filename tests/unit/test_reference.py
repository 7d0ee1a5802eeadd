"""The settings reference (docs/settings.md) gives every option of every command a meaning (that the
committed file is what the models generate: tests/unit/test_cli_table.py)."""

from __future__ import annotations

from pydantic import BaseModel

from turbo.cli.reference import _models_in, describe
from turbo.settings.commands import COMMANDS, load_object


def all_models() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    todo = [load_object(command.settings) for command in COMMANDS.values()]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            todo += _models_in(field.annotation)
    return seen


def test_every_option_has_a_meaning() -> None:
    missing = [
        f"{model.__name__}.{name}"
        for model in all_models()
        for name, field in model.model_fields.items()
        if not describe(model, name, field).strip()
    ]
    assert missing == []
