"""The preflight: everything checkable before any weights load, one list of checks per command.

`turbo validate` and the real run (`turbo <command>`) both call `preflight(command, settings)` and
report every problem at once, each as 'field.path: what is wrong'. A check is a plain function
`settings -> list[str]`; adding one is one entry in a list below. This module imports no torch,
transformers or vllm (validate stays fast).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from turbo.errors import SettingsError, TurboError
from turbo.modeling.multimodal.shapes import encoder_shape, shape_problems
from turbo.reading import output_folder_problem
from turbo.settings.model import ModelSettings
from turbo.settings.outputs import experiment_folder_problems, merge_output_problems
from turbo.settings.paths import input_path_problems, path_problem

Check = Callable[[Any], list[str]]

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
)


def nodes(value: Any, where: str = "") -> Iterator[tuple[str, BaseModel]]:
    """Every settings block in the tree with its field path prefix ('' or 'a.b.')."""
    if isinstance(value, BaseModel):
        yield where, value
        for name in type(value).model_fields:
            yield from nodes(getattr(value, name), f"{where}{name}.")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from nodes(item, f"{where}{index}.")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from nodes(item, f"{where}{key}.")


def _is_folder(path: Any) -> bool:
    return path is not None and path_problem(Path(path), "folder") is None


def input_files(settings: Any) -> list[str]:
    """Every input path exists, is the right kind (file or folder) and is readable."""
    return input_path_problems(settings)


def _has_file(folder: Any, names: tuple[str, ...]) -> bool:
    """True unless `folder` is a readable folder holding none of `names` (input_files reports the rest)."""
    return not _is_folder(folder) or any((Path(folder) / name).is_file() for name in names)


def model_folders(settings: Any) -> list[str]:
    """Model folders hold config.json, adapters adapter_config.json, tokenizer folders tokenizer files."""
    problems = []
    for where, node in nodes(settings):
        if isinstance(node, ModelSettings) and not _has_file(node.model_path, ("config.json",)):
            problems.append(
                f"{where}model_path: {node.model_path} has no config.json (not a transformers model folder)"
            )
        adapter = getattr(node, "adapter_path", None)
        if isinstance(adapter, Path) and not _has_file(adapter, ("adapter_config.json",)):
            problems.append(f"{where}adapter_path: {adapter} has no adapter_config.json (not a PEFT adapter)")
        tokenizer, model = getattr(node, "tokenizer_settings", None), getattr(node, "model_settings", None)
        if isinstance(model, ModelSettings) and tokenizer is not None:
            folder = tokenizer.tokenizer_path or model.model_path
            field = (
                "tokenizer_settings.tokenizer_path"
                if tokenizer.tokenizer_path
                else "model_settings.model_path"
            )
            if not _has_file(folder, TOKENIZER_FILES):
                problems.append(
                    f"{where}{field}: {folder} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...)"
                )
    return problems


def attention_kernels(settings: Any) -> list[str]:
    """An attn_implementation whose kernel package is not installed (flash_attention_2: flash_attn)."""
    from turbo.modeling.attention import attention_problem

    return [
        f"{where}attn_implementation: {problem}"
        for where, node in nodes(settings)
        if isinstance(node, ModelSettings)
        and (problem := attention_problem(node.attn_implementation, check_gpu=False))
    ]


ADAPTER_TASKS = {"causal": "CAUSAL_LM", "seq_cls": "SEQ_CLS"}


def adapter_task_types(settings: Any) -> list[str]:
    """A saved adapter was trained for the model's head: a causal-LM adapter on a sequence-classification
    model (or the reverse) is refused before loading (peft would load it and score nonsense)."""
    problems = []
    for where, node in nodes(settings):
        adapter = getattr(node, "adapter_path", None)
        if not isinstance(node, ModelSettings) or adapter is None or not _is_folder(adapter):
            continue
        try:
            config = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # model_folders reports a missing config
        task = config.get("task_type") if isinstance(config, dict) else None
        expected = ADAPTER_TASKS[node.model_type]
        if task in ADAPTER_TASKS.values() and task != expected:
            source = "train_rm or train_classification" if expected == "SEQ_CLS" else "train_sft or train_dpo"
            problems.append(
                f"{where}adapter_path: {adapter} is a {task} adapter, but model_type '{node.model_type}' "
                f"needs a {expected} adapter (from {source})"
            )
    return problems


def reader_folders(settings: Any) -> list[str]:
    """Media readers (clip, siglip, whisper) read the processor saved in their folder."""
    return [
        f"{where}reader_path: {node.reader_path} has no preprocessor_config.json"
        for where, node in nodes(settings)
        if getattr(node, "reader_type", "pickle") != "pickle"
        and not _has_file(node.reader_path, ("preprocessor_config.json",))
    ]


DATASETS_FOLDER_FILES = ("dataset_info.json", "state.json", "dataset_dict.json")


def record_folders(settings: Any) -> list[str]:
    """A records_path that is a folder is a `datasets` folder written by save_to_disk."""
    from turbo.settings.datasets import DatasetSourceSettings

    return [
        f"{where}records_path: {node.records_path} is a folder, expected a records file (JSONL, JSON, "
        "Parquet) or a `datasets` folder written by save_to_disk"
        for where, node in nodes(settings)
        if isinstance(node, DatasetSourceSettings)
        and _is_folder(node.records_path)
        and not _has_file(node.records_path, DATASETS_FOLDER_FILES)
    ]


def logging_backend(settings: Any) -> list[str]:
    """The chosen logger (tensorboard, wandb, clearml) is installed."""
    logging_type = settings.logging_settings.logging_type if settings.logging_settings else "none"
    package = {"tensorboard": "tensorboard", "wandb": "wandb", "clearml": "clearml"}.get(logging_type)
    if package is None or importlib.util.find_spec(package) is not None:
        return []
    return [f"logging_settings: '{logging_type}' needs the {package} package (pip install {package})"]


def _encoders_readable(encoders: dict[str, Any]) -> bool:
    return all(_is_folder(encoder.encoder_path) for encoder in encoders.values())


def train_multimodal_shapes(settings: Any) -> list[str]:
    """n_modality_embeddings fits what each encoder gives and its projector keeps (config.json only)."""
    if not _encoders_readable(settings.encoders):
        return []  # input_files reports the folder
    _, problems = shape_problems(
        settings.encoders,
        settings.projectors,
        settings.train_dataset_settings.n_modality_embeddings,
        "train_dataset_settings.",
    )
    return problems


def inference_multimodal_shapes(settings: Any) -> list[str]:
    if not _encoders_readable(settings.encoders):
        return []
    _, problems = shape_problems(
        settings.encoders,
        settings.projectors,
        settings.dataset_settings.n_modality_embeddings,
        "dataset_settings.",
    )
    return problems


def preprocessing_encoder(settings: Any) -> list[str]:
    """The encoder's config.json is one the encoder type reads."""
    if not _is_folder(settings.encoder_settings.encoder_path):
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
    if not _is_folder(folder):
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
    if not isinstance(alpha, list) or "num_labels" in model.model_kwargs or not _is_folder(model.model_path):
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
    from turbo.generators.vllm import adapter_rank, check_vllm_version, installed_vllm_version

    problems = []
    try:
        check_vllm_version(installed_vllm_version())
    except TurboError as exc:
        problems.append(f"inference_settings.{entries[0][0]}.use_vllm: {exc}")
    for index, entry in entries:
        adapter = entry.model_settings.adapter_path
        if adapter is not None and (Path(adapter) / "adapter_config.json").is_file():
            try:
                adapter_rank(adapter)
            except TurboError as exc:
                problems.append(f"inference_settings.{index}.model_settings.adapter_path: {exc}")
    return problems


