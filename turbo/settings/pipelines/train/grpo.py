"""train_grpo: group relative policy optimisation with rewards computed on sampled answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.model import ModelSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.rewards import RewardSettings
from turbo.settings.rollout import RolloutSettings, check_rl_experiment, check_rl_trainer
from turbo.settings.trainer import TrainerSettings

RL_FIELDS = {"rollout_batch_size", "num_mini_batches", "forward_batch_size"}
GRPO_FIELDS = RL_FIELDS | {
    "num_generations",
    "epsilon",
    "epsilon_high",
    "beta",
    "loss_type",
    "scale_rewards",
    "num_iterations",
}


class GrpoTrainerSettings(TrainerSettings):
    """The trainer settings, with GRPO's group size, clipping and KL."""

    rollout_batch_size: int = Field(8, gt=0, description="Prompts per optimisation step.")
    num_generations: int = Field(8, ge=2, description="Answers sampled per prompt (one group).")
    num_iterations: int = Field(
        1, ge=1, description="Passes over each rollout (GRPO's mu); the clipped ratio matters above 1."
    )
    num_mini_batches: int = Field(1, ge=1, description="Optimiser updates per pass over a rollout.")
    forward_batch_size: int | None = Field(
        None,
        gt=0,
        description="Answers per forward/backward pass; a mini-batch accumulates its gradients over several "
        "passes with the same loss (memory vs speed). None: a whole mini-batch at once.",
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

    def training_arguments(self) -> dict[str, Any]:
        kwargs = super().training_arguments()
        kwargs["per_device_train_batch_size"] = self.rollout_batch_size
        return {key: value for key, value in kwargs.items() if key not in GRPO_FIELDS}


class GrpoExperimentSettings(BaseTrainExperimentSettings):
    train_dataset_settings: ChatDatasetSettings = Field(
        description="The prompts: each record's conversation up to its last user message; a record's "
        "`reference` field (else its final bot message) is the reference answer of the rule rewards."
    )
    val_dataset_settings: ChatDatasetSettings | None = Field(
        None, description="Prompts whose greedy answers are scored at each evaluation (eval_reward...)."
    )
    cherry_pick_settings: ChatCherryPickSettings | None = None
    reward_settings: list[RewardSettings] = Field(description="The reward functions, summed by weight.")
    rollout_settings: RolloutSettings = RolloutSettings()
    ref_model_settings: ModelSettings | None = Field(
        None,
        description="A separate frozen reference. None: the policy with its adapter disabled (PEFT) or a "
        "frozen copy of the starting model (full fine-tuning). Not loaded with beta 0.",
    )
    trainer_settings: GrpoTrainerSettings = GrpoTrainerSettings()

    @model_validator(mode="after")
    def _consistent(self) -> GrpoExperimentSettings:
        trainer = self.trainer_settings
        check_rl_experiment(self)
        check_rl_trainer(trainer, trainer.rollout_batch_size * trainer.num_generations)
        if trainer.beta == 0 and self.ref_model_settings is not None:
            raise ValueError("ref_model_settings is not read with trainer_settings.beta: 0; remove it")
        return self
