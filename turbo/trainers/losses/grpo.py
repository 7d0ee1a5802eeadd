"""GRPO as pure functions of tensors: group-normalised advantages, the clipped surrogate with a k3 KL
to the reference (Shao et al. 2024), its ratio per token or per answer (GSPO, Zheng et al. 2025), CISPO's
clipped, detached importance weights times the log-prob (MiniMax-M1, 2025), and the aggregations of the
per-token loss (Dr. GRPO, Liu et al. 2025; DAPO, Yu et al. 2025; BNPO). Per-token tensors are
[answers, tokens] with a 0/1 `mask`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

AGGREGATIONS = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo")
LEVELS = ("token", "sequence")


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


def log_importance_weights(
    logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor, level: str = "token"
) -> torch.Tensor:
    """log(pi / pi_old): per token ([answers, tokens]), or per answer ([answers, 1]): the mean of its
    tokens' log-ratios over the mask, i.e. the log of their geometric mean (GSPO)."""
    log_ratio = logps - old_logps
    if level == "token":
        return log_ratio
    if level == "sequence":
        weights = mask.to(log_ratio.dtype)
        return ((log_ratio * weights).sum(-1) / weights.sum(-1).clamp(min=1)).unsqueeze(-1)
    raise ValueError(f"unknown importance_sampling_level {level!r}; expected one of {LEVELS}")


def clipped_ratio_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
    mask: torch.Tensor | None = None,
    level: str = "token",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A) with one advantage per answer
    ([answers]), and whether each token was clipped (the clipped term was the smaller). `level` sequence:
    one ratio per answer (GSPO; `mask` needed), the same loss at each of its tokens."""
    if mask is None:
        mask = torch.ones_like(logps)
    ratio = torch.exp(log_importance_weights(logps, old_logps, mask, level))
    advantages = advantages.unsqueeze(-1)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high) * advantages
    loss, was_clipped = -torch.min(unclipped, clipped), (clipped < unclipped)
    return loss.expand_as(logps), was_clipped.expand_as(logps)


def cispo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    cap: float,
    mask: torch.Tensor | None = None,
    level: str = "token",
) -> tuple[torch.Tensor, torch.Tensor]:
    """CISPO (MiniMax-M1): per-token -sg(min(ratio, cap)) * A * logp; the gradient flows through every
    token's log-prob (none is clipped away), the weight is only bounded. And whether each weight was capped
    with a positive advantage (as TRL's cispo_clip_ratio)."""
    if mask is None:
        mask = torch.ones_like(logps)
    ratio = torch.exp(log_importance_weights(logps, old_logps, mask, level))
    weights = torch.clamp(ratio, max=cap).detach()
    advantages = advantages.unsqueeze(-1)
    capped = (ratio > cap) & (advantages > 0)
    return -weights * advantages * logps, capped.expand_as(logps)


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    max_tokens: int,
    answers: int | None = None,
    tokens: int | None = None,
) -> torch.Tensor:
    """grpo: mean over each answer's tokens, then over answers; dr_grpo: sum / (answers * max_tokens);
    dapo and cispo: sum / answer tokens in the batch; bnpo: sum / answer tokens of this forward pass (TRL's
    local batch), weighted by its share of the mini-batch's answers. `answers` and `tokens` (default: this
    batch's) let a mini-batch split into several forward passes give the same total (bnpo: each pass is
    normalised by its own tokens, so only it differs from dapo when a mini-batch is split)."""
    mask = mask.to(per_token.dtype)
    answers = per_token.shape[0] if answers is None else answers
    total = (per_token * mask).sum()
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).sum() / answers
    if loss_type == "dr_grpo":
        return total / (answers * max_tokens)
    if loss_type in ("dapo", "cispo"):
        return total / (mask.sum().clamp(min=1) if tokens is None else max(tokens, 1))
    if loss_type == "bnpo":
        return total / mask.sum().clamp(min=1) * (per_token.shape[0] / answers)
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
    level: str = "token",
    weights: torch.Tensor | None = None,
) -> GrpoLoss:
    """The GRPO objective of one batch of answers (per-token log-probs [answers, tokens]); the metrics are
    means over this batch's answer tokens. `level`: the ratio per token or per answer (GSPO); cispo's
    weight is capped at 1 + epsilon_high (else 1 + epsilon); `weights` (rollout correction, [answers,
    tokens] or [answers, 1]) multiply the surrogate before the KL is added (as TRL)."""
    high = epsilon if epsilon_high is None else epsilon_high
    if loss_type == "cispo":
        surrogate, clipped = cispo_loss(logps, old_logps, advantages, 1 + high, mask, level)
    else:
        surrogate, clipped = clipped_ratio_loss(logps, old_logps, advantages, epsilon, high, mask, level)
    if weights is not None:
        surrogate = surrogate * weights
    per_token = surrogate
    kl = torch.zeros_like(logps)
    if beta > 0 and ref_logps is not None:
        kl = k3_kl(logps, ref_logps)
        per_token = surrogate + beta * kl
    mask_weights = mask.to(logps.dtype)
    count = mask_weights.sum().clamp(min=1)
    return GrpoLoss(
        loss=aggregate(per_token, mask, loss_type, max_tokens, answers, tokens),
        policy_loss=aggregate(surrogate, mask, loss_type, max_tokens, answers, tokens).detach(),
        kl=((kl * mask_weights).sum() / count).detach(),
        clip_fraction=((clipped.to(logps.dtype) * mask_weights).sum() / count).detach(),
    )
