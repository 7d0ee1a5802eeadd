"""Advantages of a GRPO rollout and the reward shaping before them, as pure functions of tensors. Rows are
consecutive groups of `group_size` answers to one prompt; one reward and one advantage per answer.

- group: (r - group mean) / (group std + eps), or centred only (GRPO, Shao et al. 2024; Dr. GRPO).
- rloo: r - the mean of the other answers of its group (RLOO, Ahmadian et al. 2024).
- reinforce_pp: (r - group mean) / (std over the whole batch + eps) (REINFORCE++ with a group baseline,
  Hu et al. 2025; OpenRLHF reinforce_baseline, verl reinforce_plus_plus_baseline).
- overlong_penalty: DAPO's soft length penalty (Yu et al. 2025), added to the reward.
- informative_groups: the groups whose rewards differ (DAPO's dynamic sampling keeps only those).
"""

from __future__ import annotations

import torch

from turbo.trainers.losses.grpo import group_advantages

ESTIMATORS = ("group", "rloo", "reinforce_pp")


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """r_i - (sum of the group - r_i) / (group_size - 1): the leave-one-out baseline."""
    groups = rewards.view(-1, group_size)
    baseline = (groups.sum(-1, keepdim=True) - groups) / (group_size - 1)
    return (groups - baseline).reshape(-1)


def reinforce_pp_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """The group-centred rewards normalised over the whole batch: (a - mean(a)) / (std(a) + eps) with
    a = r - group mean (unbiased std over every answer of the rollout)."""
    centred = group_advantages(rewards, group_size, scale=False)
    if centred.numel() < 2:
        return centred
    return (centred - centred.mean()) / (centred.std() + eps)


def advantages(rewards: torch.Tensor, group_size: int, estimator: str, scale: bool = True) -> torch.Tensor:
    """One advantage per answer by `estimator` (group reads `scale`: divide by the group std)."""
    if estimator == "group":
        return group_advantages(rewards, group_size, scale)
    if estimator == "rloo":
        return rloo_advantages(rewards, group_size)
    if estimator == "reinforce_pp":
        return reinforce_pp_advantages(rewards, group_size)
    raise ValueError(f"unknown advantage_estimator {estimator!r}; expected one of {ESTIMATORS}")


def overlong_penalty(lengths: torch.Tensor, max_tokens: int, buffer: int, penalty: float) -> torch.Tensor:
    """DAPO's soft overlong penalty per answer (<= 0): -penalty * (tokens past max_tokens - buffer) / buffer,
    so 0 up to max_tokens - buffer tokens and -penalty at max_tokens."""
    past = (lengths.to(torch.float32) - (max_tokens - buffer)).clamp(min=0)
    return -penalty * past / buffer + 0.0  # + 0.0: no -0.0 in the dumps


def informative_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per group, whether its rewards are not all equal (a group of equal rewards has zero advantages)."""
    groups = rewards.view(-1, group_size)
    return (groups != groups[:, :1]).any(-1)
