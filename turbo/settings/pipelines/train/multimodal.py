from __future__ import annotations

from pydantic import Field

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings
from turbo.settings.multimodal import (
    EncoderSettings,
    Modality,
    ProjectorSettings,
    modality_problems,
    present,
    square_problems,
)
from turbo.settings.paths import InputFile
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.problems import Problem


class MultimodalCherryPickSettings(ChatCherryPickSettings):
    """At each evaluation the model answers these multimodal prompts (their media read as the dataset
    says); answers go to cherry_picks/step_N.jsonl."""

    dataset_settings: MultimodalDatasetSettings  # type: ignore[assignment]


class MultimodalExperimentSettings(BaseTrainExperimentSettings):
    """LLaVA-style training: encoder (frozen by default) -> projector -> the LM's input embeddings."""

    train_dataset_settings: MultimodalDatasetSettings
    val_dataset_settings: MultimodalDatasetSettings | None = None
    cherry_pick_settings: MultimodalCherryPickSettings | None = None
    modality_encoder_settings_mapping: dict[Modality, EncoderSettings | None] = Field(min_length=1)
    modality_projector_mapping: dict[Modality, ProjectorSettings | None] = Field(
        min_length=1, description='Modality -> projector: "llava", "c_abs", or {"projector_type": ...}.'
    )
    modality_projector_initialization_mapping: dict[Modality, InputFile | None] | None = Field(
        None, description="Modality -> a safetensors file of initial projector weights."
    )
    projector_learning_rate: float | None = Field(
        None, ge=0, description="Default: trainer_settings.learning_rate."
    )
    encoder_learning_rate: float | None = Field(
        None, ge=0, description="For an unfrozen or LoRA encoder. Default: trainer_settings.learning_rate."
    )

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        for name in ("train_dataset_settings", "val_dataset_settings"):
            dataset = getattr(self, name)
            if dataset is not None:
                readers_where = f"{name}.modality_reader_settings_mapping"
                problems += modality_problems(self.encoders, self.projectors, dataset.readers, readers_where)
                n_where = f"{name}.n_modality_embeddings"
                problems += square_problems(self.projectors, dataset.n_modality_embeddings, n_where)
        val, train = self.val_dataset_settings, self.train_dataset_settings
        if val is not None and val.n_modality_embeddings != train.n_modality_embeddings:
            problems.append(
                (
                    "val_dataset_settings.n_modality_embeddings",
                    f"is {val.n_modality_embeddings} but train_dataset_settings.n_modality_embeddings is "
                    f"{train.n_modality_embeddings}; they must be the same",
                )
            )
        unknown = set(present(self.modality_projector_initialization_mapping)) - set(self.projectors)
        problems += [
            (f"modality_projector_initialization_mapping.{modality}", "no projector for this modality")
            for modality in sorted(unknown)
        ]
        return problems

    @property
    def encoders(self) -> dict[str, EncoderSettings]:
        return present(self.modality_encoder_settings_mapping)

    @property
    def projectors(self) -> dict[str, ProjectorSettings]:
        return present(self.modality_projector_mapping)
