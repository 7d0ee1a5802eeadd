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


class DynamicSamplingSettings(StrictModel):
    """DAPO's dynamic sampling: drop the groups whose rewards are all equal and sample more prompts."""

    max_rounds: int = Field(
        3,
        ge=1,
        le=100,
        description="Rollouts per step at most (the first included); each further round samples "
        "rollout_batch_size more prompts (a seeded draw from the training prompts).",
    )


class OverlongPenaltySettings(StrictModel):
    """DAPO's soft overlong penalty, added to the reward: -penalty * (tokens past max_new_tokens - buffer)
    / buffer."""

    buffer: int = Field(32, ge=1, description="Tokens before max_new_tokens where the penalty starts.")
    penalty: float = Field(1.0, gt=0, description="The penalty of an answer of max_new_tokens tokens.")


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
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo"] = Field(
        "grpo",
        description="The per-token loss and its aggregation. grpo: mean over each answer's tokens, then "
        "over answers; dr_grpo: sum over tokens / (answers * max_new_tokens) (Dr. GRPO); dapo: sum over "
        "tokens / tokens in the mini-batch (DAPO); bnpo: sum / tokens of each forward pass (TRL's local "
        "batch); cispo: -min(ratio, 1 + epsilon_high) (detached) * advantage * log-prob, aggregated as "
        "dapo (MiniMax-M1; epsilon_high 4 gives ScaleRL's cap of 5).",
    )
    importance_sampling_level: Literal["token", "sequence"] = Field(
        "token",
        description="The ratio pi / pi_old per token, or per answer: the geometric mean of its tokens' "
        "ratios, clipped per answer (GSPO; with loss_type grpo as in the paper).",
    )
    advantage_estimator: Literal["group", "rloo", "reinforce_pp"] = Field(
        "group",
        description="group: reward - group mean, divided by the group std (scale_rewards); rloo: reward - "
        "the mean of the other answers of its group (RLOO); reinforce_pp: the group-centred rewards "
        "normalised over the whole rollout (REINFORCE++ with a group baseline).",
    )
    scale_rewards: bool = Field(
        True,
        description="advantage_estimator group: divide the group-centred rewards by the group's std (GRPO); "
        "false: centre only (Dr. GRPO).",
    )
    dynamic_sampling: DynamicSamplingSettings | None = Field(
        None,
        description="Drop groups whose rewards are all equal and sample more prompts until "
        "rollout_batch_size groups differ or max_rounds run out (DAPO). None: off.",
    )
    mask_truncated_answers: bool = Field(
        False, description="Answers cut at max_new_tokens (no end token) get no loss (DAPO)."
    )
    share_prompts: bool = Field(
        True,
        description="Score a group's answers over one copy of their prompt: each distinct prompt passes the "
        "model once in the forward/backward passes and the old and reference log-probs, not once per "
        "answer (Prefix Grouper's shared-prefix forward; the same log-probs and gradients). Used with "
        "padding_free where the attention is sdpa/eager (through turbo_varlen) and the output layer a "
        "plain linear head, and not under DeepSpeed ZeRO-3; else each answer is scored with its own copy.",
    )
    overlong_penalty: OverlongPenaltySettings | None = Field(
        None,
        description="DAPO's soft overlong penalty added to the reward, linear over the last `buffer` tokens "
        "before max_new_tokens. None: off.",
    )

    @model_validator(mode="after")
    def _estimator_reads_scale(self) -> GrpoTrainerSettings:
        if self.advantage_estimator != "group" and "scale_rewards" in self.model_fields_set:
            instead = {
                "rloo": "centres on the mean of the other answers",
                "reinforce_pp": "divides by the std over the whole rollout",
            }[self.advantage_estimator]
            raise ValueError(
                "scale_rewards is read by advantage_estimator group only; remove it (advantage_estimator "
                f"{self.advantage_estimator} {instead})"
            )
        return self

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
        return isinstance(self.train_dataset_settings, MultimodalDatasetSettings)

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        overlong = self.trainer_settings.overlong_penalty
        max_new_tokens = self.rollout_settings.max_new_tokens
        if overlong is not None and overlong.buffer >= max_new_tokens:
            problems.append(
                (
                    "trainer_settings.overlong_penalty.buffer",
                    f"must be below rollout_settings.max_new_tokens ({max_new_tokens}); the penalty starts "
                    f"buffer tokens before it: write a buffer below {max_new_tokens}",
                )
            )
        val = self.val_dataset_settings
        if not self.multimodal:
            if self.multimodal_settings is not None:
                problems.append(("multimodal_settings", "is read with multimodal prompts only; remove it"))
            if isinstance(val, MultimodalDatasetSettings):
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
            if not isinstance(dataset, MultimodalDatasetSettings):
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
