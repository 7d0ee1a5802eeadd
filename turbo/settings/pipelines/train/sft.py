from __future__ import annotations

from pydantic import model_validator

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings


class SftExperimentSettings(BaseTrainExperimentSettings):
    train_dataset_settings: ChatDatasetSettings
    val_dataset_settings: ChatDatasetSettings | None = None
    cherry_pick_settings: ChatCherryPickSettings | None = None

    @model_validator(mode="after")
    def _evaluation_has_data(self) -> SftExperimentSettings:
        if self.trainer_settings.eval_strategy != "no" and self.val_dataset_settings is None:
            raise ValueError(
                "trainer_settings.eval_strategy is "
                f"'{self.trainer_settings.eval_strategy}' but there is no val_dataset_settings"
            )
        if self.cherry_pick_settings is not None and self.trainer_settings.eval_strategy == "no":
            raise ValueError(
                "cherry_pick_settings runs at each evaluation; set trainer_settings.eval_strategy"
            )
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
