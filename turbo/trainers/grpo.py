"""GRPO trainer: one Trainer step is one rollout (num_generations answers to each of rollout_batch_size
prompts) and its num_iterations x num_mini_batches optimiser updates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from turbo.trainers.dynamic_sampling import draw_prompts, fill_groups, round_seed
from turbo.trainers.losses.advantages import advantages as estimate_advantages
from turbo.trainers.losses.grpo import grpo_loss
from turbo.trainers.rollout import (
    collect,
    frozen_token_logps,
    optimise,
    policy_token_logps,
    rollout_metrics,
    trained_mask,
)
from turbo.trainers.rollout_async import ahead_batches, overlap_metrics, prefetch_ahead
from turbo.trainers.rollout_distributed import generation_model, mean_over_ranks, sync_rollout_engine
from turbo.trainers.rollout_dumps import dump_rollout
from turbo.trainers.rollout_steps import (
    loss_mask,
    note_correction,
    penalise_overlong,
    rollout_correction,
    truncated_fraction,
)
from turbo.trainers.rollout_trainer import RolloutTrainer

RANK_STRIDE = 7919  # dynamic sampling: rank r's extra draws are seeded apart from rank 0's


class GrpoTrainer(RolloutTrainer):
    def __init__(self, *args: Any, grpo_settings: Any, share_prompts: bool = False, **kwargs: Any) -> None:
        """`share_prompts`: the answers are scored over one copy of their prompt (policy_token_logps),
        decided once by the pipeline (train/grpo.py)."""
        super().__init__(*args, **kwargs)
        self.grpo = grpo_settings
        self.share_prompts = share_prompts
        if self.args.world_size > 1 and grpo_settings.dynamic_sampling and grpo_settings.forward_batch_size:
            from turbo.errors import SettingsError

            raise SettingsError(  # ranks would run different numbers of backward passes (DDP hangs)
                "trainer_settings.forward_batch_size: not with dynamic_sampling on several processes (each "
                "rank refills its own groups, so ranks hold different numbers of answers); remove it"
            )
        note_correction(grpo_settings.rollout_correction, self.rollout_settings)

    def training_step(
        self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        settings = self.grpo
        step = self.state.global_step
        with generation_model(self, model) as policy:  # unwrapped (ZeRO-3: gathered)
            sync_seconds = sync_rollout_engine(self.engine, policy, step)
            prefetch_ahead(self, settings.num_generations)  # rollout_settings.async: the next steps' answers
            rollout = self.sample(policy, inputs["prompts"], seed=self.seed + step)
            overlap = overlap_metrics(self.engine)
            sampling_metrics: dict[str, float] = {}
            if settings.dynamic_sampling is not None:

                def more(round: int) -> Any:
                    # each rank draws its own extra prompts (the same draw on every rank would repeat groups)
                    seed = round_seed(self.seed, step, round) + RANK_STRIDE * self.args.process_index
                    prompts = draw_prompts(self.train_dataset, settings.rollout_batch_size, seed)
                    return self.sample(policy, prompts, seed)

                rollout, sampling_metrics = fill_groups(
                    rollout,
                    more,
                    settings.num_generations,
                    settings.rollout_batch_size,
                    settings.dynamic_sampling.max_rounds,
                    self.processing_class.pad_token_id,
                )
        model.train()
        start = time.perf_counter()
        rows = len(rollout.answers)
        chunk = settings.forward_batch_size or rows
        advantages = estimate_advantages(
            rollout.rewards, settings.num_generations, settings.advantage_estimator, settings.scale_rewards
        )
        dump_rollout(self, settings.rollout_dump_steps, rollout, advantages.tolist())
        correcting = settings.rollout_correction is not None and self.rollout_settings.separate_sampler
        reuse = settings.num_iterations > 1 or settings.num_mini_batches > 1 or correcting
        layout = {"flat": self.padding_free, "shared": self.share_prompts}
        old = frozen_token_logps(model, rollout, chunk, reference=False, **layout) if reuse else None
        ref = None
        if settings.beta > 0:
            ref = frozen_token_logps(
                model, rollout, chunk, reference=True, ref_model=self.ref_model, **layout
            )
        mask = trained_mask(rollout)
        mask = loss_mask(rollout, mask, settings.mask_truncated_answers)
        correction = rollout_correction(
            settings.rollout_correction, self.rollout_settings, rollout, old, mask
        )
        seen = torch.zeros_like(rollout.rewards[:, None].expand(-1, rollout.width))
        stats: dict[str, list[float]] = {"kl": [], "clip_fraction": [], "policy_loss": [], "entropy": []}

        def loss_of(chunk_rows: torch.Tensor, mini_batch: torch.Tensor) -> torch.Tensor:
            logps, entropy = policy_token_logps(model, rollout, chunk_rows, entropy=True, **layout)
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
                tokens=mean_over_ranks(int(mask[mini_batch].sum()), mask.device),  # dapo: the global batch
                level=settings.importance_sampling_level,
                weights=None if correction is None else correction.weights[chunk_rows, :width],
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
        metrics.update(sampling_metrics)
        metrics.update(overlap)
        metrics.update(truncated_fraction(rollout))
        if correction is not None:
            metrics.update(correction.metrics())
        metrics["train_seconds"] = time.perf_counter() - start
        metrics["sync_seconds"] = sync_seconds
        metrics["time/weight_sync"] = sync_seconds
        record = self.metrics(model)
        for name, value in metrics.items():
            record[name].append(value)
        return loss

    def sample(self, model: Any, prompts: list[dict[str, Any]], seed: int) -> Any:
        """num_generations answers to each prompt, scored (the overlong penalty added when set)."""
        rollout = collect(
            self.engine,
            model,
            self.processing_class,
            prompts,
            self.rewards,
            n=self.grpo.num_generations,
            seed=seed,
        )
        return penalise_overlong(rollout, self.rollout_settings.max_new_tokens, self.grpo.overlong_penalty)

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> tuple[list, Any]:
        """With rollout_settings.async the next steps' prompt batches are read ahead (rollout_async)."""
        batches = ahead_batches(self, epoch_iterator, num_batches)
        if batches is None:
            return super().get_batch_samples(epoch_iterator, num_batches, device)
        return batches, None  # prompt batches have no labels to count

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
