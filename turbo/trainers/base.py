"""The Trainer the preference trainers (DPO, KTO, reward models) share: per-example metrics."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer


class MetricsTrainer(Trainer):
    """A Trainer whose loss is a mean over its batch and that logs per-example metrics.

    `compute_loss` appends values to `self.metrics(model)[name]`; each log adds the mean of the values
    gathered since the previous log (`eval_`-prefixed at evaluation), averaged over all processes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False  # the loss is a mean: the Trainer scales it for accumulation
        self.loss_is_scaled_for_ga = False
        self._metrics: dict[str, dict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }

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
        split = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        prefix = "eval_" if split == "eval" else ""
        for name in sorted(self._metrics[split]):
            values = self._metrics[split][name]
            totals = torch.tensor([sum(values), len(values)], dtype=torch.float64, device=self.args.device)
            if self.accelerator.num_processes > 1:
                totals = self.accelerator.reduce(totals, reduction="sum")
            if totals[1] > 0:
                logs[f"{prefix}{name}"] = (totals[0] / totals[1]).item()
        self._metrics[split] = defaultdict(list)
        super().log(logs, start_time)
