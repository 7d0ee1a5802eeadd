from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from turbo.settings.base import StrictModel
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings
from turbo.settings.multimodal import (
    EncoderSettings,
    Modality,
    ProjectorSettings,
    check_modality_mappings,
    check_square,
    present,
)
from turbo.settings.paths import InputFile
from turbo.settings.pipelines.inference.chat import ChatInferenceModelSettings


class MultimodalInferenceModelSettings(ChatInferenceModelSettings):
    """A chat model entry plus its trained projectors."""

    projections_path: InputFile = Field(
        description="The projector weights train_multimodal wrote (final/projectors.safetensors)."
    )
    n_modality_embeddings: int = Field(gt=0, description="Must equal the dataset's n_modality_embeddings.")

    @model_validator(mode="after")
    def _no_vllm(self) -> MultimodalInferenceModelSettings:
        if self.use_vllm:
            raise ValueError("use_vllm is not available for multimodal inference; set use_vllm: false")
        return self


class MultimodalInferenceExperimentSettings(StrictModel):
    inference_settings: list[MultimodalInferenceModelSettings] = Field(min_length=1)
    dataset_settings: MultimodalDatasetSettings
    modality_encoder_settings_mapping: dict[Modality, EncoderSettings | None] = Field(min_length=1)
    modality_projector_mapping: dict[Modality, ProjectorSettings | None] = Field(min_length=1)
    save_path: Path = Field(description="Folder for one JSONL of answers per model, generation and source.")
    seed: int = 42

    @model_validator(mode="after")
    def _parts_fit(self) -> MultimodalInferenceExperimentSettings:
        check_modality_mappings(self.encoders, self.projectors, self.dataset_settings.readers)
        for modality, encoder in self.encoders.items():
            if encoder.trainable:
                raise ValueError(
                    f"modality_encoder_settings_mapping.{modality}: inference trains nothing; drop "
                    "freeze and peft_settings (for an encoder trained with freeze: false, set "
                    f"encoder_path to the run's final/encoders/{modality})"
                )
        n = self.dataset_settings.n_modality_embeddings
        check_square(self.projectors, n)
        for index, entry in enumerate(self.inference_settings):
            if entry.n_modality_embeddings != n:
                raise ValueError(
                    f"inference_settings.{index}.n_modality_embeddings is {entry.n_modality_embeddings} but "
                    f"dataset_settings.n_modality_embeddings is {n}; they must be equal"
                )
        return self

    @property
    def encoders(self) -> dict[str, EncoderSettings]:
        return present(self.modality_encoder_settings_mapping)

    @property
    def projectors(self) -> dict[str, ProjectorSettings]:
        return present(self.modality_projector_mapping)
