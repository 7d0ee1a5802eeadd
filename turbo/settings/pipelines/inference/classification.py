"""inference_classification: the predicted label and class probabilities of every record."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from turbo.settings.base import PositiveCount, Seed, StrictModel
from turbo.settings.datasets.classification import ClassificationDatasetSettings
from turbo.settings.model import ModelSettings
from turbo.settings.problems import raise_problems
from turbo.settings.tokenizer import TokenizerSettings


class ClassificationInferenceModelSettings(StrictModel):
    """One classifier to run over the dataset."""

    model_settings: ModelSettings
    tokenizer_settings: TokenizerSettings = TokenizerSettings()
    batch: PositiveCount = Field(8, description="Records per forward pass.")

    @model_validator(mode="after")
    def _classifier(self) -> ClassificationInferenceModelSettings:
        if self.model_settings.model_type != "seq_cls":
            raise_problems(
                self, [("model_settings.model_type", "must be 'seq_cls' for inference_classification")]
            )
        return self


class ClassificationInferenceExperimentSettings(StrictModel):
    inference_settings: list[ClassificationInferenceModelSettings] = Field(min_length=1)
    dataset_settings: ClassificationDatasetSettings
    save_path: Path = Field(description="Folder for one JSONL of predictions per model and source.")
    seed: Seed = Field(42, description="Seeds Python, NumPy and torch (sampling, shuffling, initialisation).")
