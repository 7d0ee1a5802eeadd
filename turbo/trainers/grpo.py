"""GRPO trainer: one Trainer step is one rollout (num_generations answers to each of rollout_batch_size
prompts) and its num_iterations x num_mini_batches optimiser updates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from turbo.trainers.losses.grpo import group_advantages, grpo_loss
from turbo.trainers.rollout import (
    RolloutTrainer,
    collect,
    frozen_token_logps,
    optimise,
    policy_token_logps,
    rollout_metrics,
    sync_engine,
    trained_mask,
)


class GrpoTrainer(RolloutTrainer):
    def __init__(self, *args: Any, grpo_settings: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grpo = grpo_settings

    def training_step(
        self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        settings = self.grpo
        step = self.state.global_step
        sync_seconds = sync_engine(self.engine, model, step)
        model.train()
        rollout = collect(
            self.engine,
            model,
            self.processing_class,
            inputs["prompts"],
            self.rewards,
            n=settings.num_generations,
            seed=self.seed + step,
        )
        start = time.perf_counter()
        rows = len(rollout.answers)
        chunk = settings.forward_batch_size or rows
        advantages = group_advantages(rollout.rewards, settings.num_generations, settings.scale_rewards)
        reuse = settings.num_iterations > 1 or settings.num_mini_batches > 1
        old = frozen_token_logps(model, rollout, chunk, reference=False) if reuse else None
        ref = None
        if settings.beta > 0:
            ref = frozen_token_logps(model, rollout, chunk, reference=True, ref_model=self.ref_model)
        mask = trained_mask(rollout)
        seen = torch.zeros_like(rollout.rewards[:, None].expand(-1, rollout.width))
        stats: dict[str, list[float]] = {"kl": [], "clip_fraction": [], "policy_loss": [], "entropy": []}

        def loss_of(chunk_rows: torch.Tensor, mini_batch: torch.Tensor) -> torch.Tensor:
            logps, entropy = policy_token_logps(model, rollout, chunk_rows, entropy=True)
            width = logps.shape[1]
            old_logps = logps.detach() if old is None else old[chunk_rows, :width]
            if old is None:
                seen[chunk_rows, :width] = logps.detach()
            chunk_mask = mask[chunk_rows, :width]
            result = grpo_loss(
                logps,
                old_logps,
                None if ref is None else ref[chunk_rows, :width],
                advantages[chunk_rows],
                chunk_mask,
                loss_type=settings.loss_type,
                epsilon=settings.epsilon,
                epsilon_high=settings.epsilon_high,
                beta=settings.beta,
                max_tokens=self.rollout_settings.max_new_tokens,
                answers=len(mini_batch),
                tokens=int(mask[mini_batch].sum()),
            )
            stats["kl"].append(result.kl.item())
            stats["clip_fraction"].append(result.clip_fraction.item())
            stats["policy_loss"].append(result.policy_loss.item())
            if entropy is not None:
                stats["entropy"].append(((entropy * chunk_mask).sum() / chunk_mask.sum().clamp(min=1)).item())
            return result.loss

        loss = optimise(
            self,
            model,
            rows,
            epochs=settings.num_iterations,
            mini_batches=settings.num_mini_batches,
            forward_batch=settings.forward_batch_size,
            loss_of=loss_of,
        )
        metrics = rollout_metrics(rollout, old if old is not None else seen)
        metrics.update({name: sum(values) / len(values) for name, values in stats.items() if values})
        metrics["train_seconds"] = time.perf_counter() - start
        metrics["sync_seconds"] = sync_seconds
        record = self.metrics(model)
        for name, value in metrics.items():
            record[name].append(value)
        return loss

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """A multimodal policy saves its parts as train_multimodal does (LM adapter, projectors)."""
        model = self.accelerator.unwrap_model(self.model)
        if not hasattr(model, "projectors"):
            return super()._save(output_dir, state_dict)
        from turbo.trainers.multimodal import save_parts

        save_parts(self, output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        unwrapped = self.accelerator.unwrap_model(self.model if model is None else model)
        if not hasattr(unwrapped, "projectors"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        from turbo.trainers.multimodal import load_parts

        load_parts(unwrapped, Path(resume_from_checkpoint))
