"""A `transformers.Trainer` for KTO: the policy against a frozen reference, with a KL reference point."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from turbo.data.chat import IGNORE_INDEX
from turbo.trainers.base import MetricsTrainer
from turbo.trainers.losses.kto import kto_loss


def answer_logps(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Summed log-probs of the labelled (answer) tokens of each sequence: [batch]."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    per_token = torch.gather(logits.log_softmax(-1), 2, targets.clamp(min=0).unsqueeze(2)).squeeze(2)
    return (per_token * mask).sum(-1)


def _adapter_disabled(model: Any) -> Any:
    """The PEFT model with its adapter off (the base model is the reference)."""
    if not hasattr(model, "disable_adapter"):
        raise ValueError("no reference: the model has no adapter to disable and no reference model was given")
    return model.disable_adapter()


@torch.no_grad()
def reference_pair_logps(
    model: Any, batch: dict[str, torch.Tensor], disable_adapter: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference log-probs of the answers and of their KL pairs."""
    with _adapter_disabled(model) if disable_adapter else nullcontext():
        main = answer_logps(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        kl = answer_logps(model, batch["kl_input_ids"], batch["kl_attention_mask"], batch["kl_labels"])
    return main, kl


def precompute_reference_logps(
    features: list[dict[str, Any]], model: Any, collator: Any, batch_size: int, disable_adapter: bool
) -> list[dict[str, Any]]:
    """The features with reference_logps and reference_kl_logps added, computed once."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(features), batch_size):
        chunk = features[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collator(chunk).items()}
        main, kl = reference_pair_logps(model, batch, disable_adapter)
        for feature, ref, ref_kl in zip(chunk, main.tolist(), kl.tolist(), strict=True):
            out.append({**feature, "reference_logps": ref, "reference_kl_logps": ref_kl})
    model.train(was_training)
    return out


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
        if "reference_logps" in inputs:
            return inputs["reference_logps"], inputs["reference_kl_logps"]
        if self.ref_model is not None:
            return reference_pair_logps(self.ref_model, inputs, disable_adapter=False)
        return reference_pair_logps(self.accelerator.unwrap_model(model), inputs, disable_adapter=True)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        policy = answer_logps(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        with torch.no_grad():
            policy_kl = answer_logps(
                model, inputs["kl_input_ids"], inputs["kl_attention_mask"], inputs["kl_labels"]
            )
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
