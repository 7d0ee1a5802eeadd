"""A `transformers.Trainer` for the DPO-family losses: one forward pass over [chosen; rejected]."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from turbo.settings.dpo_losses import BaseLossSettings
from turbo.settings.pipelines.train.dpo import SyncRefModelSettings
from turbo.trainers.base import MetricsTrainer
from turbo.trainers.logps import AnswerLogps, answer_logps, model_reference_logps, reference_logps, rows
from turbo.trainers.losses.dpo import LOSSES, PairLoss
from turbo.trainers.multimodal import load_parts, part_optimizer, save_parts

# the precomputed reference log-probs: [chosen; rejected] rows, one feature key per block
REFERENCE_KEYS = {"": ("ref_chosen_logps", "ref_rejected_logps")}


class DpoTrainer(MetricsTrainer):
    """Reference log-probs come from the batch (precomputed), a separate frozen `ref_model`, or the
    policy with its adapter disabled, in that order; losses without a reference read none. `lc_alpha`:
    both are length-desensitised (LD-DPO, turbo.trainers.logps.length_desensitised). `sft_model` (the
    original's use_sft_model): the frozen starting model, scored as a second reference for the
    rewards/sft_* metrics only; the loss never reads it.

    A MultimodalModel policy (train_multimodal_dpo) gives `part_learning_rates` (one learning rate per
    part, checkpoints of what trains: turbo.trainers.multimodal) and, for a reference without a separate
    model, `start`: the policy's own LM with its adapter disabled beside frozen copies of the starting
    projectors (and of any encoder that trains), so a projector that learns does not move the reference."""

    def __init__(
        self,
        *args: Any,
        loss_settings: BaseLossSettings,
        ref_model: Any = None,
        average_log_prob: bool | None = None,
        lc_alpha: float | None = None,
        sft_model: Any = None,
        part_learning_rates: dict[str, float] | None = None,
        start: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.part_learning_rates = part_learning_rates
        self.start = start
        if start is not None:  # its own copies move; the shared LM is already where the policy is
            for part in (*start.projectors.values(), *start.encoders.values()):
                part.to(self.args.device)
        self.loss_type: str = loss_settings.loss_type  # type: ignore[attr-defined]
        self.loss_spec = LOSSES[self.loss_type]
        self.average_log_prob = (
            self.loss_spec.average_log_prob if average_log_prob is None else average_log_prob
        )
        self.loss_kwargs = loss_settings.model_dump(exclude={"loss_type"})
        self.uses_reference = loss_settings.uses_reference
        self.lc_alpha = lc_alpha
        self.ref_model = ref_model
        if ref_model is not None:
            ref_model.requires_grad_(False)
            self.ref_model = ref_model.to(self.args.device).eval()
        self.sft_model = sft_model
        if sft_model is not None:
            sft_model.requires_grad_(False)
            self.sft_model = sft_model.to(self.args.device).eval()

    def _reference(self, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if not self.uses_reference:
            return None
        if self.ref_model is None and self.start is not None:  # `start` with its adapter disabled
            return reference_logps(self.start, inputs, REFERENCE_KEYS[""], lc_alpha=self.lc_alpha)
        policy = self.accelerator.unwrap_model(model)
        return reference_logps(
            policy, inputs, REFERENCE_KEYS[""], ref_model=self.ref_model, lc_alpha=self.lc_alpha
        )

    def pair_loss(
        self, policy: AnswerLogps, reference: torch.Tensor | None, margin: torch.Tensor | None
    ) -> tuple[PairLoss, dict[str, torch.Tensor]]:
        """The loss on log-probs summed or averaged over the answer, as the loss type needs."""
        divisor = policy.counts.clamp(min=1) if self.average_log_prob else 1
        tensors = dict(
            zip(("policy_chosen", "policy_rejected"), (policy.sums / divisor).chunk(2), strict=True)
        )
        if reference is not None:
            names = ("reference_chosen", "reference_rejected")
            tensors.update(zip(names, (reference / divisor).chunk(2), strict=True))
        if margin is not None:
            tensors["margin"] = margin
        accepted = inspect.signature(self.loss_spec.function).parameters
        inputs = {name: value for name, value in tensors.items() if name in accepted}
        return self.loss_spec.function(**inputs, **self.loss_kwargs), tensors

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        policy = answer_logps(model, inputs, self.lc_alpha)
        reference = self._reference(model, inputs)
        result, tensors = self.pair_loss(policy, reference, inputs.get("margin"))
        loss = result.losses.mean()
        split = "train" if model.training else "eval"
        self._record(split, loss, result, tensors, policy)
        if self.sft_model is not None:
            self._record_sft(split, policy, inputs)
        if return_outputs:
            return loss, {
                "chosen_rewards": result.chosen_rewards,
                "rejected_rewards": result.rejected_rewards,
            }
        return loss

    def _record(
        self,
        split: str,
        loss: torch.Tensor,
        result: PairLoss,
        tensors: dict[str, torch.Tensor],
        policy: AnswerLogps,
    ) -> None:
        metrics = self._metrics[split]
        chosen, rejected = result.chosen_rewards, result.rejected_rewards
        metrics["rewards/chosen"] += chosen.tolist()
        metrics["rewards/rejected"] += rejected.tolist()
        metrics["rewards/margins"] += (chosen - rejected).tolist()
        metrics["rewards/accuracies"] += (chosen > rejected).float().tolist()
        logits_chosen, logits_rejected = policy.mean_logits.chunk(2)
        metrics["logits/chosen"] += logits_chosen.tolist()
        metrics["logits/rejected"] += logits_rejected.tolist()
        for name, key in (("chosen", "policy_chosen"), ("rejected", "policy_rejected")):
            metrics[f"logps/{name}"] += tensors[key].detach().tolist()
            if f"reference_{name}" in tensors:
                metrics[f"logps/ref_{name}"] += tensors[f"reference_{name}"].detach().tolist()
        metrics[f"loss/{self.loss_type}"].append(loss.item())
        for part, values in result.parts.items():
            metrics[f"loss/{self.loss_type}/{part}"] += values.tolist()

    @torch.no_grad()
    def _record_sft(self, split: str, policy: AnswerLogps, inputs: dict[str, Any]) -> None:
        """The DPO rewards of the policy against the starting model, as the original logs them."""
        sft = model_reference_logps(self.sft_model, rows(inputs, ""), False, self.lc_alpha)
        detached = AnswerLogps(policy.sums.detach(), policy.counts, policy.mean_logits)
        result, _ = self.pair_loss(detached, sft, inputs.get("margin"))
        chosen, rejected = result.chosen_rewards, result.rejected_rewards
        metrics = self._metrics[split]
        metrics["rewards/sft_chosen"] += chosen.tolist()
        metrics["rewards/sft_rejected"] += rejected.tolist()
        metrics["rewards/sft_margins"] += (chosen - rejected).tolist()
        metrics["rewards/sft_accuracies"] += (chosen > rejected).float().tolist()

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        if self.part_learning_rates is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        self.optimizer = part_optimizer(self, model, self.part_learning_rates)
        return self.optimizer

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if self.part_learning_rates is None:
            return super()._save(output_dir, state_dict)
        save_parts(self, output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        if self.part_learning_rates is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        unwrapped = self.accelerator.unwrap_model(self.model if model is None else model)
        load_parts(unwrapped, Path(resume_from_checkpoint))


class SyncRefModelCallback(TrainerCallback):
    """TR-DPO: every sync_steps optimizer steps, reference <- alpha * policy + (1 - alpha) * reference."""

    def __init__(self, ref_model: Any, settings: SyncRefModelSettings) -> None:
        self.ref_model = ref_model
        self.settings = settings

    @torch.no_grad()
    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None or state.global_step % self.settings.sync_steps:
            return
        policy = dict(model.named_parameters())
        for name, reference in self.ref_model.named_parameters():
            reference.lerp_(policy[name].detach().to(reference.dtype), self.settings.alpha)
