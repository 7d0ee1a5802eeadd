from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from turbo.settings.aliases import move_generation_eos_token
from turbo.settings.base import StrictModel
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.generation import CustomGenerationSettings, GeneratorTransformersSettings


class ChatCherryPickSettings(StrictModel):
    """At each evaluation the model answers these prompts; answers go to the experiment folder."""

    dataset_settings: ChatDatasetSettings
    generator_transformers_settings: GeneratorTransformersSettings = GeneratorTransformersSettings()
    custom_generation_settings: CustomGenerationSettings = CustomGenerationSettings()
    metric_settings: list[dict[str, Any]] = Field(
        default_factory=list, description="Metrics over the answers (none are available yet)."
    )

    @model_validator(mode="before")
    @classmethod
    def _old_eos_token(cls, data: Any) -> Any:
        return move_generation_eos_token(
            data, "custom_generation_settings", "generator_transformers_settings"
        )

    @field_validator("metric_settings")
    @classmethod
    def _no_metrics_yet(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if value:
            raise ValueError("no cherry-pick metrics are available in this version; use an empty list")
        return value
