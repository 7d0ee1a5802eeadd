"""What train_grpo and train_ppo files share: the rollout batch, prompts, rewards, rollouts, reference."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets.prompt import RlPromptDatasetSettings
from turbo.settings.model import ModelSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.problems import Problem
from turbo.settings.rewards import RewardSettings
from turbo.settings.rollout import (
    RolloutCorrectionSettings,
    RolloutSettings,
    check_rl_experiment,
    check_rl_trainer,
)
from turbo.settings.tools import ToolLoopSettings, ToolSettings, tool_problems
from turbo.settings.trainer import TrainerSettings


class RlTrainerSettings(TrainerSettings):
    """One trainer step is one rollout (answers to rollout_batch_size prompts) and its updates."""

    rollout_batch_size: int = Field(
        8, gt=0, description="Prompts per rollout; one rollout and its updates are one optimisation step."
    )
    num_mini_batches: int = Field(1, ge=1, description="Optimiser updates per pass over a rollout.")
    forward_batch_size: int | None = Field(
        None,
        gt=0,
        description="Answers per forward/backward pass; a mini-batch accumulates its gradients over several "
        "passes with the same loss (memory vs speed). None: a whole mini-batch at once.",
    )
    rollout_correction: RolloutCorrectionSettings | None = Field(
        None,
        description="Weight the policy loss by pi_train / pi_sampler of the sampled tokens (truncated or "
        "masked importance sampling), for rollouts from vLLM. None: off. With transformers rollouts the "
        "weights are 1.",
    )
    rollout_dump_steps: int | None = Field(
        None,
        ge=0,
        description="Write the rollout of every k-th step to rollouts/step_N.jsonl (prompt, answer, rewards, "
        "advantage, finished, tokens). None: at each logging step (logging_steps); 0: never.",
    )

    @property
    def answers_per_rollout(self) -> int:
        return self.rollout_batch_size

    def training_arguments(self) -> dict[str, Any]:
        """The rollout's prompts are the per-device batch."""
        return {**super().training_arguments(), "per_device_train_batch_size": self.rollout_batch_size}


PROMPTS = (
    "The prompts. chat records: the conversation up to its last user message; a record's `reference` "
    "field (else its final bot message) is the reference answer of the rule rewards. prompt records: "
    '{"id"?, "prompt", "reference"?}, the prompt as one user message (or raw).'
)
VAL_PROMPTS = "Prompts whose greedy answers are scored at each evaluation (eval_reward...)."


class RlExperimentSettings(BaseTrainExperimentSettings):
    train_dataset_settings: RlPromptDatasetSettings = Field(description=PROMPTS)
    val_dataset_settings: RlPromptDatasetSettings | None = Field(None, description=VAL_PROMPTS)
    cherry_pick_settings: ChatCherryPickSettings | None = None
    reward_settings: list[RewardSettings] = Field(
        description="The reward functions, summed by weight (a reward model: type reward_model)."
    )
    rollout_settings: RolloutSettings = RolloutSettings()
    ref_model_settings: ModelSettings | None = Field(
        None,
        description="A separate frozen reference. None: the policy with its adapter disabled (PEFT) or a "
        "frozen copy of the starting model (full fine-tuning).",
    )
    trainer_settings: RlTrainerSettings = RlTrainerSettings()
    tool_settings: list[ToolSettings] = Field(
        default_factory=list,
        description="Tools the policy may call inside its answers (retriever, python); see docs/rl.md. "
        "Rewards then score the final answer (the text after the last tool result).",
    )
    tool_loop_settings: ToolLoopSettings = Field(
        ToolLoopSettings(), description="The call format and the limits of a trajectory (with tool_settings)."
    )

    def cross_field_problems(self) -> list[Problem]:
        problems = [*super().cross_field_problems(), *tool_problems(self.tool_settings, self.reward_settings)]
        if self.tool_settings and getattr(self.trainer_settings, "overlong_penalty", None) is not None:
            problems.append(
                (
                    "trainer_settings.overlong_penalty",
                    "counts answer tokens against max_new_tokens, but with tool_settings a trajectory holds "
                    "several turns and tool results; remove it (tool_loop_settings.max_total_tokens limits "
                    "trajectories)",
                )
            )
        return problems

    @model_validator(mode="after")
    def _rollouts_fit(self) -> RlExperimentSettings:
        check_rl_experiment(self)
        check_rl_trainer(self.trainer_settings, self.trainer_settings.answers_per_rollout)
        return self
