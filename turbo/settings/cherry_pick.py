"""Cherry-picks: fixed prompts the model answers at each evaluation, scored by the listed metrics."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from turbo.settings.aliases import move_generation_eos_token
from turbo.settings.base import StrictModel
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.datasets.chat import refuse_packing
from turbo.settings.datasets.classification import ClassificationDatasetSettings
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.generation import CustomGenerationSettings, GeneratorTransformersSettings
from turbo.settings.metrics import MetricSettings, model_metric_names


class CherryPickSettings(StrictModel):
    metric_settings: list[MetricSettings] = Field(
        default_factory=list,
        description="Metrics over the answers, logged as cherry_pick/<dataset>/<metric> at each evaluation.",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_eos_token(cls, data: Any) -> Any:
        """The original's custom_generation_settings.generation_eos_token is a stop string."""
        return move_generation_eos_token(
            data, "custom_generation_settings", "generator_transformers_settings"
        )

    @field_validator("dataset_settings", check_fields=False)
    @classmethod
    def _no_packing(cls, value: Any) -> Any:
        return refuse_packing(value)


class ChatCherryPickSettings(CherryPickSettings):
    """At each evaluation the model answers these prompts; answers go to the experiment folder."""

    dataset_settings: ChatDatasetSettings
    generator_transformers_settings: GeneratorTransformersSettings = GeneratorTransformersSettings()
    custom_generation_settings: CustomGenerationSettings = CustomGenerationSettings()

    @field_validator("generator_transformers_settings")
    @classmethod
    def _no_logprobs(cls, value: GeneratorTransformersSettings) -> GeneratorTransformersSettings:
        if value.logprobs is not None:
            raise ValueError(
                "logprobs: only the inference commands write log-probs, cherry-picks do not; remove it"
            )
        return value


def text_metrics_only(value: list) -> list:
    names = model_metric_names(value)
    if names:
        raise ValueError(
            f"{', '.join(names)} read the language model's log-probs of text prompts; not with this method"
        )
    return value


class RmCherryPickSettings(CherryPickSettings):
    """At each evaluation the reward model scores these conversations (answers included), or both
    answers of each pair of a `pair_preferences` dataset (the original layout)."""

    dataset_settings: Annotated[
        ChatDatasetSettings | PairPreferencesDatasetSettings,
        Field(
            discriminator="dataset_type", description="The conversations or pairs to score (by dataset_type)."
        ),
    ]

    @field_validator("metric_settings")
    @classmethod
    def _text_metrics(cls, value: list) -> list:
        return text_metrics_only(value)


class ClassificationCherryPickSettings(CherryPickSettings):
    """At each evaluation the classifier labels these records (`accuracy` compares with their labels)."""

    dataset_settings: ClassificationDatasetSettings

    @field_validator("metric_settings")
    @classmethod
    def _text_metrics(cls, value: list) -> list:
        return text_metrics_only(value)


class MultimodalCherryPickSettings(CherryPickSettings):
    """At each evaluation the model answers these prompts with their media."""

    dataset_settings: MultimodalDatasetSettings
    generator_transformers_settings: GeneratorTransformersSettings = GeneratorTransformersSettings()
    custom_generation_settings: CustomGenerationSettings = CustomGenerationSettings()

    @field_validator("metric_settings")
    @classmethod
    def _text_metrics(cls, value: list) -> list:
        return text_metrics_only(value)
