"""GRPO as pure functions of tensors: group-normalised advantages, the clipped surrogate with a k3 KL
to the reference, and the three aggregations of the per-token loss (Shao et al. 2024; Dr. GRPO, Liu et
al. 2025; DAPO, Yu et al. 2025). Per-token tensors are [answers, tokens] with a 0/1 `mask`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

AGGREGATIONS = ("grpo", "dr_grpo", "dapo")


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """(r - mean of its group) / (std of its group + eps); rows are consecutive groups of `group_size`.
    The std is the unbiased one (as TRL); `scale` False only centres (Dr. GRPO)."""
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(-1, keepdim=True)
    if scale:
        centred = centred / (groups.std(-1, keepdim=True) + eps)
    return centred.reshape(-1)


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference): exp(ref - logp) - (ref - logp) - 1 (>= 0)."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def clipped_ratio_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A) with one advantage per answer
    ([answers]), and whether each token was clipped (the clipped term was the smaller)."""
    ratio = torch.exp(logps - old_logps)
    advantages = advantages.unsqueeze(-1)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high) * advantages
    return -torch.min(unclipped, clipped), (clipped < unclipped)


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    max_tokens: int,
    answers: int | None = None,
    tokens: int | None = None,
) -> torch.Tensor:
    """grpo: mean over each answer's tokens, then over answers; dr_grpo: sum / (answers * max_tokens);
    dapo: sum / answer tokens in the batch. `answers` and `tokens` (default: this batch's) let a
    mini-batch split into several forward passes give the same total."""
    mask = mask.to(per_token.dtype)
    answers = per_token.shape[0] if answers is None else answers
    total = (per_token * mask).sum()
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).sum() / answers
    if loss_type == "dr_grpo":
        return total / (answers * max_tokens)
    if loss_type == "dapo":
        return total / (mask.sum().clamp(min=1) if tokens is None else tokens)
    raise ValueError(f"unknown GRPO loss_type {loss_type!r}; expected one of {AGGREGATIONS}")


@dataclass
class GrpoLoss:
    loss: torch.Tensor
    policy_loss: torch.Tensor  # the aggregated clipped surrogate (detached)
    kl: torch.Tensor  # mean per-token k3 KL over answer tokens (detached; 0 without a reference)
    clip_fraction: torch.Tensor  # share of answer tokens whose ratio was clipped (detached)


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    ref_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss_type: str,
    epsilon: float,
    epsilon_high: float | None,
    beta: float,
    max_tokens: int,
    answers: int | None = None,
    tokens: int | None = None,
) -> GrpoLoss:
    """The GRPO objective of one batch of answers (per-token log-probs [answers, tokens]); the metrics are
    means over this batch's answer tokens."""
    surrogate, clipped = clipped_ratio_loss(
        logps, old_logps, advantages, epsilon, epsilon if epsilon_high is None else epsilon_high
    )
    per_token = surrogate
    kl = torch.zeros_like(logps)
    if beta > 0 and ref_logps is not None:
        kl = k3_kl(logps, ref_logps)
        per_token = surrogate + beta * kl
    weights = mask.to(logps.dtype)
    count = weights.sum().clamp(min=1)
    return GrpoLoss(
        loss=aggregate(per_token, mask, loss_type, max_tokens, answers, tokens),
        policy_loss=aggregate(surrogate, mask, loss_type, max_tokens, answers, tokens).detach(),
        kl=((kl * weights).sum() / count).detach(),
        clip_fraction=((clipped.to(logps.dtype) * weights).sum() / count).detach(),
    )
