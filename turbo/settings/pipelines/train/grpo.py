"""train_grpo: group relative policy optimisation with rewards computed on sampled answers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from turbo.settings.base import StrictModel
from turbo.settings.datasets.chat import ChatDatasetSettings
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings
from turbo.settings.datasets.prompt import PromptDatasetSettings
from turbo.settings.multimodal import (
    EncoderMapping,
    ModalityParts,
    ProjectorMapping,
    modality_problems,
    square_problems,
)
from turbo.settings.paths import InputFile
from turbo.settings.pipelines.train.rl import PROMPTS, VAL_PROMPTS, RlExperimentSettings, RlTrainerSettings
from turbo.settings.problems import Problem

GrpoPromptDatasetSettings = Annotated[
    ChatDatasetSettings | PromptDatasetSettings | MultimodalDatasetSettings,
    Field(discriminator="dataset_type"),
]


class GrpoTrainerSettings(RlTrainerSettings):
    """The trainer settings, with GRPO's group size, clipping and KL."""

    num_generations: int = Field(8, ge=2, description="Answers sampled per prompt (one group).")
    num_iterations: int = Field(
        1, ge=1, description="Passes over each rollout (GRPO's mu); the clipped ratio matters above 1."
    )
    epsilon: float = Field(0.2, gt=0, description="Lower clip of the ratio: 1 - epsilon.")
    epsilon_high: float | None = Field(
        None, gt=0, description="Upper clip of the ratio: 1 + epsilon_high (DAPO clip-higher). None: epsilon."
    )
    beta: float = Field(
        0.04,
        ge=0,
        description="Weight of the KL to the reference (k3 estimator, per token). 0: no reference forward.",
    )
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = Field(
        "grpo",
        description="Aggregation of the per-token loss. grpo: mean over each answer's tokens, then over "
        "answers; dr_grpo: sum over tokens / (answers * max_new_tokens); dapo: sum over tokens / tokens "
        "in the batch.",
    )
    scale_rewards: bool = Field(
        True,
        description="Divide the group-centred rewards by the group's std (GRPO); false: centre only "
        "(Dr. GRPO).",
    )

    @property
    def answers_per_rollout(self) -> int:
        return self.rollout_batch_size * self.num_generations


class GrpoMultimodalSettings(StrictModel, ModalityParts):
    """The multimodal model of multimodal prompts: the encoders and projectors train_multimodal used, its
    trained projector weights (frozen here), and model_settings as its language model (the LoRA adapter
    trains). Rollouts are transformers generate (vLLM's LLaVA needs torchvision)."""

    modality_encoder_settings_mapping: EncoderMapping
    modality_projector_mapping: ProjectorMapping
    projections_path: InputFile = Field(
        description="The projector weights train_multimodal wrote (final/projectors.safetensors); frozen."
    )


class GrpoExperimentSettings(RlExperimentSettings):
    train_dataset_settings: GrpoPromptDatasetSettings = Field(
        description=f"{PROMPTS} multimodal records (with multimodal_settings): their `reference` field is "
        "the reference answer."
    )
    val_dataset_settings: GrpoPromptDatasetSettings | None = Field(None, description=VAL_PROMPTS)
    multimodal_settings: GrpoMultimodalSettings | None = Field(
        None, description="The multimodal model, for multimodal prompts (dataset_type multimodal) only."
    )
    trainer_settings: GrpoTrainerSettings = GrpoTrainerSettings()

    @property
    def multimodal(self) -> bool:
        return self.train_dataset_settings.dataset_type == "multimodal"

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        val = self.val_dataset_settings
        if not self.multimodal:
            if self.multimodal_settings is not None:
                problems.append(("multimodal_settings", "is read with multimodal prompts only; remove it"))
            if val is not None and val.dataset_type == "multimodal":
                problems.append(("val_dataset_settings.dataset_type", "must match train_dataset_settings'"))
            return problems
        parts = self.multimodal_settings
        if parts is None:
            return [
                *problems,
                ("multimodal_settings", "multimodal prompts need the multimodal model; add it"),
            ]
        rollout = self.rollout_settings
        if rollout.use_vllm or rollout.vllm_server is not None:
            problems.append(
                (
                    "rollout_settings",
                    "multimodal prompts are sampled with transformers generate (vLLM's LLaVA needs "
                    "torchvision, which turbo does not install); set use_vllm: false and remove vllm_server",
                )
            )
        if self.cherry_pick_settings is not None:
            problems.append(("cherry_pick_settings", "is not read with multimodal prompts; remove it"))
        if self.ref_model_settings is not None:
            problems.append(
                (
                    "ref_model_settings",
                    "with multimodal prompts the reference is the LM's adapter disabled; remove it",
                )
            )
        if self.trainer_settings.beta > 0 and not self.model_settings.trains_adapter:
            problems.append(
                (
                    "trainer_settings.beta",
                    "with multimodal prompts the reference is the LM's adapter disabled: train an adapter "
                    "(model_settings.peft_settings, or adapter_path with is_trainable: true) or set beta: 0",
                )
            )
        for name, dataset in (
            ("train_dataset_settings", self.train_dataset_settings),
            ("val_dataset_settings", val),
        ):
            if dataset is None:
                continue
            if dataset.dataset_type != "multimodal":
                problems.append((f"{name}.dataset_type", "must be multimodal, as train_dataset_settings'"))
                continue
            problems += modality_problems(
                parts.encoders, parts.projectors, dataset.readers, f"{name}.modality_reader_settings_mapping"
            )
            problems += square_problems(
                parts.projectors, dataset.n_modality_embeddings, f"{name}.n_modality_embeddings"
            )
        return problems

    @model_validator(mode="after")
    def _reference_read(self) -> GrpoExperimentSettings:
        if self.trainer_settings.beta == 0 and self.ref_model_settings is not None:
            raise ValueError("ref_model_settings is not read with trainer_settings.beta: 0; remove it")
        return self
