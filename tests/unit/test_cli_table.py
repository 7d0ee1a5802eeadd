"""The routing table, the Typer app and the generated docs agree."""

from pathlib import Path

import pytest

from turbo.cli import app
from turbo.cli.reference import render
from turbo.settings.commands import COMMANDS, load_object

from ..helpers import REPO

TOOLS = {"validate", "schema", "convert_gguf", "report"}


def test_every_table_command_is_registered_and_nothing_else() -> None:
    registered = {command.name for command in app.registered_commands}
    assert registered == set(COMMANDS) | TOOLS


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_table_entries_resolve(name: str) -> None:
    command = COMMANDS[name]
    assert command.flag in {"experiment_settings_path", "inference_settings_path", "settings_path"}
    assert callable(load_object(command.pipeline))
    assert load_object(command.settings).model_json_schema()["type"] == "object"


def test_settings_reference_is_up_to_date() -> None:
    text = Path(REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    assert text == render(), "regenerate: python -m turbo.cli.reference > docs/settings.md"
