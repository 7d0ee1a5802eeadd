"""A `transformers.Trainer` for KTO: the policy against a frozen reference, with a KL reference point."""

from __future__ import annotations

from typing import Any

import torch

from turbo.trainers.base import MetricsTrainer
from turbo.trainers.logps import answer_logps, reference_logps, rows
from turbo.trainers.losses.kto import kto_loss

# the precomputed reference log-probs: of the answers, and of their KL pairs (the rows under kl_)
REFERENCE_KEYS = {"": ("reference_logps",), "kl_": ("reference_kl_logps",)}


class KtoTrainer(MetricsTrainer):
    """Reference log-probs come from the batch (precomputed), a separate frozen `ref_model`, or the
    policy with its adapter disabled, in that order."""

    def __init__(
        self,
        *args: Any,
        ref_model: Any = None,
        beta: float = 0.1,
        desirable_weight: float = 1.0,
        undesirable_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.beta = beta
        self.desirable_weight = desirable_weight
        self.undesirable_weight = undesirable_weight
        self.ref_model = ref_model
        if ref_model is not None:
            ref_model.requires_grad_(False)
            ref_model.eval()
            self.ref_model = ref_model.to(self.args.device)

    def _reference(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference log-probs of the answers and of their KL pairs."""
        policy = self.accelerator.unwrap_model(model)
        main, kl = (
            reference_logps(policy, inputs, keys, prefix, self.ref_model)
            for prefix, keys in REFERENCE_KEYS.items()
        )
        return main, kl

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        policy = answer_logps(model, rows(inputs)).sums
        with torch.no_grad():
            policy_kl = answer_logps(model, rows(inputs, "kl_")).sums
        reference, reference_kl = self._reference(model, inputs)
        kl = self.accelerator.gather((policy_kl - reference_kl).mean().detach()).mean()
        desirable = inputs["is_desirable"]
        losses, rewards = kto_loss(
            policy, reference, desirable, kl, self.beta, self.desirable_weight, self.undesirable_weight
        )
        self._record("train" if model.training else "eval", policy, reference, rewards, desirable, kl)
        loss = losses.mean()
        return (loss, {"rewards": rewards}) if return_outputs else loss

    def _record(
        self,
        split: str,
        policy: torch.Tensor,
        reference: torch.Tensor,
        rewards: torch.Tensor,
        desirable: torch.Tensor,
        kl: torch.Tensor,
    ) -> None:
        metrics = self._metrics[split]
        metrics["kl"].append(kl.clamp(min=0).item())  # the reference point the loss used
        for name, mask in (("chosen", desirable), ("rejected", ~desirable)):
            metrics[f"rewards/{name}"] += rewards[mask].tolist()
            metrics[f"logps/{name}"] += policy.detach()[mask].tolist()
            metrics[f"logps/ref_{name}"] += reference.detach()[mask].tolist()
