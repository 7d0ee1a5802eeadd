"""A `transformers.Trainer` for reward models: one forward pass over [chosen; rejected]."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer

from turbo.trainers.losses.reward import pairwise_reward_loss


def pair_rewards(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The scalar rewards of the chosen and of the rejected sequences: [batch] each."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return logits[:, 0].float().chunk(2)


class RmTrainer(Trainer):
    """Logs rewards/chosen, rewards/rejected, rewards/margins and rewards/accuracies (r_w > r_l)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False  # the loss is a mean over pairs; scale it for accumulation
        self.loss_is_scaled_for_ga = False
        self._pair_metrics: dict[str, dict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        chosen, rejected = pair_rewards(model, inputs)
        loss = pairwise_reward_loss(chosen, rejected).mean()
        metrics = self._pair_metrics["train" if model.training else "eval"]
        chosen, rejected = chosen.detach(), rejected.detach()
        metrics["rewards/chosen"] += chosen.tolist()
        metrics["rewards/rejected"] += rejected.tolist()
        metrics["rewards/margins"] += (chosen - rejected).tolist()
        metrics["rewards/accuracies"] += (chosen > rejected).float().tolist()
        return (loss, {"chosen": chosen, "rejected": rejected}) if return_outputs else loss

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
        """Adds the means of the reward metrics gathered since the last log (eval_ prefixed at evaluation)."""
        split = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        prefix = "eval_" if split == "eval" else ""
        for name, values in self._pair_metrics[split].items():
            if values:
                logs[f"{prefix}{name}"] = sum(values) / len(values)
        self._pair_metrics[split] = defaultdict(list)
        super().log(logs, start_time)
