from __future__ import annotations

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings, Problem
from turbo.settings.rag import RagModelSettings


class RagExperimentSettings(BaseTrainExperimentSettings):
    """RAG-Sequence end to end: the question encoder and the generator train together.

    `tokenizer_settings` and `special_tokens_settings` are the generator's.
    """

    model_settings: RagModelSettings  # type: ignore[assignment]
    train_dataset_settings: ChatDatasetSettings
    val_dataset_settings: ChatDatasetSettings | None = None
    cherry_pick_settings: ChatCherryPickSettings | None = None

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        for name in ("train_dataset_settings", "val_dataset_settings"):
            dataset = getattr(self, name)
            if dataset is not None and dataset.pack_to_max_length:
                problems.append((f"{name}.pack_to_max_length", "train_rag does not pack samples; set false"))
        return problems
