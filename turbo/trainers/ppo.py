"""PPO trainer: one Trainer step is one rollout (one answer to each of rollout_batch_size prompts) and its
num_ppo_epochs x num_mini_batches optimiser updates of the policy and the value model together.

The value model (a one-output sequence classifier) is read at every token: its head on the backbone's
hidden states. It trains in full, shares the optimiser (its own parameter group), and is saved beside the
policy in every checkpoint (value_model/) and in the final folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from turbo.trainers.logps import MODEL_KEYS
from turbo.trainers.losses.ppo import gae, kl_penalised_rewards, masked_mean, ppo_loss
from turbo.trainers.rollout import (
    Rollout,
    collect,
    flatten,
    frozen_token_logps,
    optimise,
    policy_token_logps,
    policy_tokens_first,
    rollout_metrics,
    select,
    to_answers,
    trained_mask,
    unflatten,
)
from turbo.trainers.rollout_distributed import (
    generation_model,
    mean_over_ranks,
    sync_rollout_engine,
    whiten_over_ranks,
)
from turbo.trainers.rollout_dumps import dump_rollout
from turbo.trainers.rollout_steps import note_correction, rollout_correction
from turbo.trainers.rollout_trainer import RolloutTrainer

VALUE_MODEL = "value_model"
VALUE_INSIDE = "turbo_value_model"  # the value model's name inside the policy under DeepSpeed


def token_values(value_model: Any, rollout: Rollout, rows: torch.Tensor, flat: bool = False) -> torch.Tensor:
    """The value of the state before each answer token of `rows`: [rows, width], left-aligned. `flat`:
    the rows are read in one row without padding (as policy_token_logps; the same values)."""
    batch = select(rollout.batch, rows)
    inputs = flatten(batch) if flat else batch
    backbone = getattr(value_model, value_model.base_model_prefix)
    hidden = backbone(
        **{key: inputs[key] for key in MODEL_KEYS if key in inputs}, use_cache=False
    ).last_hidden_state
    values = value_model.score(hidden).squeeze(-1)[:, :-1].float()
    if flat:
        values = unflatten(values, batch["attention_mask"])
    return to_answers(values, rollout.starts[rows], int(rollout.lengths[rows].max()))


class PpoTrainer(RolloutTrainer):
    def __init__(self, *args: Any, ppo_settings: Any, value_model: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ppo = ppo_settings
        self.value_model = value_model.to(self.args.device)
        self.value_inside = self.is_deepspeed_enabled
        if self.value_inside:  # DeepSpeed trains (and shards) the modules of its one engine only
            self.model.add_module(VALUE_INSIDE, value_model)
        note_correction(ppo_settings.rollout_correction, self.rollout_settings)

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """The Trainer's optimiser for the policy, plus one parameter group for the value model."""
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if fresh and not self.value_inside:  # inside the policy (DeepSpeed), its parameters are there
            optimizer.add_param_group(
                {"params": [p for p in self.value_model.parameters() if p.requires_grad]}
            )
        return optimizer

    def training_step(
        self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        settings = self.ppo
        step = self.state.global_step
        with generation_model(self, model) as policy:  # unwrapped (ZeRO-3: gathered)
            sync_seconds = sync_rollout_engine(self.engine, policy, step)
            rollout = collect(
                self.engine,
                policy,
                self.processing_class,
                inputs["prompts"],
                self.rewards,
                n=1,
                seed=self.seed + step,
            )
        model.train()
        self.value_model.train()
        # the Trainer zeroes the policy's gradients after its step, not the value model's (outside it)
        self.value_model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        rows = len(rollout.answers)
        chunk = settings.forward_batch_size or rows
        mask = trained_mask(rollout)
        scores = rollout.rewards.clone()
        if settings.missing_eos_penalty is not None:
            unfinished = torch.tensor([not done for done in rollout.finished], device=scores.device)
            scores -= settings.missing_eos_penalty * unfinished.float()
        flat = self.padding_free
        old = frozen_token_logps(model, rollout, chunk, reference=False, flat=flat)
        ref = frozen_token_logps(model, rollout, chunk, reference=True, ref_model=self.ref_model, flat=flat)
        with torch.no_grad():
            old_values = torch.zeros_like(old)
            for begin in range(0, rows, chunk):
                part = torch.arange(begin, min(begin + chunk, rows), device=old.device)
                values = token_values(self.value_model, rollout, part, flat)
                old_values[part, : values.shape[1]] = values
            # over the policy's tokens only, packed first in order: the score lands on the last one and
            # GAE skips tool results (without tools the order is the identity)
            order = policy_tokens_first(mask)
            packed_mask = torch.gather(mask, 1, order)
            old_packed, ref_packed = torch.gather(old, 1, order), torch.gather(ref, 1, order)
            rewards, kl = kl_penalised_rewards(scores, old_packed, ref_packed, packed_mask, settings.kl_coef)
            if settings.whiten_rewards:
                rewards = whiten_over_ranks(rewards, packed_mask, shift_mean=False) * packed_mask
            values_packed = torch.gather(old_values, 1, order)
            advantages, returns = gae(rewards, values_packed, packed_mask, settings.gamma, settings.lam)
            advantages, returns, kl = (
                torch.zeros_like(tensor).scatter(1, order, tensor) for tensor in (advantages, returns, kl)
            )
            advantages = whiten_over_ranks(advantages, mask) * mask
        correction = rollout_correction(
            settings.rollout_correction, self.rollout_settings, rollout, old, mask
        )
        answer_advantages = (advantages.sum(-1) / mask.sum(-1).clamp(min=1)).tolist()
        dump_rollout(self, settings.rollout_dump_steps, rollout, answer_advantages)
        stats: dict[str, list[float]] = {
            name: []
            for name in ("policy_loss", "value_loss", "clip_fraction", "value_clip_fraction", "entropy")
        }

        def loss_of(chunk_rows: torch.Tensor, mini_batch: torch.Tensor) -> torch.Tensor:
            logps, entropy = policy_token_logps(model, rollout, chunk_rows, entropy=True, flat=flat)
            width = logps.shape[1]
            values = token_values(self.value_model, rollout, chunk_rows, flat)
            chunk_mask = mask[chunk_rows, :width]
            result = ppo_loss(
                logps,
                old[chunk_rows, :width],
                values,
                old_values[chunk_rows, :width],
                advantages[chunk_rows, :width],
                returns[chunk_rows, :width],
                chunk_mask,
                cliprange=settings.cliprange,
                cliprange_value=settings.cliprange_value,
                vf_coef=settings.vf_coef,
                count=mean_over_ranks(int(mask[mini_batch].sum()), mask.device),  # the global batch
                weights=None if correction is None else correction.weights[chunk_rows, :width],
            )
            for name in ("policy_loss", "value_loss", "clip_fraction", "value_clip_fraction"):
                stats[name].append(getattr(result, name).item())
            if entropy is not None:
                stats["entropy"].append(masked_mean(entropy, chunk_mask).item())
            return result.loss

        loss = optimise(
            self,
            model,
            rows,
            epochs=settings.num_ppo_epochs,
            mini_batches=settings.num_mini_batches,
            forward_batch=settings.forward_batch_size,
            loss_of=loss_of,
            extra_parameters=None
            if self.value_inside  # clipped with the policy's by DeepSpeed
            else [p for p in self.value_model.parameters() if p.requires_grad],
        )
        metrics = rollout_metrics(rollout, old)
        metrics.update({name: sum(values) / len(values) for name, values in stats.items() if values})
        if correction is not None:
            metrics.update(correction.metrics())
        metrics.update(
            {
                "score": scores.mean().item(),
                "kl": masked_mean(kl, mask).item(),
                "kl_per_answer": (kl * mask).sum(-1).mean().item(),
                "value": masked_mean(old_values, mask).item(),
                "train_seconds": time.perf_counter() - start,
                "sync_seconds": sync_seconds,
                "time/weight_sync": sync_seconds,
            }
        )
        record = self.metrics(model)
        for name, value in metrics.items():
            record[name].append(value)
        return loss

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            folder = Path(output_dir or self.args.output_dir) / VALUE_MODEL
            prefix = f"{VALUE_INSIDE}."
            state = state_dict or {}  # under DeepSpeed the engine's (ZeRO-3: gathered) weights
            inside = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
            self.value_model.save_pretrained(folder, state_dict=inside or None)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        from safetensors.torch import load_file

        weights = load_file(str(Path(resume_from_checkpoint) / VALUE_MODEL / "model.safetensors"))
        self.value_model.load_state_dict(weights)
