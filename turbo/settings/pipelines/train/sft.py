from __future__ import annotations

from pydantic import model_validator

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings, check_evaluation


class SftExperimentSettings(BaseTrainExperimentSettings):
    train_dataset_settings: ChatDatasetSettings
    val_dataset_settings: ChatDatasetSettings | None = None
    cherry_pick_settings: ChatCherryPickSettings | None = None

    @model_validator(mode="after")
    def _evaluation_has_data(self) -> SftExperimentSettings:
        check_evaluation(self.trainer_settings, self.val_dataset_settings, self.cherry_pick_settings)
        return self

    @model_validator(mode="after")
    def _packing_fits(self) -> SftExperimentSettings:
        packed = self.train_dataset_settings.pack_to_max_length or (
            self.val_dataset_settings is not None and self.val_dataset_settings.pack_to_max_length
        )
        peft = self.model_settings.peft_settings
        if packed and peft is not None and peft.name != "LORA":
            raise ValueError(
                f"pack_to_max_length cannot be used with {peft.name}: its virtual tokens break the "
                "per-sample positions of a packed row; use LORA or turn packing off"
            )
        if (
            self.cherry_pick_settings is not None
            and self.cherry_pick_settings.dataset_settings.pack_to_max_length
        ):
            raise ValueError(
                "cherry_pick_settings.dataset_settings: pack_to_max_length applies to training data only"
            )
        return self
