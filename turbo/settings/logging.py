from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field

from turbo.settings.aliases import infer_logging_type
from turbo.settings.base import StrictModel


class _LoggerFields(StrictModel):
    package: ClassVar[str | None] = None
    """The package the logger needs (checked by the preflight before any model loads); None: none."""


class NoLoggingSettings(_LoggerFields):
    logging_type: Literal["none"]


class TensorboardSettings(_LoggerFields):
    package = "tensorboard"

    logging_type: Literal["tensorboard"]
    run_name: str | None = Field(
        None, description="The run's name; its logs go to tensorboard/[group_name/]run_name."
    )
    group_name: str | None = Field(None, description="Groups runs: tensorboard/group_name/.")


class WandbSettings(_LoggerFields):
    package = "wandb"

    logging_type: Literal["wandb"]
    project_name: str = Field(description="The W&B project.")
    run_name: str | None = Field(None, description="The W&B run's name. None: W&B names it.")
    entity: str | None = Field(None, description="The W&B team or user. None: the default one.")
    notes: str | None = Field(None, description="A note kept with the run.")
    tags: list[str] = Field(default_factory=list, description="Tags of the run.")
    group: str | None = Field(None, description="Groups runs together in the wandb project.")
    mode: Literal["online", "offline", "disabled"] | None = Field(
        None,
        description="'offline' logs to the experiment folder with no network; None: WANDB_MODE from the "
        "environment (wandb's own default, online, when it is not set).",
    )


class ClearmlSettings(_LoggerFields):
    package = "clearml"

    logging_type: Literal["clearml"]
    project_name: str = Field(description="The ClearML project.")
    task_name: str | None = Field(None, description="None: the experiment folder's name.")
    tags: list[str] = Field(default_factory=list, description="Tags of the task.")
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
