"""`turbo validate`: which command a file is for, a summary of it, and optionally its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from turbo.settings.commands import COMMANDS, Command, load_object
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


def model_entries(settings: Any) -> list[Any]:
    """The blocks that name a model (and its tokenizer): the settings themselves, each inference
    entry, or a nested block such as a sampling file's reward model."""
    if hasattr(settings, "model_settings"):
        return [settings]
    if hasattr(settings, "inference_settings"):
        return list(settings.inference_settings)
    return [
        value
        for name in type(settings).model_fields
        if hasattr(value := getattr(settings, name), "model_settings")
    ]


def summary(command: Command, settings: Any) -> list[str]:
    lines = [f"valid settings for {command.name}"]
    entries = model_entries(settings)
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


class _FileExists:
    """Media check for `validate --data`: the file is there (decoding waits for the pipeline)."""

    def missing(self, item: Any) -> str | None:
        return None if item.path.is_file() else f"{item.where}: {item.path} does not exist"


def _chat(dataset: Any, tokenizer: Any, seed: int, generation: bool) -> tuple[list, Any]:
    from turbo.data.chat import build_chat_samples

    return build_chat_samples(dataset, tokenizer, seed=seed, inference=generation)


def _pair_preferences(dataset: Any, tokenizer: Any, seed: int, generation: bool) -> tuple[list, Any]:
    from turbo.data.pair_preferences import build_pair_samples

    return build_pair_samples(dataset, tokenizer, seed=seed)


def _kto(dataset: Any, tokenizer: Any, seed: int, generation: bool) -> tuple[list, Any]:
    from turbo.data.kto import build_kto_samples

    return build_kto_samples(dataset, tokenizer, seed=seed)


def _classification(dataset: Any, tokenizer: Any, seed: int, generation: bool) -> tuple[list, Any]:
    from turbo.data.classification import build_classification_samples

    return build_classification_samples(dataset, tokenizer, seed=seed, require_labels=not generation)


def _sampling(dataset: Any, tokenizer: Any, seed: int, generation: bool) -> tuple[list, Any]:
    from turbo.data.sampling import read_sampling_records

    return read_sampling_records(dataset, seed)


def _multimodal(dataset: Any, tokenizer: Any, seed: int, generation: bool) -> tuple[list, Any]:
    from turbo.data.multimodal import add_modality_tokens, build_multimodal_samples

    add_modality_tokens(tokenizer, dataset)
    checkers = {modality: _FileExists() for modality in dataset.modality_token_mapping}
    return build_multimodal_samples(dataset, tokenizer, checkers, seed=seed, inference=generation)


DATA_BUILDERS = {
    "chat": _chat,
    "pair_preferences": _pair_preferences,
    "kto": _kto,
    "classification": _classification,
    "sampling": _sampling,
    "multimodal": _multimodal,
}


def data_summary(settings: Any) -> list[str]:
    """Read and tokenise every dataset with the (first) model's tokenizer; report lengths and drops."""
    from turbo.modeling.tokenizer import load_tokenizer

    entries = model_entries(settings)
    special = getattr(settings, "special_tokens_settings", None)
    tokenizer = (
        load_tokenizer(entries[0].tokenizer_settings, entries[0].model_settings, special) if entries else None
    )
    seed = getattr(settings, "seed", 42)
    lines = []
    for where, dataset, generation in dataset_fields(settings):
        samples, report = DATA_BUILDERS[dataset.dataset_type](dataset, tokenizer, seed, generation)
        lines.append(f"  {where}: {len(samples)} samples")
        for source in report.sources:
            lines.append(f"    {source.summary()}")
            if source.lengths:
                percentiles = ", ".join(f"p{p}={n}" for p, n in source.percentiles().items())
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
