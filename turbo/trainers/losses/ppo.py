"""PPO as pure functions of tensors (Schulman et al. 2017; the RLHF form of Ouyang et al. 2022 and
TRL's PPOTrainer): per-token rewards with a KL penalty, GAE, whitening, clipped policy and value losses.
Per-token tensors are [answers, tokens], answers left-aligned, with a 0/1 `mask`."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor, count: int | None = None) -> torch.Tensor:
    """Mean over the masked entries; `count` (default: the entries of this batch) lets a mini-batch split
    into several forward passes give the same total."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / (mask.sum().clamp(min=1) if count is None else count)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(v - mean) / sqrt(var + 1e-8) over the masked entries (unbiased var); shift_mean False adds the
    mean back."""
    mean = masked_mean(values, mask)
    centred = values - mean
    count = mask.to(values.dtype).sum()
    variance = masked_mean(centred**2, mask) * count / (count - 1).clamp(min=1)
    whitened = centred * torch.rsqrt(variance + 1e-8)
    return whitened if shift_mean else whitened + mean


def kl_penalised_rewards(
    scores: torch.Tensor, logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: -kl_coef * (logp - ref_logp) at every answer token, plus the answer's score at
    its last token; and the per-token KL estimate (k1). Zero off the mask."""
    mask = mask.to(logps.dtype)
    kl = (logps - ref_logps) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores * (mask.sum(-1) > 0).to(scores.dtype)
    return rewards, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each answer (the value after its last token is 0):
    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}; returns A and A + V."""
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    length = values.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, advantages + values


def policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
    count: int | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked mean of max(-A * ratio, -A * clip(ratio, 1 - c, 1 + c)) (times the rollout-correction
    `weights`, [answers, tokens] or [answers, 1], when given), and the clipped share of tokens."""
    ratio = torch.exp(logps - old_logps)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    per_token = torch.max(unclipped, clipped)
    if weights is not None:
        per_token = per_token * weights
    loss = masked_mean(per_token, mask, count)
    return loss, masked_mean((clipped > unclipped).float(), mask)


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
    count: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """0.5 * masked mean of max((V - R)^2, (V_clipped - R)^2), V_clipped = V_old + clip(V - V_old, +-c);
    and the share of tokens where the clipped term was larger."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange, cliprange)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped, clipped), mask, count)
    return loss, masked_mean((clipped > unclipped).float(), mask)


@dataclass
class PpoLoss:
    loss: torch.Tensor
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    clip_fraction: torch.Tensor
    value_clip_fraction: torch.Tensor


def ppo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    cliprange: float,
    cliprange_value: float,
    vf_coef: float,
    count: int | None = None,
    weights: torch.Tensor | None = None,
) -> PpoLoss:
    """policy loss + vf_coef * value loss on one mini-batch (or one pass of it, `count` its tokens);
    `weights` (rollout correction) scale the policy loss only."""
    pg, clip_fraction = policy_loss(logps, old_logps, advantages, mask, cliprange, count, weights)
    vf, value_clip_fraction = value_loss(values, old_values, returns, mask, cliprange_value, count)
    return PpoLoss(
        pg + vf_coef * vf, pg.detach(), vf.detach(), clip_fraction.detach(), value_clip_fraction.detach()
    )
