"""train_classification: a sequence-classification model trained with focal loss."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from turbo.settings.base import StrictModel
from turbo.settings.cherry_pick import ClassificationCherryPickSettings
from turbo.settings.datasets.classification import ClassificationDatasetSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.problems import Problem
from turbo.settings.trainer import TrainerSettings


class ClassificationLossSettings(StrictModel):
    """Focal loss, mean over the batch of alpha[y] * (1 - p_y) ** gamma * -log p_y."""

    alpha: Literal["auto"] | list[float] | None = Field(
        None,
        description="Class weights: 'auto' balances them from the training labels "
        "(n_records / (n_classes * n_class_records)), a list gives one weight per label, None: all 1.",
    )
    gamma: float = Field(0.0, ge=0, description="Focusing parameter; 0 with alpha None is cross-entropy.")

    @model_validator(mode="after")
    def _positive_weights(self) -> ClassificationLossSettings:
        if isinstance(self.alpha, list) and (not self.alpha or any(w < 0 for w in self.alpha)):
            raise ValueError(
                "alpha must be 'auto', null, or a non-empty list of weights >= 0 (one per label)"
            )
        return self


class ClassificationTrainerSettings(TrainerSettings):
    """The trainer settings, with the classification loss."""

    loss_settings: ClassificationLossSettings = ClassificationLossSettings()


class ClassificationExperimentSettings(BaseTrainExperimentSettings):
    train_dataset_settings: ClassificationDatasetSettings
    val_dataset_settings: ClassificationDatasetSettings | None = None
    trainer_settings: ClassificationTrainerSettings = ClassificationTrainerSettings()
    cherry_pick_settings: ClassificationCherryPickSettings | None = None

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        if self.model_settings.model_type != "seq_cls":
            problems.append(("model_settings.model_type", "must be 'seq_cls' for train_classification"))
        alpha = self.trainer_settings.loss_settings.alpha
        num_labels = self.model_settings.model_kwargs.get("num_labels")
        if isinstance(alpha, list) and isinstance(num_labels, int) and len(alpha) != num_labels:
            problems.append(
                (
                    "trainer_settings.loss_settings.alpha",
                    f"has {len(alpha)} weights but model_settings.model_kwargs.num_labels is {num_labels}; "
                    "give one weight per label",
                )
            )
        return problems
