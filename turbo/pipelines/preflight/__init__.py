"""The preflight: everything checkable before any weights load, one list of checks per command.

`PREFLIGHT` is keyed by the command table itself (settings/commands.py): every command has its entry
and a test keeps the two equal, so no command falls back to fewer checks. `turbo validate` and the real
run (`turbo <command>`) both call `preflight(command, settings)` and report every problem at once, each
as 'field.path: what is wrong'. A check is a plain function `settings -> list[str]`; adding one is one
entry in a list below. Nothing here imports torch, transformers or vllm (validate stays fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from turbo.errors import SettingsError, TurboError
from turbo.pipelines.preflight.common import (
    Check,
    adapter_task_types,
    attention_kernels,
    experiment_folder,
    input_files,
    logging_backend,
    model_folders,
    output_folders,
    reader_folders,
    record_folders,
)
from turbo.pipelines.preflight.methods import (
    classification_labels,
    ddpo_reward_model,
    export_outputs,
    mergeable_adapter,
    multimodal_shapes,
    preprocessing_encoder,
    preprocessing_media,
    vllm_engines,
)
from turbo.pipelines.preflight.rag import index_outputs, rag_vector_sizes
from turbo.pipelines.preflight.rl import python_rewards, rollout_engine, server_api_key
from turbo.pipelines.preflight.tools import tools
from turbo.settings.loading import validation_lines
from turbo.settings.outputs import merge_output_problems
from turbo.settings.problems import salvage, unsettled

__all__ = [
    "PREFLIGHT",
    "adapter_task_types",
    "checked_settings",
    "logging_backend",
    "preflight",
    "require_preflight",
]

M = TypeVar("M", bound=BaseModel)

COMMON: list[Check] = [
    input_files,
    model_folders,
    adapter_task_types,
    reader_folders,
    record_folders,
    attention_kernels,
]
TRAIN: list[Check] = [*COMMON, logging_backend, experiment_folder]
WRITES: list[Check] = [*COMMON, output_folders]  # inference, sampling and tools that write save_path
RL: list[Check] = [*TRAIN, python_rewards, rollout_engine, server_api_key, tools]

PREFLIGHT: dict[str, list[Check]] = {
    "train_sft": TRAIN,
    "inference_chat": [*WRITES, vllm_engines, tools],
    "train_classification": [*TRAIN, classification_labels],
    "inference_classification": WRITES,
    "train_kto": TRAIN,
    "random_sample": WRITES,
    "rm_sample": WRITES,
    "rso_sample": WRITES,
    "train_multimodal": [*TRAIN, multimodal_shapes],
    "inference_multimodal": [*WRITES, multimodal_shapes],
    "preprocess_multimodal_dataset": [*WRITES, preprocessing_encoder, preprocessing_media],
    "train_dpo": TRAIN,
    "train_lddpo": TRAIN,
    "train_multimodal_dpo": [*TRAIN, multimodal_shapes],
    "train_ppo": RL,
    "train_grpo": [*RL, multimodal_shapes],
    "train_ddpo": [*TRAIN, ddpo_reward_model],
    "train_rm": TRAIN,
    "inference_rm": WRITES,
    "build_index": [*COMMON, index_outputs],
    "train_rag": [*TRAIN, rag_vector_sizes],
    "inference_rag": [*WRITES, rag_vector_sizes, vllm_engines],
    "merge_adapters_to_base": [*COMMON, mergeable_adapter, merge_output_problems],
    "evaluate": WRITES,
    "export_llava": [*COMMON, export_outputs],
}


def preflight(command: str, settings: Any) -> list[str]:
    """Every problem the command would hit before loading weights, as 'field.path: message'."""
    problems: list[str] = []
    for check in PREFLIGHT[command]:
        try:
            found = check(settings)
        except TurboError as exc:  # a check that stops still reports, and the others run
            found = [str(exc)]
        problems.extend(problem for problem in found if problem not in problems)
    return problems


def _count(n: int) -> str:
    return f"{n} problem{'s' if n > 1 else ''}"


def require_preflight(command: str, settings: Any, source: str | Path) -> None:
    """SettingsError listing every preflight problem (exit code 2), or nothing."""
    problems = preflight(command, settings)
    if problems:
        raise SettingsError(
            f"{source}: valid settings for {command}, but {_count(len(problems))} before anything loads:\n  "
            + "\n  ".join(problems)
        )


def settings_and_preflight_error(
    command: str, model: type[M], data: dict[str, Any], exc: ValidationError, source: str
) -> SettingsError:
    """One error with every settings problem and every preflight problem of what did validate.

    The preflight runs on the settings with the values that failed taken out (settings.problems.salvage);
    its problems about those keys are left out (their own error is reported). When a required block
    failed, there are no settings to check and the settings problems come alone."""
    lines = validation_lines(exc, data)
    salvaged, removed = salvage(model, data, exc)
    later = [] if salvaged is None else [p for p in preflight(command, salvaged) if not unsettled(p, removed)]
    header = f"{source}: {_count(len(lines))} in the settings"
    if later:
        header += f", and {_count(len(later))} before anything loads"
    return SettingsError(f"{header}:\n  " + "\n  ".join([*lines, *later]))


def checked_settings(command: str, model: type[M], data: dict[str, Any], source: str) -> M:
    """The settings of `data` for `command` once they validate and pass the preflight; otherwise one
    SettingsError listing every problem of both (what `turbo validate` and the run report)."""
    try:
        settings = model.model_validate(data)
    except ValidationError as exc:
        raise settings_and_preflight_error(command, model, data, exc, source) from None
    require_preflight(command, settings, source)
    return settings
