"""train_multimodal_dpo: DPO and its relatives on pair preferences whose prompts hold images."""

from __future__ import annotations

from pydantic import Field

from turbo.settings.datasets.multimodal_pair_preferences import MultimodalPairPreferencesDatasetSettings
from turbo.settings.model import ModelSettings
from turbo.settings.pipelines.train.dpo import DpoTrainerSettings, dpo_problems
from turbo.settings.pipelines.train.multimodal import MultimodalExperimentSettings
from turbo.settings.problems import Problem


class MultimodalDpoExperimentSettings(MultimodalExperimentSettings):
    """The multimodal model of train_multimodal (encoder -> projector -> LM, the same settings) trained
    with train_dpo's losses (every loss_type, the same trainer_settings) on multimodal pair preferences.
    The projectors (and the LM, in full or its adapter) train; the reference keeps the starting
    projectors and encoders beside a frozen LM (use_ref_model: true) or the policy's LM with its adapter
    disabled (use_ref_model: false)."""

    train_dataset_settings: MultimodalPairPreferencesDatasetSettings  # type: ignore[assignment]
    val_dataset_settings: MultimodalPairPreferencesDatasetSettings | None = None  # type: ignore[assignment]
    trainer_settings: DpoTrainerSettings = DpoTrainerSettings()
    ref_model_settings: ModelSettings | None = Field(
        None,
        description="The reference's language model; None: the starting one (model_settings without a new "
        "adapter). Its projectors and encoders are always the starting ones.",
    )

    @property
    def uses_reference(self) -> bool:
        return self.trainer_settings.loss_settings.uses_reference

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        if self.model_settings.model_type != "causal":
            problems.append(("model_settings.model_type", "must be 'causal' for train_multimodal_dpo"))
        if self.trainer_settings.use_sft_model:  # its rewards/sft_* are train_dpo's only
            problems.append(
                (
                    "trainer_settings.use_sft_model",
                    "is not available in train_multimodal_dpo (rewards/sft_* are logged by train_dpo); "
                    "remove it or set it to false",
                )
            )
        # a frozen LM (lang_decoder_update: false) is its own reference, beside the starting projectors
        own_reference = self.trains_adapter or not self.lang_decoder_update
        return problems + dpo_problems(self, own_reference=own_reference)
