"""The Trainer the preference trainers (DPO, KTO, reward models) share: per-example metrics, whose
logging (`add_metric_means`) the rollout trainers share too."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer


def split_metrics() -> dict[str, dict[str, list[float]]]:
    """Per-example values gathered between two logs, per split (train, eval)."""
    return {"train": defaultdict(list), "eval": defaultdict(list)}


def start_metrics(trainer: Any) -> None:
    """A trainer whose loss is a mean over its batch (the Trainer scales it for gradient accumulation)
    and that gathers per-example metrics between two logs."""
    trainer.model_accepts_loss_kwargs = False
    trainer.loss_is_scaled_for_ga = False
    trainer._metrics = split_metrics()


def add_metric_means(trainer: Any, logs: dict[str, float]) -> None:
    """Into `logs`, the mean of each value in `trainer._metrics` gathered since the previous log
    (`eval_`-prefixed at evaluation), averaged over all processes; then gather afresh."""
    split = "eval" if any(key.startswith("eval_") for key in logs) else "train"
    prefix = "eval_" if split == "eval" else ""
    for name in sorted(trainer._metrics[split]):
        values = trainer._metrics[split][name]
        totals = torch.tensor([sum(values), len(values)], dtype=torch.float64, device=trainer.args.device)
        if trainer.accelerator.num_processes > 1:
            totals = trainer.accelerator.reduce(totals, reduction="sum")
        if totals[1] > 0:
            logs[f"{prefix}{name}"] = (totals[0] / totals[1]).item()
    trainer._metrics[split] = defaultdict(list)


class MetricsTrainer(Trainer):
    """A Trainer whose loss is a mean over its batch and that logs per-example metrics.

    `compute_loss` appends values to `self.metrics(model)[name]`; each log adds the mean of the values
    gathered since the previous log (`add_metric_means`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        start_metrics(self)

    def metrics(self, model: torch.nn.Module) -> dict[str, list[float]]:
        return self._metrics["train" if model.training else "eval"]

    def prediction_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: Any = None,
    ) -> tuple[torch.Tensor, None, None]:
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        add_metric_means(self, logs)
        super().log(logs, start_time)
