from __future__ import annotations

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.problems import Problem


class SftExperimentSettings(BaseTrainExperimentSettings):
    train_dataset_settings: ChatDatasetSettings
    val_dataset_settings: ChatDatasetSettings | None = None
    cherry_pick_settings: ChatCherryPickSettings | None = None

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        peft = self.model_settings.peft_settings
        if peft is not None and peft.virtual_tokens:
            for name in ("train_dataset_settings", "val_dataset_settings"):
                dataset = getattr(self, name)
                if dataset is not None and dataset.pack_to_max_length:
                    problems.append(
                        (
                            f"{name}.pack_to_max_length",
                            f"cannot be used with {peft.name}: its virtual tokens break the per-sample "
                            "positions of a packed row; use LORA or turn packing off",
                        )
                    )
        return problems
