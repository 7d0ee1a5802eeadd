"""Logging backends that transformers' report_to does not cover the way turbo needs: ClearML.

(tensorboard and wandb go through report_to; every callback receives the same logs, the cherry-pick
metrics included, through the trainer's on_log.)
"""

from __future__ import annotations

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
            auto_connect_frameworks=False,
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
