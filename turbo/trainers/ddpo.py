"""A `transformers.Trainer` for distillation DPO: policy, reference and a frozen reward model per pair."""

from __future__ import annotations

from typing import Any

import torch

from turbo.data.ddpo import RM_PREFIX
from turbo.trainers.base import MetricsTrainer
from turbo.trainers.logps import answer_logps, model_reference_logps, rows
from turbo.trainers.losses.ddpo import ddpo_loss
from turbo.trainers.rm import pair_rewards


class DdpoTrainer(MetricsTrainer):
    """`reference`: 'model' (the frozen `ref_model`), 'adapter_disabled' (the policy without its adapter)
    or 'none' (log-probs of 0: the policy's own log-ratio). Logs the DPO rewards beside the reward
    model's: rewards/{chosen,rejected,margins,accuracies} and rm_rewards/{...}."""

    def __init__(
        self,
        *args: Any,
        rm_model: Any,
        beta: float,
        forward_kl: bool,
        reference: str,
        ref_model: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.beta, self.forward_kl, self.reference = beta, forward_kl, reference
        self.rm_model = rm_model.requires_grad_(False).to(self.args.device).eval()
        self.ref_model = None
        if ref_model is not None:
            self.ref_model = ref_model.requires_grad_(False).to(self.args.device).eval()

    def _reference(self, model: Any, inputs: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        if self.reference == "model":
            return model_reference_logps(self.ref_model, rows(inputs), disable_adapter=False)
        if self.reference == "adapter_disabled":
            policy = self.accelerator.unwrap_model(model)
            return model_reference_logps(policy, rows(inputs), disable_adapter=True)
        return torch.zeros_like(like)

    @torch.no_grad()
    def _rm_rewards(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = {key: inputs[RM_PREFIX + key] for key in ("input_ids", "attention_mask")}
        return pair_rewards(self.rm_model, batch)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        policy = answer_logps(model, inputs)
        reference = self._reference(model, inputs, policy.sums.detach())
        rm_chosen, rm_rejected = self._rm_rewards(inputs)
        policy_chosen, policy_rejected = policy.sums.chunk(2)
        reference_chosen, reference_rejected = reference.chunk(2)
        result = ddpo_loss(
            policy_chosen,
            policy_rejected,
            reference_chosen,
            reference_rejected,
            rm_chosen,
            rm_rejected,
            beta=self.beta,
            forward_kl=self.forward_kl,
        )
        loss = result.losses.mean()
        metrics = self.metrics(model)
        for prefix, chosen, rejected in (
            ("rewards", result.chosen_rewards, result.rejected_rewards),
            ("rm_rewards", rm_chosen, rm_rejected),
        ):
            metrics[f"{prefix}/chosen"] += chosen.tolist()
            metrics[f"{prefix}/rejected"] += rejected.tolist()
            metrics[f"{prefix}/margins"] += (chosen - rejected).tolist()
            metrics[f"{prefix}/accuracies"] += (chosen > rejected).float().tolist()
        metrics["logps/chosen"] += policy_chosen.detach().tolist()
        metrics["logps/rejected"] += policy_rejected.detach().tolist()
        if self.reference != "none":
            metrics["logps/ref_chosen"] += reference_chosen.tolist()
            metrics["logps/ref_rejected"] += reference_rejected.tolist()
        metrics["loss/ddpo"].append(loss.item())
        if return_outputs:
            return loss, {
                "chosen_rewards": result.chosen_rewards,
                "rejected_rewards": result.rejected_rewards,
            }
        return loss
