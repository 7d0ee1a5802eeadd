"""The Trainer that train_ppo and train_grpo share: the rollout engine, the rewards, the reference, the
held-out prompts and the per-example metrics; its subclasses (PpoTrainer, GrpoTrainer) own the step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from turbo.generators.rollout import RolloutEngine
from turbo.trainers.base import add_metric_means, start_metrics
from turbo.trainers.rewards import RewardFunction
from turbo.trainers.rollout_evaluation import evaluate


class RolloutTrainer(Trainer):
    """What train_ppo's and train_grpo's trainers keep: the rollout engine, the rewards, the reference
    (None: the policy with its adapter disabled, or none at all), the held-out prompts, the experiment
    folder and the seed; evaluation answers the held-out prompts (`evaluate`). Per-step metrics are
    appended to `self.metrics(model)` and logged as the preference trainers' (`add_metric_means`).
    `padding_free`: the answers are scored in one row without padding (policy_token_logps), decided
    once by the pipeline for the models that read sample offsets."""

    def __init__(
        self,
        *args: Any,
        rollout_settings: Any,
        engine: RolloutEngine,
        rewards: list[tuple[Any, RewardFunction]],
        ref_model: Any = None,
        eval_prompts: list[dict[str, Any]] | None = None,
        folder: Path,
        seed: int,
        padding_free: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        start_metrics(self)  # as MetricsTrainer: the step's loss is a mean
        self.rollout_settings = rollout_settings
        self.engine = engine
        self.rewards = rewards
        self.ref_model = ref_model
        self.eval_prompts = eval_prompts or []
        self.folder = folder
        self.seed = seed
        self.padding_free = padding_free
        self.add_callback(OptimizerSeconds(self))

    def metrics(self, model: torch.nn.Module) -> dict[str, list[float]]:
        return self._metrics["train" if model.training else "eval"]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        add_metric_means(self, logs)
        super().log(logs, start_time)

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict:
        """Greedy answers to the validation prompts scored by the rewards; then the cherry-picks."""
        return evaluate(self)


class OptimizerSeconds(TrainerCallback):
    """The Trainer's own optimiser step, logged as time/optimizer beside the phases that the step logs
    (time/weight_sync, time/generation, time/rewards, time/old_logps, time/reference,
    time/forward_backward)."""

    def __init__(self, trainer: RolloutTrainer) -> None:
        self.trainer = trainer
        self.start = 0.0

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.perf_counter()

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer._metrics["train"]["time/optimizer"].append(time.perf_counter() - self.start)
