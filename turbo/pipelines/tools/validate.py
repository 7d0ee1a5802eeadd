"""`turbo validate`: which command a file is for, a summary of it, and optionally its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from turbo.cli.commands import COMMANDS, Command, load_object
from turbo.errors import SettingsError
from turbo.settings.loading import apply_overrides, format_validation_error, read_settings_file
from turbo.settings.paths import missing_input_paths


def identify(path: Path, overrides: list[str], command_name: str | None) -> tuple[Command, BaseModel]:
    """The settings validated as `command_name`, or as the command whose settings fit best."""
    data = apply_overrides(read_settings_file(path), overrides)
    candidates = [COMMANDS[command_name]] if command_name else list(COMMANDS.values())
    failures: list[tuple[int, Command, ValidationError]] = []
    for command in candidates:
        try:
            return command, load_object(command.settings).model_validate(data)
        except ValidationError as exc:
            failures.append((exc.error_count(), command, exc))
    _, command, exc = min(failures, key=lambda failure: failure[0])
    label = "" if command_name else f" (closest command: {command.name})"
    raise SettingsError(format_validation_error(exc, f"{path}{label}"))


def dataset_fields(settings: BaseModel, prefix: str = "") -> list[tuple[str, Any, bool]]:
    """(field path, dataset settings, is it read for generation) for every dataset in the settings."""
    found = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel) and hasattr(value, "sources"):
            generation = "cherry_pick" in prefix or not name.startswith(("train", "val"))
            found.append((f"{prefix}{name}", value, generation))
        elif isinstance(value, BaseModel):
            found.extend(dataset_fields(value, f"{prefix}{name}."))
    return found


def summary(command: Command, settings: Any) -> list[str]:
    lines = [f"valid settings for {command.name}"]
    entries = (
        [settings]
        if hasattr(settings, "model_settings")
        else list(getattr(settings, "inference_settings", []))
    )
    for index, entry in enumerate(entries):
        model = entry.model_settings
        peft = (
            model.peft_settings.name
            if model.peft_settings
            else ("adapter " + str(model.adapter_path) if model.adapter_path else "full")
        )
        label = "model" if len(entries) == 1 else f"model {index}"
        lines.append(f"  {label}: {model.model_path} ({model.model_type}, {peft})")
    for where, dataset, _ in dataset_fields(settings):
        for source in dataset.sources:
            amount = (
                f"num_samples {source.num_samples}"
                if source.num_samples is not None
                else f"sample_rate {source.sample_rate}"
            )
            lines.append(f"  {where}: source '{source.name}' {source.records_path} ({amount})")
    for name in ("log_path", "save_path"):
        if hasattr(settings, name):
            lines.append(f"  {name}: {getattr(settings, name)}")
    return lines


def data_summary(settings: Any) -> list[str]:
    """Tokenise every dataset with the (first) model's tokenizer and report lengths and drops."""
    from turbo.data.chat import build_chat_samples
    from turbo.modeling.tokenizer import load_tokenizer

    entry = settings if hasattr(settings, "model_settings") else settings.inference_settings[0]
    tokenizer = load_tokenizer(
        entry.tokenizer_settings, entry.model_settings, getattr(settings, "special_tokens_settings", None)
    )
    seed = getattr(settings, "seed", 42)
    lines = []
    for where, dataset, generation in dataset_fields(settings):
        samples, report = build_chat_samples(dataset, tokenizer, seed=seed, inference=generation)
        lines.append(f"  {where}: {len(samples)} samples")
        for source in report.sources:
            percentiles = ", ".join(f"p{p}={n}" for p, n in source.percentiles().items())
            lines.append(f"    {source.summary()}")
            lines.append(f"    token lengths: {percentiles}")
    return lines


def validate(path: Path, overrides: list[str], command_name: str | None, data: bool) -> list[str]:
    command, settings = identify(path, overrides, command_name)
    missing = missing_input_paths(settings)
    if missing:
        raise SettingsError(
            f"{path}: valid for {command.name}, but input files are missing:\n  " + "\n  ".join(missing)
        )
    lines = summary(command, settings)
    if data:
        lines += data_summary(settings)
    return lines
