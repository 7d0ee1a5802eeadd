"""Checks of one method or tool: multimodal shapes, media to encode, mergeable adapters, class weights,
the DDPO reward model, vLLM for inference entries. Plain functions `settings -> list[str]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from turbo.errors import SettingsError, TurboError
from turbo.modeling.multimodal.shapes import encoder_shape, shape_problems
from turbo.pipelines.preflight.common import TOKENIZER_FILES, has_file, is_folder, vllm_problem


def _encoders_readable(encoders: dict[str, Any]) -> bool:
    return all(is_folder(encoder.encoder_path) for encoder in encoders.values())


def _multimodal_datasets(settings: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """The block holding the encoders and projectors, and (field path, dataset) of each multimodal
    dataset they read: train_multimodal(_dpo) and inference_multimodal hold them at the top, train_grpo in
    multimodal_settings (multimodal prompts only)."""
    parts = getattr(settings, "multimodal_settings", settings)
    if parts is None or not hasattr(parts, "encoders"):
        return None, []
    names = ("train_dataset_settings", "val_dataset_settings", "dataset_settings")
    datasets = [(name, getattr(settings, name, None)) for name in names]
    return parts, [(name, dataset) for name, dataset in datasets if hasattr(dataset, "n_modality_embeddings")]


def multimodal_shapes(settings: Any) -> list[str]:
    """n_modality_embeddings of every multimodal dataset fits what each encoder gives and its projector
    keeps (config.json only), for every command that assembles a multimodal model."""
    parts, datasets = _multimodal_datasets(settings)
    if parts is None or not _encoders_readable(parts.encoders):
        return []  # input_files reports the folder
    where = "multimodal_settings." if parts is not settings else ""
    problems: list[str] = []
    for name, dataset in datasets:
        _, found = shape_problems(parts.encoders, parts.projectors, dataset.n_modality_embeddings, f"{name}.")
        for problem in found:
            line = problem if problem.startswith(f"{name}.") else f"{where}{problem}"
            if line not in problems:  # an encoder's problem once, not once per dataset
                problems.append(line)
    return problems


def preprocessing_encoder(settings: Any) -> list[str]:
    """The encoder's config.json is one the encoder type reads."""
    if not is_folder(settings.encoder_settings.encoder_path):
        return []
    try:
        encoder_shape(settings.encoder_settings)
    except SettingsError as exc:
        return [f"encoder_settings.{exc}"]
    return []


def preprocessing_media(settings: Any) -> list[str]:
    """The folder holds media of the modality (the same walk the run starts with)."""
    from turbo.media import EXTENSIONS, find_media

    folder = Path(settings.dataset_path)
    if not is_folder(folder):
        return []
    if find_media(folder, tuple(settings.extensions or EXTENSIONS[settings.modality])):
        return []
    return [f"dataset_path: no {settings.modality} files under {folder}"]


PROMPT_LEARNING = {"PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"}


def mergeable_adapter(settings: Any) -> list[str]:
    """Only LoRA-style adapters merge into the weights; prompt-learning adapters stay separate."""
    where = "adapter_path" if settings.adapter_path is not None else "model_settings.adapter_path"
    config_file = Path(settings.adapter) / "adapter_config.json"
    try:
        peft_type = json.loads(config_file.read_text(encoding="utf-8")).get("peft_type")
    except (OSError, ValueError, AttributeError):
        return []  # model_folders reports a missing or unreadable adapter config
    if peft_type not in PROMPT_LEARNING:
        return []
    return [
        f"{where}: {settings.adapter} is a {peft_type} adapter; only LoRA-style adapters merge into "
        "the weights"
    ]


def classification_labels(settings: Any) -> list[str]:
    """A list of class weights (alpha) has one weight per label of the model's config."""
    alpha = settings.trainer_settings.loss_settings.alpha
    model = settings.model_settings
    if not isinstance(alpha, list) or "num_labels" in model.model_kwargs or not is_folder(model.model_path):
        return []
    try:
        config = json.loads((Path(model.model_path) / "config.json").read_text(encoding="utf-8"))
        labels = len(config["id2label"])
    except (OSError, ValueError, KeyError, TypeError):
        return []  # model_folders reports an unreadable config; no id2label: the model decides
    if len(alpha) == labels:
        return []
    return [
        f"trainer_settings.loss_settings.alpha: {len(alpha)} weights, but the model at {model.model_path} "
        f"has {labels} labels; give one weight per label"
    ]


def vllm_engines(settings: Any) -> list[str]:
    """Entries with use_vllm: true need a supported vLLM, and their adapter must be a LoRA it serves."""
    entries = [(i, e) for i, e in enumerate(settings.inference_settings) if getattr(e, "use_vllm", False)]
    if not entries:
        return []
    from turbo.generators.vllm import adapter_rank

    problems = []
    if problem := vllm_problem():
        problems.append(f"inference_settings.{entries[0][0]}.use_vllm: {problem.removeprefix('use_vllm: ')}")
    for index, entry in entries:
        adapter = entry.model_settings.adapter_path
        if adapter is not None and (Path(adapter) / "adapter_config.json").is_file():
            try:
                adapter_rank(adapter)
            except TurboError as exc:
                problems.append(f"inference_settings.{index}.model_settings.adapter_path: {exc}")
    return problems


def ddpo_reward_model(settings: Any) -> list[str]:
    """The reward model's folder holds tokenizer files and its config.json gives one output."""
    problems = []
    rm, tokenizer = settings.rm_settings, settings.rm_tokenizer_settings
    folder = tokenizer.tokenizer_path or rm.model_path
    if not has_file(folder, TOKENIZER_FILES):
        where = (
            "rm_tokenizer_settings.tokenizer_path" if tokenizer.tokenizer_path else "rm_settings.model_path"
        )
        problems.append(
            f"{where}: {folder} holds no tokenizer files (set rm_tokenizer_settings.tokenizer_path)"
        )
    config_file = Path(rm.model_path) / "config.json"
    if "num_labels" in rm.model_kwargs or rm.adapter_path is not None or not config_file.is_file():
        return problems  # an adapter may bring its own head
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return problems  # model_folders and the loader report an unreadable config
    architectures = [str(name) for name in config.get("architectures") or []]
    if architectures and not any(name.endswith("ForSequenceClassification") for name in architectures):
        problems.append(
            f"rm_settings.model_path: {rm.model_path} is a {architectures[0]} with no reward head "
            "(give a train_rm output)"
        )
    elif (labels := len(config.get("id2label") or {}) or 2) != 1:  # transformers' default is 2 labels
        problems.append(
            f"rm_settings.model_path: {rm.model_path} has {labels} outputs; a reward model has one "
            "(give a train_rm output)"
        )
    return problems


def export_outputs(settings: Any) -> list[str]:
    """export_llava: experiment_path is a finished run, save_path a new folder (or an earlier export with
    overwrite). The run checks the run's parts (encoder and projector types) when it reads its settings."""
    from turbo.settings.outputs import EXPERIMENT_MARKER, output_folder_problems

    folder = Path(settings.experiment_path)
    problems = output_folder_problems(
        "save_path", Path(settings.save_path), "export_llava", settings.overwrite,
        {"experiment_path": folder}, "overwrite: true",
    )  # fmt: skip
    if is_folder(folder) and not ((folder / EXPERIMENT_MARKER).is_file() and (folder / "final").is_dir()):
        problems.append(
            f"experiment_path: {folder} is not a finished train_multimodal run (no {EXPERIMENT_MARKER} "
            "and final/)"
        )
    return problems
