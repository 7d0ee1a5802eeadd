"""Cherry-picks of the models that score instead of generating (reward models, classifiers): at each
evaluation the model scores these records and the scores go to the experiment folder."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from turbo.settings.base import StrictModel
from turbo.settings.datasets.classification import ClassificationDatasetSettings
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings


def _no_metrics(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if value:
        raise ValueError("scoring cherry-picks take no metrics; use an empty list")
    return value


class PairCherryPickSettings(StrictModel):
    """train_rm: both answers of each pair are scored; rows get {"answer_w", "answer_l"} rewards."""

    dataset_settings: PairPreferencesDatasetSettings
    metric_settings: list[dict[str, Any]] = Field(default_factory=list, description="Must be empty.")

    _metrics = field_validator("metric_settings")(classmethod(lambda cls, value: _no_metrics(value)))


class ClassificationCherryPickSettings(StrictModel):
    """train_classification: each record gets its predicted label and class probabilities."""

    dataset_settings: ClassificationDatasetSettings
    metric_settings: list[dict[str, Any]] = Field(default_factory=list, description="Must be empty.")

    _metrics = field_validator("metric_settings")(classmethod(lambda cls, value: _no_metrics(value)))
