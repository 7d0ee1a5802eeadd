"""train_ppo: proximal policy optimisation with a value model, a per-token KL penalty and GAE."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.model import ModelSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.rewards import RewardSettings
from turbo.settings.rollout import RolloutSettings, check_rl_experiment, check_rl_trainer
from turbo.settings.trainer import TrainerSettings

PPO_FIELDS = {
    "rollout_batch_size",
    "forward_batch_size",
    "num_mini_batches",
    "num_ppo_epochs",
    "kl_coef",
    "cliprange",
    "vf_coef",
    "cliprange_value",
    "gamma",
    "lam",
    "whiten_rewards",
    "missing_eos_penalty",
}


class PpoTrainerSettings(TrainerSettings):
    """The trainer settings, with PPO's clipping, value loss and KL."""

    rollout_batch_size: int = Field(8, gt=0, description="Prompts per rollout (one answer each).")
    num_ppo_epochs: int = Field(4, ge=1, description="Passes over each rollout.")
    num_mini_batches: int = Field(1, ge=1, description="Optimiser updates per pass over a rollout.")
    forward_batch_size: int | None = Field(
        None,
        gt=0,
        description="Answers per forward/backward pass; a mini-batch accumulates its gradients over several "
        "passes with the same loss (memory vs speed). None: a whole mini-batch at once.",
    )
    kl_coef: float = Field(0.1, ge=0, description="Per-token KL penalty (policy vs reference) in the reward.")
    cliprange: float = Field(0.2, gt=0, description="Clip of the policy ratio: [1 - c, 1 + c].")
    vf_coef: float = Field(0.5, ge=0, description="Weight of the value loss.")
    cliprange_value: float = Field(0.2, gt=0, description="Clip of the new values around the rollout's.")
    gamma: float = Field(1.0, ge=0, le=1, description="Discount of GAE.")
    lam: float = Field(0.95, ge=0, le=1, description="Lambda of GAE.")
    whiten_rewards: bool = Field(False, description="Whiten the per-token rewards before GAE.")
    missing_eos_penalty: float | None = Field(
        None, ge=0, description="Subtracted from the score of an answer cut at max_new_tokens (no EOS)."
    )

    def training_arguments(self) -> dict[str, Any]:
        kwargs = super().training_arguments()
        kwargs["per_device_train_batch_size"] = self.rollout_batch_size
        return {key: value for key, value in kwargs.items() if key not in PPO_FIELDS}


class PpoExperimentSettings(BaseTrainExperimentSettings):
    train_dataset_settings: ChatDatasetSettings = Field(
        description="The prompts: each record's conversation up to its last user message; a record's "
        "`reference` field (else its final bot message) is the reference answer of the rule rewards."
    )
    val_dataset_settings: ChatDatasetSettings | None = Field(
        None, description="Prompts whose greedy answers are scored at each evaluation (eval_reward...)."
    )
    cherry_pick_settings: ChatCherryPickSettings | None = None
    reward_settings: list[RewardSettings] = Field(
        description="The reward functions, summed by weight (a reward model: type reward_model)."
    )
    rollout_settings: RolloutSettings = RolloutSettings()
    value_model_settings: ModelSettings | None = Field(
        None,
        description="The value model: a one-output sequence classifier whose head is read at every token "
        "(fully trained). None: the reward model of reward_settings if there is one, else the policy's "
        "base model with a new value head.",
    )
    ref_model_settings: ModelSettings | None = Field(
        None,
        description="A separate frozen reference. None: the policy with its adapter disabled (PEFT) or a "
        "frozen copy of the starting model (full fine-tuning).",
    )
    trainer_settings: PpoTrainerSettings = PpoTrainerSettings()

    @model_validator(mode="after")
    def _consistent(self) -> PpoExperimentSettings:
        trainer = self.trainer_settings
        check_rl_experiment(self)
        check_rl_trainer(trainer, trainer.rollout_batch_size)
        value = self.value_model_settings
        if value is not None and (value.peft_settings is not None or value.bnb_settings is not None):
            raise ValueError("value_model_settings: the value model trains in full; remove peft/bnb settings")
        return self
