from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from turbo.settings.aliases import lift_keys
from turbo.settings.base import PositiveCount, Seed, StrictModel
from turbo.settings.cherry_pick import text_metrics_only
from turbo.settings.datasets.chat import refuse_packing
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings
from turbo.settings.metrics import MetricSettings
from turbo.settings.multimodal import (
    EncoderMapping,
    ModalityParts,
    ProjectorMapping,
    modality_problems,
    square_problems,
)
from turbo.settings.paths import InputFile
from turbo.settings.pipelines.inference.chat import ChatInferenceModelSettings
from turbo.settings.problems import Problem, raise_problems


class MultimodalInferenceModelSettings(ChatInferenceModelSettings):
    """A chat model entry plus its trained projectors."""

    projections_path: InputFile = Field(
        description="The projector weights train_multimodal wrote (final/projectors.safetensors), or a "
        "torch state dict (.pt/.bin, read tensors-only). May be written inside model_settings."
    )
    n_modality_embeddings: PositiveCount = Field(
        description="Must equal the dataset's n_modality_embeddings."
    )
    metric_settings: list[MetricSettings] = Field(
        default_factory=list,
        description="Text metrics (meteor, rouge, length, ...) of this model's answers, against each "
        "record's final bot message where the metric reads a reference: each output row gets its "
        "'metrics', and metrics.json in the generation's folder the means per source (as `evaluate` "
        "computes them). Metrics that read the model's log-probs (kl, perplexity) are not available here.",
    )

    @field_validator("metric_settings")
    @classmethod
    def _text_metrics(cls, value: list) -> list:
        return text_metrics_only(value)

    @model_validator(mode="before")
    @classmethod
    def _projections_in_model_settings(cls, data: Any) -> Any:
        """The original writes projections_path and n_modality_embeddings inside model_settings."""
        if not isinstance(data, dict) or not isinstance(data.get("model_settings"), dict):
            return data
        data, model = lift_keys(
            data,
            data["model_settings"],
            ("projections_path", "n_modality_embeddings"),
            "is set both here and in model_settings; set it once",
        )
        return {**data, "model_settings": model}

    def cross_field_problems(self) -> list[Problem]:
        if self.use_vllm:
            return [
                (
                    "use_vllm",
                    "is not available for inference_multimodal yet; set use_vllm: false (transformers "
                    "generates). To serve the model with vLLM, export it with export_llava (a transformers "
                    "LLaVA folder) and give that folder to vLLM where torchvision is installed (vLLM 0.32's "
                    "LLaVA model imports it through its Pixtral image processor; turbo's install leaves "
                    "torchvision out, as it breaks transformers with the CPU torch)",
                )
            ]
        return super().cross_field_problems()


ENTRY_PARTS = ("modality_encoder_settings_mapping", "modality_projector_mapping")


class MultimodalInferenceExperimentSettings(StrictModel, ModalityParts):
    inference_settings: list[MultimodalInferenceModelSettings] = Field(min_length=1)
    dataset_settings: MultimodalDatasetSettings
    modality_encoder_settings_mapping: EncoderMapping
    modality_projector_mapping: ProjectorMapping
    save_path: Path = Field(description="Folder for one JSONL of answers per model, generation and source.")
    seed: Seed = Field(42, description="Seeds Python, NumPy and torch (sampling, shuffling, initialisation).")

    @field_validator("dataset_settings")
    @classmethod
    def _no_packing(cls, value: Any) -> Any:
        return refuse_packing(value)

    @model_validator(mode="before")
    @classmethod
    def _parts_on_the_entries(cls, data: Any) -> Any:
        """The original writes the encoder and projector mappings on each inference entry."""
        if not isinstance(data, dict) or not isinstance(data.get("inference_settings"), list):
            return data
        entries = []
        for entry in data["inference_settings"]:
            if isinstance(entry, dict):
                data, entry = lift_keys(
                    data,
                    entry,
                    ENTRY_PARTS,
                    "differs between inference entries (or from the top level); "
                    "one experiment serves one set of encoders and projectors",
                )
            entries.append(entry)
        return {**data, "inference_settings": entries}

    @model_validator(mode="after")
    def _parts_fit(self) -> MultimodalInferenceExperimentSettings:
        readers_where = "dataset_settings.modality_reader_settings_mapping"
        problems = modality_problems(
            self.encoders, self.projectors, self.dataset_settings.readers, readers_where
        )
        problems += [
            (
                f"modality_encoder_settings_mapping.{modality}",
                "inference trains nothing; drop freeze and peft_settings (for an encoder trained with "
                f"freeze: false, set encoder_path to the run's final/encoders/{modality})",
            )
            for modality, encoder in self.encoders.items()
            if encoder.trainable
        ]
        n = self.dataset_settings.n_modality_embeddings
        problems += square_problems(self.projectors, n, "dataset_settings.n_modality_embeddings")
        problems += [
            (
                f"inference_settings.{index}.n_modality_embeddings",
                f"is {entry.n_modality_embeddings} but dataset_settings.n_modality_embeddings is {n}; "
                "they must be equal",
            )
            for index, entry in enumerate(self.inference_settings)
            if entry.n_modality_embeddings != n
        ]
        raise_problems(self, problems)
        return self
