"""train_ppo: proximal policy optimisation with a value model, a per-token KL penalty and GAE."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from turbo.settings.model import ModelSettings
from turbo.settings.pipelines.train.rl import RlExperimentSettings, RlTrainerSettings

GRPO_SETTINGS = (
    "loss_type",
    "importance_sampling_level",
    "advantage_estimator",
    "dynamic_sampling",
    "mask_truncated_answers",
    "overlong_penalty",
    "scale_rewards",
    "num_generations",
    "num_iterations",
    "epsilon",
    "epsilon_high",
    "beta",
)


class PpoTrainerSettings(RlTrainerSettings):
    """One answer per prompt (rollout_batch_size answers per rollout)."""

    num_ppo_epochs: int = Field(4, ge=1, description="Passes over each rollout.")
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

    @model_validator(mode="before")
    @classmethod
    def _no_grpo_settings(cls, data: Any) -> Any:
        """GRPO's options named in a PPO file: say what PPO reads instead (when they are its only unknown
        keys; other unknown keys get the usual one error each, which the command guess counts)."""
        if not isinstance(data, dict):
            return data
        unknown = [name for name in data if name not in cls.model_fields]
        found = [name for name in GRPO_SETTINGS if name in unknown]
        if found and len(found) == len(unknown):
            raise ValueError(
                f"{found[0]} is a train_grpo setting: PPO's policy loss is the clipped "
                "surrogate (cliprange) over GAE advantages of a value model (kl_coef, gamma, lam, "
                "num_ppo_epochs; missing_eos_penalty for cut answers); remove it, or run train_grpo"
            )
        return data


class PpoExperimentSettings(RlExperimentSettings):
    value_model_settings: ModelSettings | None = Field(
        None,
        description="The value model: a one-output sequence classifier whose head is read at every token "
        "(fully trained). None: the reward model of reward_settings if there is one, else the policy's "
        "base model with a new value head.",
    )
    trainer_settings: PpoTrainerSettings = PpoTrainerSettings()

    @model_validator(mode="after")
    def _value_model_trains_in_full(self) -> PpoExperimentSettings:
        value = self.value_model_settings
        if value is not None and (value.peft_settings is not None or value.bnb_settings is not None):
            raise ValueError("value_model_settings: the value model trains in full; remove peft/bnb settings")
        return self
