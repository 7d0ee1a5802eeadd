"""The Typer app and the pipeline commands, registered from the one command table."""

from __future__ import annotations

from pathlib import Path

import typer

from turbo.settings.commands import COMMANDS, Command, load_object
from turbo.errors import SettingsError

app = typer.Typer(
    name="turbo",
    help="Train, align and run language and vision-language models from one JSON experiment file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

SET_HELP = "Override a setting: KEY.PATH=VALUE (VALUE parsed as JSON where it parses). Repeatable."


def run_command(command: Command, settings_path: Path, overrides: list[str]) -> None:
    from turbo.settings.loading import load_settings
    from turbo.settings.paths import missing_input_paths

    settings = load_settings(settings_path, load_object(command.settings), overrides)
    missing = missing_input_paths(settings)
    if missing:
        raise SettingsError(f"{settings_path}: missing input files:\n  " + "\n  ".join(missing))
    load_object(command.pipeline)(settings)


def _register(command: Command) -> None:
    def pipeline_command(
        settings_path: Path = typer.Option(..., f"--{command.flag}", help="The settings JSON file."),
        overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    ) -> None:
        run_command(command, settings_path, overrides)

    app.command(command.name, help=command.help)(pipeline_command)


for _command in COMMANDS.values():
    _register(_command)
