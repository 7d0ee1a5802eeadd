"""`turbo validate`: which command a file is for, a summary of it, and optionally its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from turbo.errors import SettingsError
from turbo.pipelines.preflight import require_preflight, settings_and_preflight_error
from turbo.settings.commands import COMMANDS, Command, load_object, not_a_command
from turbo.settings.loading import apply_overrides, format_validation_error, read_settings_file

UNPLACED = {"extra_forbidden", "union_tag_invalid", "union_tag_not_found"}  # the input fits nowhere


def _size(value: Any) -> int:
    """1 for a value, plus one per key or item inside it."""
    if isinstance(value, dict):
        return 1 + sum(_size(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(_size(item) for item in value)
    return 1


def misfit(exc: ValidationError) -> int:
    """How much of a file has no place in a command's settings: keys it does not know (counted with
    everything under them), blocks whose variant tag (dataset_type, loss_type, ...) it does not take,
    and keys it needs that are missing. Wrong values do not count: they say nothing about which
    command the file is for."""
    total = 0
    for err in exc.errors():
        if err["type"] in UNPLACED:
            total += _size(err.get("input"))
        elif err["type"] == "missing" or (
            err["type"] == "literal_error" and err["loc"][-1:] == ("dataset_type",)
        ):
            total += 1
    return total


def _problems(exc: ValidationError) -> list[tuple[tuple, str]]:
    return [(tuple(err["loc"]), err["msg"]) for err in exc.errors()]


def _ask_for_command(path: Path, names: list[str], why: str) -> SettingsError:
    return SettingsError(
        f"{path}: {why}: {', '.join(names)}; pass --command to say which one it is for "
        f"(turbo validate {path} --command {names[0]})"
    )


def identify(path: Path, overrides: list[str], command_name: str | None) -> tuple[Command, BaseModel]:
    """The settings validated as `command_name`; without it, as the one command the file is for.

    That is the only command the file validates for, or else the one whose keys and variant tags the
    file fits best, whose problems are reported. When several commands fit equally and their problems
    differ, none is blamed: the error lists them and asks for --command.
    """
    data = apply_overrides(read_settings_file(path), overrides)
    by_settings: dict[str, Command] = {}  # another name for a command (train_lddpo) is not a candidate
    for command in COMMANDS.values():
        by_settings.setdefault(command.settings, command)
    candidates = [COMMANDS[command_name]] if command_name else list(by_settings.values())
    valid: list[tuple[Command, BaseModel]] = []
    failed: list[tuple[Command, ValidationError]] = []
    for command in candidates:
        try:
            valid.append((command, load_object(command.settings).model_validate(data)))
        except ValidationError as exc:
            failed.append((command, exc))
    if len(valid) == 1:
        return valid[0]
    if valid:
        raise _ask_for_command(path, [command.name for command, _ in valid], "valid settings for each of")
    if command_name:
        command, exc = failed[0]
        raise settings_and_preflight_error(command.name, load_object(command.settings), data, exc, str(path))
    best = min(misfit(exc) for _, exc in failed)
    closest = [(command, exc) for command, exc in failed if misfit(exc) == best]
    names = [command.name for command, _ in closest]
    if not any(key in load_object(command.settings).model_fields for command, _ in closest for key in data):
        raise _ask_for_command(path, list(COMMANDS), "none of its keys is a setting of a command; commands")
    if len(closest) == 1:
        command, exc = closest[0]
        model = load_object(command.settings)
        source = f"{path} (closest command: {command.name})"
        raise settings_and_preflight_error(command.name, model, data, exc, source)
    if all(_problems(exc) == _problems(closest[0][1]) for _, exc in closest):
        label = f"the same problems as any of {', '.join(names)}; pass --command to choose"
        raise SettingsError(format_validation_error(closest[0][1], f"{path} ({label})", data))
    raise _ask_for_command(path, names, "not valid, and it fits these commands equally")


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


def _prompt(dataset: Any, tokenizer: Any, seed: int, generation: bool) -> tuple[list, Any]:
    from turbo.data.prompts import build_prompt_samples

    return build_prompt_samples(dataset, tokenizer, seed=seed)


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


def _multimodal_pairs(dataset: Any, tokenizer: Any, seed: int, generation: bool) -> tuple[list, Any]:
    from turbo.data.multimodal import add_modality_tokens
    from turbo.data.multimodal_pair_preferences import build_multimodal_pair_samples

    add_modality_tokens(tokenizer, dataset)
    checkers = {modality: _FileExists() for modality in dataset.modality_token_mapping}
    return build_multimodal_pair_samples(dataset, tokenizer, checkers, seed=seed)


def _ddpo(dataset: Any, tokenizer: Any, seed: int, generation: bool) -> tuple[list, Any]:
    """The pairs as the policy reads them (the reward model's rendering is checked by the run)."""
    return _pair_preferences(dataset.policy_pairs, tokenizer, seed, generation)


def _answers(dataset: Any, tokenizer: Any, seed: int, generation: bool) -> tuple[list, Any]:
    from turbo.data.answers import build_answer_samples

    return build_answer_samples(dataset, tokenizer, seed)


DATA_BUILDERS = {
    "ddpo": _ddpo,
    "rm": _answers,
    "chat": _chat,
    "prompt": _prompt,
    "pair_preferences": _pair_preferences,
    "kto": _kto,
    "classification": _classification,
    "sampling": _sampling,
    "multimodal": _multimodal,
    "multimodal_pair_preferences": _multimodal_pairs,
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
    """The summary lines of a valid file; SettingsError with every problem (settings, then the
    preflight the run would do: paths and their kinds, model folders, shapes) otherwise."""
    instead = not_a_command(command_name) if command_name else None
    if instead is not None:
        raise SettingsError(f"{path}: {instead}")
    command, settings = identify(path, overrides, command_name)
    require_preflight(command.name, settings, path)
    lines = summary(command, settings)
    if data:
        lines += data_summary(settings)
    return lines
