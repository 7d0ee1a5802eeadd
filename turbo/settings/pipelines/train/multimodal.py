from __future__ import annotations

from pydantic import Field

from turbo.settings.cherry_pick import MultimodalCherryPickSettings
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings
from turbo.settings.multimodal import (
    EncoderMapping,
    EncoderSettings,
    Modality,
    ModalityParts,
    ProjectorMapping,
    modality_problems,
    present,
    square_problems,
)
from turbo.settings.paths import InputFile
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.problems import Problem


class MultimodalExperimentSettings(BaseTrainExperimentSettings, ModalityParts):
    """LLaVA-style training: encoder (frozen by default) -> projector -> the LM's input embeddings."""

    train_dataset_settings: MultimodalDatasetSettings
    val_dataset_settings: MultimodalDatasetSettings | None = None
    cherry_pick_settings: MultimodalCherryPickSettings | None = None
    modality_encoder_settings_mapping: EncoderMapping
    modality_projector_mapping: ProjectorMapping
    modality_projector_initialization_mapping: dict[Modality, InputFile | None] | None = Field(
        None, description="Modality -> a safetensors file of initial projector weights."
    )
    projector_learning_rate: float | None = Field(
        None, ge=0, description="Default: trainer_settings.learning_rate."
    )
    encoder_learning_rate: float | None = Field(
        None, ge=0, description="For an unfrozen or LoRA encoder. Default: trainer_settings.learning_rate."
    )
    freeze_vision_tower: bool | None = Field(
        None,
        description="Freeze (true) or train (false) every image encoder, as an encoder's own `freeze` does "
        "(which defaults to true). None: each encoder's `freeze`.",
    )
    lang_decoder_update: bool = Field(
        True,
        description="Train the language model (in full, or its peft_settings adapter); false freezes it, "
        "so only the projectors (always trained) and any trainable encoder learn.",
    )
    learning_rate_pretraining_components: float | None = Field(
        None,
        ge=0,
        description="DeepSpeed-VisualChat's learning rate of the pretrained parts (the language model and a "
        "trained encoder); trainer_settings.learning_rate then applies to the new parts (the projectors). "
        "projector_learning_rate and encoder_learning_rate, where set, still win.",
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
        if self.freeze_vision_tower is not None:
            for modality, encoder in present(self.modality_encoder_settings_mapping).items():
                if "freeze" in encoder.model_fields_set and encoder.freeze != self.freeze_vision_tower:
                    problems.append(
                        (
                            "freeze_vision_tower",
                            f"disagrees with modality_encoder_settings_mapping.{modality}.freeze; "
                            "set one of them",
                        )
                    )
        if not self.lang_decoder_update and self.model_settings.trains_adapter:
            problems.append(
                (
                    "lang_decoder_update",
                    "is false (the language model is frozen), but model_settings trains an adapter on it; "
                    "remove peft_settings or set lang_decoder_update: true",
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
        """ModalityParts' encoders, every image one frozen or trained as freeze_vision_tower says."""
        encoders = super().encoders
        if self.freeze_vision_tower is None:
            return encoders
        return {
            modality: encoder.model_copy(update={"freeze": self.freeze_vision_tower})
            if encoder.modality == "image"
            else encoder
            for modality, encoder in encoders.items()
        }
