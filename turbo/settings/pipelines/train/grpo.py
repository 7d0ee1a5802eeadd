"""train_grpo: group relative policy optimisation with rewards computed on sampled answers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from turbo.settings.pipelines.train.rl import RlExperimentSettings, RlTrainerSettings


class GrpoTrainerSettings(RlTrainerSettings):
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


class GrpoExperimentSettings(RlExperimentSettings):
    trainer_settings: GrpoTrainerSettings = GrpoTrainerSettings()

    @model_validator(mode="after")
    def _reference_read(self) -> GrpoExperimentSettings:
        if self.trainer_settings.beta == 0 and self.ref_model_settings is not None:
            raise ValueError("ref_model_settings is not read with trainer_settings.beta: 0; remove it")
        return self
