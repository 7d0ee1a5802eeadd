from __future__ import annotations

from pydantic import model_validator

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings, check_evaluation
from turbo.settings.rag import RagModelSettings


class RagExperimentSettings(BaseTrainExperimentSettings):
    """RAG-Sequence end to end: the question encoder and the generator train together.

    `tokenizer_settings` and `special_tokens_settings` are the generator's.
    """

    model_settings: RagModelSettings  # type: ignore[assignment]
    train_dataset_settings: ChatDatasetSettings
    val_dataset_settings: ChatDatasetSettings | None = None
    cherry_pick_settings: ChatCherryPickSettings | None = None

    @model_validator(mode="after")
    def _evaluation_has_data(self) -> RagExperimentSettings:
        check_evaluation(self.trainer_settings, self.val_dataset_settings, self.cherry_pick_settings)
        for name in ("train_dataset_settings", "val_dataset_settings"):
            dataset = getattr(self, name)
            if dataset is not None and dataset.pack_to_max_length:
                raise ValueError(f"{name}.pack_to_max_length: train_rag does not pack samples; set it false")
        return self
