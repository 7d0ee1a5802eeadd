"""Checks every command shares: input paths and their kinds, model, adapter, tokenizer and reader
folders, record folders, attention kernels, the logger package and the experiment folder (log_path).

A check is a plain function `settings -> list[str]`, each problem as 'field.path: what is wrong'. No
torch, transformers or vllm import here (validate stays fast).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from turbo.errors import TurboError
from turbo.reading import output_folder_problem
from turbo.settings.model import PEFT_TASK_TYPES, ModelSettings
from turbo.settings.outputs import experiment_folder_problems
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


def is_folder(path: Any) -> bool:
    return path is not None and path_problem(Path(path), "folder") is None


def input_files(settings: Any) -> list[str]:
    """Every input path exists, is the right kind (file or folder) and is readable."""
    return input_path_problems(settings)


def has_file(folder: Any, names: tuple[str, ...]) -> bool:
    """True unless `folder` is a readable folder holding none of `names` (input_files reports the rest)."""
    return not is_folder(folder) or any((Path(folder) / name).is_file() for name in names)


def model_folders(settings: Any) -> list[str]:
    """Model folders hold config.json, adapters adapter_config.json, tokenizer folders tokenizer files."""
    problems = []
    for where, node in nodes(settings):
        if isinstance(node, ModelSettings) and not has_file(node.model_path, ("config.json",)):
            problems.append(
                f"{where}model_path: {node.model_path} has no config.json (not a transformers model folder)"
            )
        adapter = getattr(node, "adapter_path", None)
        if isinstance(adapter, Path) and not has_file(adapter, ("adapter_config.json",)):
            problems.append(f"{where}adapter_path: {adapter} has no adapter_config.json (not a PEFT adapter)")
        tokenizer, model = getattr(node, "tokenizer_settings", None), getattr(node, "model_settings", None)
        if isinstance(model, ModelSettings) and tokenizer is not None:
            folder = tokenizer.tokenizer_path or model.model_path
            field = (
                "tokenizer_settings.tokenizer_path"
                if tokenizer.tokenizer_path
                else "model_settings.model_path"
            )
            if not has_file(folder, TOKENIZER_FILES):
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


def adapter_task_types(settings: Any) -> list[str]:
    """A saved adapter was trained for the model's head: a causal-LM adapter on a sequence-classification
    model (or the reverse) is refused before loading (peft would load it and score nonsense)."""
    problems = []
    for where, node in nodes(settings):
        adapter = getattr(node, "adapter_path", None)
        if not isinstance(node, ModelSettings) or adapter is None or not is_folder(adapter):
            continue
        try:
            config = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # model_folders reports a missing config
        task = config.get("task_type") if isinstance(config, dict) else None
        expected = PEFT_TASK_TYPES[node.model_type]
        if task in PEFT_TASK_TYPES.values() and task != expected:
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
        if getattr(node, "reader_type", None) is not None
        and node.modality is not None  # pickle: features
        and not has_file(node.reader_path, ("preprocessor_config.json",))
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
        and is_folder(node.records_path)
        and not has_file(node.records_path, DATASETS_FOLDER_FILES)
    ]


def logging_backend(settings: Any) -> list[str]:
    """The chosen logger (tensorboard, wandb, clearml) is installed."""
    logger = settings.logging_settings
    package = logger.package if logger is not None else None  # the settings class names it
    if package is None or importlib.util.find_spec(package) is not None:
        return []
    return [f"logging_settings: '{logger.logging_type}' needs the {package} package (pip install {package})"]


def experiment_folder(settings: Any) -> list[str]:
    """log_path can be made and written, and holds no other run (unless this one resumes or restarts it).
    Only the main process looks: under a launcher the other ranks start while it creates the folder."""
    if int(os.environ.get("RANK", "0")) != 0:
        return []
    problem = output_folder_problem(settings.log_path)
    return [f"log_path: {problem}"] if problem else experiment_folder_problems(settings)


OUTPUT_FOLDERS = ("save_path", "output_file_path")  # the folder an inference, sampling or tool command writes


def output_folders(settings: Any) -> list[str]:
    """The output folder can be made and written: not an existing file, not under a file, not in /proc."""
    problems = []
    for name in OUTPUT_FOLDERS:
        folder = getattr(settings, name, None)
        if folder is not None and (problem := output_folder_problem(folder)):
            problems.append(f"{name}: {problem}")
    return problems


def vllm_problem() -> str | None:
    """Why vLLM cannot run here (not installed, an unsupported version), or None."""
    from turbo.generators.vllm import check_vllm_version, installed_vllm_version

    try:
        check_vllm_version(installed_vllm_version())
    except TurboError as exc:
        return str(exc)
    return None
