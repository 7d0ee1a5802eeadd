"""train_kto: Kahneman-Tversky optimisation on unpaired desirable / undesirable answers."""

from __future__ import annotations

from pydantic import Field

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets.kto import KtoDatasetSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.pipelines.train.dpo import SyncRefModelSettings, sync_problems
from turbo.settings.problems import Problem
from turbo.settings.trainer import TrainerSettings


class KtoTrainerSettings(TrainerSettings):
    """The trainer settings, with the KTO loss and its reference model."""

    beta: float = Field(0.1, gt=0, description="Strength of the implicit KL penalty (the reward scale).")
    desirable_weight: float = Field(1.0, ge=0, description="Weight of the loss on desirable answers.")
    undesirable_weight: float = Field(1.0, ge=0, description="Weight of the loss on undesirable answers.")
    use_ref_model: bool = Field(
        True,
        description="Keep a separate frozen copy of the starting model as the reference. With PEFT, "
        "false uses the same model with the adapter disabled (no second copy in memory).",
    )
    precompute_ref_log_probs: bool = Field(
        False,
        description="Compute the reference log-probs of every sample once before training "
        "(the reference model is freed afterwards).",
    )
    sync_ref_settings: SyncRefModelSettings = SyncRefModelSettings()


class KtoExperimentSettings(BaseTrainExperimentSettings):
    train_dataset_settings: KtoDatasetSettings
    val_dataset_settings: KtoDatasetSettings | None = None
    trainer_settings: KtoTrainerSettings = KtoTrainerSettings()
    cherry_pick_settings: ChatCherryPickSettings | None = None

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        trainer = self.trainer_settings
        if self.model_settings.model_type != "causal":
            problems.append(("model_settings.model_type", "must be 'causal' for train_kto"))
        if not (trainer.use_ref_model or trainer.precompute_ref_log_probs or self.trains_adapter):
            problems.append(
                (
                    "trainer_settings.use_ref_model",
                    "full fine-tuning needs a reference model: set trainer_settings.use_ref_model: true "
                    "or precompute_ref_log_probs: true (or train a PEFT adapter)",
                )
            )
        if trainer.sync_ref_settings.sync_ref_model:
            problems += sync_problems(
                self.model_settings, True, trainer.use_ref_model, trainer.precompute_ref_log_probs
            )
        return problems
