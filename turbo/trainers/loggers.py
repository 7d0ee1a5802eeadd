"""The logger registry: `logging_type` -> how the backend starts. tensorboard and wandb go through
transformers' report_to (with the environment they read); ClearML, which report_to does not cover the
way turbo needs, through its own callback. Every callback receives the same logs, the cherry-pick
metrics included, through the trainer's on_log.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from turbo.settings.logging import ClearmlSettings


def scalar_name(key: str) -> tuple[str, str]:
    """(title, series) of a log key: cherry_pick/<dataset>/<metric> -> (cherry_pick/<dataset>, <metric>);
    eval_loss -> (eval, loss); loss -> (train, loss)."""
    if "/" in key:
        title, series = key.rsplit("/", 1)
        return title, series
    if key.startswith("eval_"):
        return "eval", key[len("eval_") :]
    return "train", key


# no framework hooks, and no repository / package analysis (it scans the code and can take minutes)
NOTHING_AUTOMATIC = {
    name: False
    for name in (
        "matplotlib", "tensorflow", "tensorboard", "pytorch", "xgboost", "scikit", "fastai", "lightgbm",
        "hydra", "detect_repository", "tfdefines", "joblib", "megengine", "catboost", "gradio",
    )
}  # fmt: skip


class ClearmlCallback(TrainerCallback):
    """One ClearML task per run (rank 0), every numeric log reported as a scalar at its step."""

    def __init__(self, settings: ClearmlSettings, task_name: str, configuration: dict[str, Any]) -> None:
        self.settings = settings
        self.task_name = task_name
        self.configuration = configuration
        self.task: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.task is not None:
            return
        from clearml import Task

        if self.settings.mode is not None:
            Task.set_offline(offline_mode=self.settings.mode == "offline")
        self.task = Task.init(
            project_name=self.settings.project_name,
            task_name=self.settings.task_name or self.task_name,
            tags=list(self.settings.tags) or None,
            reuse_last_task_id=False,
            auto_connect_frameworks=NOTHING_AUTOMATIC,
            auto_connect_arg_parser=False,
            auto_resource_monitoring=False,
            auto_connect_streams=False,
        )
        self.task.connect_configuration(self.configuration, name="experiment_settings")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.task is None or not logs:
            return
        reporter = self.task.get_logger()
        for key, value in logs.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key != "epoch":
                title, series = scalar_name(key)
                reporter.report_scalar(
                    title=title, series=series, value=float(value), iteration=state.global_step
                )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.task is not None:
            self.task.flush(wait_for_uploads=True)
            self.task.close()
            self.task = None


def no_report(settings: Any, folder: Path) -> list[str]:
    return []


def tensorboard(settings: Any, folder: Path) -> list[str]:
    names = [name for name in (settings.group_name, settings.run_name) if name]
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(folder, "tensorboard", *names))
    return ["tensorboard"]


def wandb(settings: Any, folder: Path) -> list[str]:
    os.environ["WANDB_PROJECT"] = settings.project_name
    if settings.mode is not None:  # otherwise WANDB_MODE from the environment decides
        os.environ["WANDB_MODE"] = settings.mode
    os.environ["WANDB_DIR"] = str(folder)
    optional = {
        "WANDB_ENTITY": settings.entity,
        "WANDB_NOTES": settings.notes,
        "WANDB_TAGS": ",".join(settings.tags) or None,
        "WANDB_RUN_GROUP": settings.group,
    }
    for name, value in optional.items():
        if value:
            os.environ[name] = value
    return ["wandb"]


@dataclass(frozen=True)
class Logger:
    report_to: Callable[[Any, Path], list[str]]
    """Sets the environment the backend reads; returns its names for TrainingArguments.report_to."""
    callback: Callable[[Any, str, dict[str, Any]], TrainerCallback] | None = None
    """(settings, task name, settings as run) -> the callback of a backend report_to does not start."""


LOGGERS: dict[str, Logger] = {
    "none": Logger(no_report),
    "tensorboard": Logger(tensorboard),
    "wandb": Logger(wandb),
    "clearml": Logger(no_report, ClearmlCallback),
}
