from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from turbo.settings.aliases import infer_logging_type
from turbo.settings.base import StrictModel


class NoLoggingSettings(StrictModel):
    logging_type: Literal["none"]


class TensorboardSettings(StrictModel):
    logging_type: Literal["tensorboard"]


class WandbSettings(StrictModel):
    logging_type: Literal["wandb"]
    project_name: str
    run_name: str | None = None
    entity: str | None = None
    notes: str | None = None
    tags: list[str] = Field(default_factory=list)
    group: str | None = Field(None, description="Groups runs together in the wandb project.")
    mode: Literal["online", "offline", "disabled"] | None = Field(
        None,
        description="'offline' logs to the experiment folder with no network; None: WANDB_MODE from the "
        "environment (wandb's own default, online, when it is not set).",
    )


class ClearmlSettings(StrictModel):
    logging_type: Literal["clearml"]
    project_name: str
    task_name: str | None = Field(None, description="None: the experiment folder's name.")
    tags: list[str] = Field(default_factory=list)
    mode: Literal["online", "offline"] | None = Field(
        None,
        description="'offline' keeps the task in the local ClearML cache (Task.set_offline); None: "
        "CLEARML_OFFLINE_MODE from the environment (online when it is not set).",
    )


LoggingSettings = Annotated[
    NoLoggingSettings | TensorboardSettings | WandbSettings | ClearmlSettings,
    Field(discriminator="logging_type"),
    BeforeValidator(infer_logging_type),
]
