"""Distillation DPO: the policy's implied pair preference matched to a reward model's, as a pure function.

With h = (pi_c - ref_c) - (pi_r - ref_r) (summed answer log-probs of the policy and the reference):

    p = sigmoid(beta * h)          the policy's probability that the chosen answer is better
    q = sigmoid(r_c - r_r)         the reward model's (Bradley-Terry) probability of the same

the loss is the KL between the two Bernoulli distributions, KL(p || q) by default and KL(q || p) with
`forward_kl`:

    KL(a || b) = a (log a - log b) + (1 - a) (log(1 - a) - log(1 - b))

computed from log-sigmoids (log p = logsigmoid(beta h), log(1 - p) = logsigmoid(-beta h)), so it stays
finite where a probability rounds to 0 or 1. The reward model is frozen: q carries no gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from turbo.trainers.losses.dpo import PairLoss

Tensor = torch.Tensor


def bernoulli_kl(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """KL(Bernoulli(sigmoid(a)) || Bernoulli(sigmoid(b))), elementwise."""
    log_a, log_not_a = F.logsigmoid(logits_a), F.logsigmoid(-logits_a)
    log_b, log_not_b = F.logsigmoid(logits_b), F.logsigmoid(-logits_b)
    return log_a.exp() * (log_a - log_b) + log_not_a.exp() * (log_not_a - log_not_b)


def ddpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    rm_chosen: Tensor,
    rm_rejected: Tensor,
    *,
    beta: float = 0.1,
    forward_kl: bool = False,
) -> PairLoss:
    """Per-pair losses KL(p_policy || p_rm) (or KL(p_rm || p_policy) with forward_kl), all inputs [batch].

    rewards (for logging): beta * (pi - ref), as in DPO.
    """
    chosen, rejected = policy_chosen - reference_chosen, policy_rejected - reference_rejected
    policy_logits = beta * (chosen - rejected)
    rm_logits = (rm_chosen - rm_rejected).detach()
    losses = bernoulli_kl(*((rm_logits, policy_logits) if forward_kl else (policy_logits, rm_logits)))
    return PairLoss(losses, beta * chosen.detach(), beta * rejected.detach())
