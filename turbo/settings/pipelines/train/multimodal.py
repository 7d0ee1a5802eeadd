from __future__ import annotations

from pydantic import Field, model_validator

from turbo.settings.cherry_pick import MultimodalCherryPickSettings
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings
from turbo.settings.multimodal import (
    EncoderSettings,
    Modality,
    ProjectorSettings,
    check_modality_mappings,
    check_square,
    present,
)
from turbo.settings.paths import InputPath
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings, check_evaluation


class MultimodalExperimentSettings(BaseTrainExperimentSettings):
    """LLaVA-style training: encoder (frozen by default) -> projector -> the LM's input embeddings."""

    train_dataset_settings: MultimodalDatasetSettings
    val_dataset_settings: MultimodalDatasetSettings | None = None
    cherry_pick_settings: MultimodalCherryPickSettings | None = None
    modality_encoder_settings_mapping: dict[Modality, EncoderSettings | None] = Field(min_length=1)
    modality_projector_mapping: dict[Modality, ProjectorSettings | None] = Field(
        min_length=1, description='Modality -> projector: "llava", "c_abs", or {"projector_type": ...}.'
    )
    modality_projector_initialization_mapping: dict[Modality, InputPath | None] | None = Field(
        None, description="Modality -> a safetensors file of initial projector weights."
    )
    projector_learning_rate: float | None = Field(
        None, ge=0, description="Default: trainer_settings.learning_rate."
    )
    encoder_learning_rate: float | None = Field(
        None, ge=0, description="For an unfrozen or LoRA encoder. Default: trainer_settings.learning_rate."
    )

    @model_validator(mode="after")
    def _parts_fit(self) -> MultimodalExperimentSettings:
        datasets = [self.train_dataset_settings, self.val_dataset_settings]
        for dataset in filter(None, datasets):
            check_modality_mappings(self.encoders, self.projectors, dataset.readers)
            check_square(self.projectors, dataset.n_modality_embeddings)
        if self.val_dataset_settings is not None and (
            self.val_dataset_settings.n_modality_embeddings
            != self.train_dataset_settings.n_modality_embeddings
        ):
            raise ValueError("train and val datasets must have the same n_modality_embeddings")
        check_evaluation(self.trainer_settings, self.val_dataset_settings, self.cherry_pick_settings)
        unknown = set(present(self.modality_projector_initialization_mapping)) - set(self.projectors)
        if unknown:
            raise ValueError(
                f"modality_projector_initialization_mapping: no projector for {', '.join(sorted(unknown))}"
            )
        return self

    @property
    def encoders(self) -> dict[str, EncoderSettings]:
        return present(self.modality_encoder_settings_mapping)

    @property
    def projectors(self) -> dict[str, ProjectorSettings]:
        return present(self.modality_projector_mapping)
