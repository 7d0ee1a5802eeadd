"""Cherry-picks: fixed prompts the model answers at each evaluation, scored by the listed metrics."""

from __future__ import annotations

from pydantic import Field, field_validator

from turbo.settings.base import StrictModel
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.datasets.classification import ClassificationDatasetSettings
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings
from turbo.settings.generation import CustomGenerationSettings, GeneratorTransformersSettings
from turbo.settings.metrics import MODEL_METRICS, MetricSettings


class CherryPickSettings(StrictModel):
    metric_settings: list[MetricSettings] = Field(
        default_factory=list,
        description="Metrics over the answers, logged as cherry_pick/<dataset>/<metric> at each evaluation.",
    )


class ChatCherryPickSettings(CherryPickSettings):
    """At each evaluation the model answers these prompts; answers go to the experiment folder."""

    dataset_settings: ChatDatasetSettings
    generator_transformers_settings: GeneratorTransformersSettings = GeneratorTransformersSettings()
    custom_generation_settings: CustomGenerationSettings = CustomGenerationSettings()


def _no_model_metrics(value: list) -> list:
    names = sorted({metric.type for metric in value} & MODEL_METRICS)
    if names:
        raise ValueError(
            f"{', '.join(names)} read the language model's log-probs of text prompts; not with this method"
        )
    return value


class RmCherryPickSettings(CherryPickSettings):
    """At each evaluation the reward model scores these conversations (answers included)."""

    dataset_settings: ChatDatasetSettings

    @field_validator("metric_settings")
    @classmethod
    def _text_metrics(cls, value: list) -> list:
        return _no_model_metrics(value)


class ClassificationCherryPickSettings(CherryPickSettings):
    """At each evaluation the classifier labels these records (`accuracy` compares with their labels)."""

    dataset_settings: ClassificationDatasetSettings

    @field_validator("metric_settings")
    @classmethod
    def _text_metrics(cls, value: list) -> list:
        return _no_model_metrics(value)


class MultimodalCherryPickSettings(CherryPickSettings):
    """At each evaluation the model answers these prompts with their media."""

    dataset_settings: MultimodalDatasetSettings
    generator_transformers_settings: GeneratorTransformersSettings = GeneratorTransformersSettings()
    custom_generation_settings: CustomGenerationSettings = CustomGenerationSettings()

    @field_validator("metric_settings")
    @classmethod
    def _text_metrics(cls, value: list) -> list:
        return _no_model_metrics(value)
