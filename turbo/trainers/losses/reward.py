"""The pairwise reward-model loss (Bradley-Terry; Ouyang et al. 2022, "Training language models to
follow instructions with human feedback", arXiv:2203.02155, eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_reward_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """Per-pair losses: L = -log sigmoid(r_w - r_l), for the scalar rewards r of both answers: [batch]."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards)
