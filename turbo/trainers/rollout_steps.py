"""Steps of train_grpo and train_ppo around one rollout, each a call into the pure functions of
turbo.trainers.losses: DAPO's overlong penalty on the rewards, the truncated-answer mask, and the rollout
correction weights (pi_train / pi_sampler)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from turbo.trainers.losses.advantages import overlong_penalty
from turbo.trainers.losses.correction import Correction, correction_weights, no_correction, pad_rows

logger = logging.getLogger("turbo")

OVERLONG = "overlong_penalty"


def penalise_overlong(rollout: Any, max_tokens: int, settings: Any) -> Any:
    """Add DAPO's soft overlong penalty (`settings`: buffer, penalty; None: nothing) to the rollout's
    rewards; it is listed among the rewards as overlong_penalty (logged and dumped as one)."""
    if settings is None:
        return rollout
    penalty = overlong_penalty(rollout.lengths, max_tokens, settings.buffer, settings.penalty)
    rollout.rewards = rollout.rewards + penalty.to(rollout.rewards.dtype)
    rollout.per_function[OVERLONG] = penalty.tolist()
    return rollout


def loss_mask(rollout: Any, mask: torch.Tensor, mask_truncated: bool) -> torch.Tensor:
    """The answer-token mask, without the answers cut at max_new_tokens when `mask_truncated`."""
    if not mask_truncated:
        return mask
    finished = torch.tensor(rollout.finished, dtype=torch.bool, device=mask.device)
    return mask & finished.unsqueeze(1)


def truncated_fraction(rollout: Any) -> dict[str, float]:
    return {"overlong/truncated_fraction": 1 - sum(rollout.finished) / len(rollout.finished)}


def rollout_correction(
    settings: Any, rollout_settings: Any, rollout: Any, train_logps: torch.Tensor | None, mask: torch.Tensor
) -> Correction | None:
    """The correction weights of a rollout (`settings`: level, mode, cap; None: off). Sampled by the
    training model itself (transformers rollouts) they are 1; else pi_train / pi_sampler from the training
    model's log-probs before the update (`train_logps`) and the engine's."""
    if settings is None:
        return None
    if not rollout_settings.separate_sampler or train_logps is None:
        return no_correction(len(rollout.answers), mask.device)
    sampler = pad_rows(rollout.engine_logps, train_logps.shape[1], train_logps.device)
    return correction_weights(train_logps, sampler, mask, settings.level, settings.mode, settings.cap)


def note_correction(settings: Any, rollout_settings: Any) -> None:
    """Say once that a rollout correction with transformers rollouts changes nothing."""
    if settings is not None and not rollout_settings.separate_sampler:
        logger.info(
            "rollout_correction: transformers rollouts are sampled by the training model itself, so every "
            "weight is 1 (logged as rollout_correction/weight_mean 1); it acts with vLLM rollouts"
        )