def experiment_folder(settings: Any) -> list[str]:
    """log_path can be made and written, and holds no other run (unless this one resumes or restarts it).
    Only the main process looks: under a launcher the other ranks start while it creates the folder."""
    if int(os.environ.get("RANK", "0")) != 0:
        return []
    problem = output_folder_problem(settings.log_path)
    return [f"log_path: {problem}"] if problem else experiment_folder_problems(settings)


def ddpo_reward_model(settings: Any) -> list[str]:
    """The reward model's folder holds tokenizer files and its config.json gives one output."""
    problems = []
    rm, tokenizer = settings.rm_settings, settings.rm_tokenizer_settings
    folder = tokenizer.tokenizer_path or rm.model_path
    if not _has_file(folder, TOKENIZER_FILES):
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


COMMON: list[Check] = [
    input_files,
    model_folders,
    adapter_task_types,
    reader_folders,
    record_folders,
    attention_kernels,
]
TRAIN: list[Check] = [*COMMON, logging_backend, experiment_folder]

PREFLIGHT: dict[str, list[Check]] = {
    "train_sft": TRAIN,
    "train_dpo": TRAIN,
    "train_kto": TRAIN,
    "train_rm": TRAIN,
    "train_ddpo": [*TRAIN, ddpo_reward_model],
    "train_classification": [*TRAIN, classification_labels],
    "train_multimodal": [*TRAIN, train_multimodal_shapes],
    "train_multimodal_dpo": [*TRAIN, train_multimodal_shapes],
    "inference_chat": [*COMMON, vllm_engines],
    "inference_classification": COMMON,
    "inference_rm": COMMON,
    "inference_multimodal": [*COMMON, inference_multimodal_shapes],
    "random_sample": COMMON,
    "rm_sample": COMMON,
    "rso_sample": COMMON,
    "preprocess_multimodal_dataset": [*COMMON, preprocessing_encoder, preprocessing_media],
    "merge_adapters_to_base": [*COMMON, mergeable_adapter, merge_output_problems],
}


def preflight(command: str, settings: Any) -> list[str]:
    """Every problem the command would hit before loading weights, as 'field.path: message'.
    A command without its own entry gets the common checks."""
    problems: list[str] = []
    for check in PREFLIGHT.get(command, COMMON):
        try:
            problems.extend(check(settings))
        except TurboError as exc:  # a check that stops still reports, and the others run
            problems.append(str(exc))
    return problems


def require_preflight(command: str, settings: Any, source: str | Path) -> None:
    """SettingsError listing every preflight problem (exit code 2), or nothing."""
    problems = preflight(command, settings)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise SettingsError(
            f"{source}: valid settings for {command}, but {count} before anything loads:\n  "
            + "\n  ".join(problems)
        )
