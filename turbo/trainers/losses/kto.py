"""The KTO loss (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization",
arXiv:2402.01306), for unpaired desirable / undesirable answers."""

from __future__ import annotations

import torch


def kto_loss(
    policy_logps: torch.Tensor,
    reference_logps: torch.Tensor,
    is_desirable: torch.Tensor,
    kl: torch.Tensor,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example KTO losses and rewards.

    With the log-ratio of an answer y to its prompt x, r(x, y) = log pi(y|x) - log pi_ref(y|x),
    and the reference point z = max(0, KL estimate) (detached; estimated from mismatched pairs):

        desirable:    L = desirable_weight   * (1 - sigmoid(beta * (r - z)))
        undesirable:  L = undesirable_weight * (1 - sigmoid(beta * (z - r)))

    The training loss is the mean of L over the batch. The reward of an answer is beta * r (detached).

    policy_logps, reference_logps: [batch] summed log-probs of the answers; is_desirable: [batch] bool;
    kl: scalar, the mean of the same log-ratio over prompts paired with other prompts' answers.
    Returns (losses [batch], rewards [batch]).
    """
    logratios = policy_logps - reference_logps
    z = kl.detach().clamp(min=0)
    desirable = is_desirable.bool()
    desirable_losses = desirable_weight * (1 - torch.sigmoid(beta * (logratios - z)))
    undesirable_losses = undesirable_weight * (1 - torch.sigmoid(beta * (z - logratios)))
    losses = torch.where(desirable, desirable_losses, undesirable_losses)
    return losses, beta * logratios.detach()
