"""The Typer app and the pipeline commands, registered from the one command table."""

from __future__ import annotations

from pathlib import Path

import typer

from turbo.settings.commands import COMMANDS, Command, load_object

app = typer.Typer(
    name="turbo",
    help="Train, align and run language and vision-language models from one JSON experiment file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

SET_HELP = "Override a setting: KEY.PATH=VALUE (VALUE parsed as JSON where it parses). Repeatable."


def run_command(command: Command, settings_path: Path, overrides: list[str]) -> None:
    from turbo.cli.allocator import tune_allocator
    from turbo.io import removed_if_refused
    from turbo.pipelines.preflight import checked_settings
    from turbo.settings.loading import apply_overrides, read_settings_file

    data = apply_overrides(read_settings_file(settings_path), overrides)
    # the same checks as `turbo validate`: the settings and the preflight, every problem at once
    settings = checked_settings(command.name, load_object(command.settings), data, str(settings_path))
    tune_allocator()  # before the pipeline's first tensor
    with removed_if_refused(getattr(settings, "log_path", None)):  # nothing half-written on bad input
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
