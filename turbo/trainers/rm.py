"""A `transformers.Trainer` for reward models: one forward pass over [chosen; rejected]."""

from __future__ import annotations

from typing import Any

import torch

from turbo.trainers.base import MetricsTrainer
from turbo.trainers.losses.reward import pairwise_reward_loss


def pair_rewards(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The scalar rewards of the chosen and of the rejected sequences: [batch] each."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return logits[:, 0].float().chunk(2)


class RmTrainer(MetricsTrainer):
    """Logs rewards/chosen, rewards/rejected, rewards/margins and rewards/accuracies (r_w > r_l)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        chosen, rejected = pair_rewards(model, inputs)
        loss = pairwise_reward_loss(chosen, rejected).mean()
        metrics = self.metrics(model)
        chosen, rejected = chosen.detach(), rejected.detach()
        metrics["rewards/chosen"] += chosen.tolist()
        metrics["rewards/rejected"] += rejected.tolist()
        metrics["rewards/margins"] += (chosen - rejected).tolist()
        metrics["rewards/accuracies"] += (chosen > rejected).float().tolist()
        return (loss, {"chosen": chosen, "rejected": rejected}) if return_outputs else loss
