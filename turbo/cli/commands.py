"""The one table that routes every pipeline command: name -> settings flag, settings class, pipeline."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    name: str
    flag: str  # the option that names the settings file
    settings: str  # "module:Class" of the settings
    pipeline: str  # "module:function" that runs them
    help: str


def _commands(*commands: Command) -> dict[str, Command]:
    return {command.name: command for command in commands}


COMMANDS = _commands(
    Command(
        "train_sft",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.sft:SftExperimentSettings",
        "turbo.pipelines.train.sft:run",
        "Supervised fine-tuning on chat data (full or PEFT).",
    ),
    Command(
        "inference_chat",
        "inference_settings_path",
        "turbo.settings.pipelines.inference.chat:ChatInferenceExperimentSettings",
        "turbo.pipelines.inference.chat:run",
        "Answer chat datasets with one or more models and generation settings.",
    ),
    Command(
        "merge_adapters_to_base",
        "settings_path",
        "turbo.settings.pipelines.merge:MergeAdaptersSettings",
        "turbo.pipelines.tools.merge:run",
        "Merge a LoRA adapter into its base model and save a plain model folder.",
    ),
)


def load_object(reference: str) -> Any:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)
