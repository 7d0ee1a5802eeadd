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
    mode: Literal["online", "offline", "disabled"] = Field(
        "online", description="'offline' logs to the experiment folder with no network."
    )


LoggingSettings = Annotated[
    NoLoggingSettings | TensorboardSettings | WandbSettings,
    Field(discriminator="logging_type"),
    BeforeValidator(infer_logging_type),
]
