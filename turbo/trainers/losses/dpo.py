"""DPO-family losses on pairs of answers, as pure functions of sequence log-probs.

Notation: pi_w, pi_l are the policy's log-probs of the chosen (w) and rejected (l) answers given the
prompt; ref_w, ref_l the reference model's. Each function takes tensors of shape [batch] and returns
a `PairLoss`: per-pair losses (the training loss is their mean), the implicit rewards of both answers
(detached, for logging) and named parts of compound losses. LOSSES maps each `loss_type` of the
settings to its function and to whether it reads log-probs summed over the answer tokens or averaged
over them; the trainer passes the tensors a function names (policy_*, reference_*, margin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


@dataclass
class PairLoss:
    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)


def _rewards(beta: float, chosen: Tensor, rejected: Tensor) -> tuple[Tensor, Tensor]:
    return beta * chosen.detach(), beta * rejected.detach()


def _logratios(
    policy_chosen: Tensor, policy_rejected: Tensor, reference_chosen: Tensor, reference_rejected: Tensor
) -> tuple[Tensor, Tensor]:
    return policy_chosen - reference_chosen, policy_rejected - reference_rejected


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -log 2 (Maechler 2012)."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def sigmoid_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> PairLoss:
    """DPO (Rafailov et al. 2023, arXiv:2305.18290); label smoothing is cDPO (Mitchell 2023).

    h = (pi_w - ref_w) - (pi_l - ref_l)
    L = -(1 - eps) * log sigmoid(beta * h) - eps * log sigmoid(-beta * h)
    rewards: beta * (pi - ref)
    """
    chosen, rejected = _logratios(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    logits = beta * (chosen - rejected)
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return PairLoss(losses, *_rewards(beta, chosen, rejected))


def sigmoid_with_margin_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    margin: Tensor,
    *,
    beta: float = 0.1,
) -> PairLoss:
    """DPO with an offset (ODPO, Amini et al. 2024, arXiv:2402.10571): the record's margin m.

    L = -log sigmoid(beta * h - m),   h as in `sigmoid_loss`
    """
    chosen, rejected = _logratios(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    losses = -F.logsigmoid(beta * (chosen - rejected) - margin)
    return PairLoss(losses, *_rewards(beta, chosen, rejected))


def hinge_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor | None = None,
    reference_rejected: Tensor | None = None,
    *,
    beta: float = 0.1,
    norm: bool = False,
) -> PairLoss:
    """Hinge loss on the log-ratio (SLiC, Zhao et al. 2023, arXiv:2305.10425).

    x = h (norm) or pi_w - pi_l (no norm)
    L = max(0, 1 - beta * x)
    """
    return _hinge(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta, norm, 1.0)


def _hinge(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor | None,
    reference_rejected: Tensor | None,
    beta: float,
    norm: bool,
    delta: float,
) -> PairLoss:
    if norm:
        if reference_chosen is None or reference_rejected is None:
            raise ValueError("norm: true needs reference log-probs")
        chosen, rejected = _logratios(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    else:
        chosen, rejected = policy_chosen, policy_rejected
    return PairLoss(torch.relu(delta - beta * (chosen - rejected)), *_rewards(beta, chosen, rejected))


def ipo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    *,
    beta: float = 0.1,
) -> PairLoss:
    """IPO (Azar et al. 2023, arXiv:2310.12036, eq. 17), on log-probs averaged over answer tokens.

    L = (h - 1 / (2 * beta)) ** 2
    """
    chosen, rejected = _logratios(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    losses = (chosen - rejected - 1 / (2 * beta)) ** 2
    return PairLoss(losses, *_rewards(beta, chosen, rejected))


def kto_pair_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    *,
    beta: float = 0.1,
) -> PairLoss:
    """Paired KTO (Ethayarajh et al. 2024, arXiv:2402.01306), with the batch KL estimates as
    reference points:

        r_w = pi_w - ref_w,  r_l = pi_l - ref_l
        z_w = max(0, mean(r_w)),  z_l = max(0, mean(r_l))        (detached)
        L = ([1 - sigmoid(beta * (r_w - z_l))] + [1 - sigmoid(beta * (z_w - r_l))]) / 2

    (the mean over the 2 * batch desirable and undesirable terms, as in the paper's paired form).
    """
    chosen, rejected = _logratios(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    chosen_kl = chosen.detach().mean().clamp(min=0)
    rejected_kl = rejected.detach().mean().clamp(min=0)
    desirable = 1 - torch.sigmoid(beta * (chosen - rejected_kl))
    undesirable = 1 - torch.sigmoid(beta * (chosen_kl - rejected))
    losses = (desirable + undesirable) / 2
    return PairLoss(losses, *_rewards(beta, chosen, rejected))


def slic_hf_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor | None = None,
    reference_rejected: Tensor | None = None,
    *,
    beta: float = 1.0,
    delta: float = 1.0,
    lam: float = 0.1,
    norm: bool = False,
) -> PairLoss:
    """SLiC-HF (Zhao et al. 2023, arXiv:2305.10425, eq. 1): a calibration hinge plus the NLL of the
    chosen answer as the regulariser.

        x = h (norm) or pi_w - pi_l (no norm)
        L = max(0, delta - beta * x) - lam * pi_w
    """
    hinge = _hinge(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta, norm, delta)
    nll = -policy_chosen
    return PairLoss(
        hinge.losses + lam * nll,
        hinge.chosen_rewards,
        hinge.rejected_rewards,
        {"hinge": hinge.losses.detach(), "nll": nll.detach()},
    )


def cpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor | None = None,
    reference_rejected: Tensor | None = None,
    *,
    beta: float = 0.1,
    norm: bool = False,
) -> PairLoss:
    """CPO (Xu et al. 2024, arXiv:2401.08417, eq. 6): a reference-free DPO term plus the NLL of the
    chosen answer.

        x = h (norm) or pi_w - pi_l (no norm)
        L = -log sigmoid(beta * x) - pi_w
    """
    if norm:
        if reference_chosen is None or reference_rejected is None:
            raise ValueError("norm: true needs reference log-probs")
        chosen, rejected = _logratios(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    else:
        chosen, rejected = policy_chosen, policy_rejected
    preference = -F.logsigmoid(beta * (chosen - rejected))
    nll = -policy_chosen
    return PairLoss(
        preference + nll,
        *_rewards(beta, chosen, rejected),
        {"preference": preference.detach(), "nll": nll.detach()},
    )


def orpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, *, beta: float = 0.1) -> PairLoss:
    """ORPO (Hong et al. 2024, arXiv:2403.07691, eqs. 4-7), on log-probs averaged over answer tokens.

    log odds(y) = pi(y) - log(1 - exp(pi(y)))
    L = -pi_w - beta * log sigmoid(log odds(y_w) - log odds(y_l))
    rewards: beta * pi
    """
    log_odds = (policy_chosen - policy_rejected) - (log1mexp(policy_chosen) - log1mexp(policy_rejected))
    odds_ratio = -F.logsigmoid(log_odds)
    nll = -policy_chosen
    return PairLoss(
        nll + beta * odds_ratio,
        *_rewards(beta, policy_chosen, policy_rejected),
        {"nll": nll.detach(), "odds_ratio": odds_ratio.detach(), "log_odds": log_odds.detach()},
    )


def simpo_loss(
    policy_chosen: Tensor, policy_rejected: Tensor, *, beta: float = 2.0, gamma: float = 1.0
) -> PairLoss:
    """SimPO (Meng et al. 2024, arXiv:2405.14734, eq. 6), on log-probs averaged over answer tokens.

    L = -log sigmoid(beta * (pi_w - pi_l) - gamma)
    rewards: beta * pi
    """
    losses = -F.logsigmoid(beta * (policy_chosen - policy_rejected) - gamma)
    return PairLoss(losses, *_rewards(beta, policy_chosen, policy_rejected))


def asft_loss(policy_chosen: Tensor, policy_rejected: Tensor, *, beta: float = 0.1) -> PairLoss:
    """ASFT (Wang et al. 2024, arXiv:2409.10571), on log-probs averaged over answer tokens: the NLL
    of the chosen answer plus a Bradley-Terry term on each answer's own log-odds.

        log odds(y) = pi(y) - log(1 - exp(pi(y)))
        L = -pi_w + beta * (-log sigmoid(log odds(y_w)) - log sigmoid(-log odds(y_l)))
    """
    chosen_odds = policy_chosen - log1mexp(policy_chosen)
    rejected_odds = policy_rejected - log1mexp(policy_rejected)
    alignment = -F.logsigmoid(chosen_odds) - F.logsigmoid(-rejected_odds)
    nll = -policy_chosen
    return PairLoss(
        nll + beta * alignment,
        *_rewards(beta, policy_chosen, policy_rejected),
        {"nll": nll.detach(), "alignment": alignment.detach()},
    )


def apo_zero_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    *,
    beta: float = 0.1,
) -> PairLoss:
    """APO-zero (D'Oosterlinck et al. 2024, arXiv:2408.06266, eq. 7): raise the chosen likelihood,
    lower the rejected one.

        L = (1 - sigmoid(beta * (pi_w - ref_w))) + sigmoid(beta * (pi_l - ref_l))
    """
    chosen, rejected = _logratios(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    losses = (1 - torch.sigmoid(beta * chosen)) + torch.sigmoid(beta * rejected)
    return PairLoss(losses, *_rewards(beta, chosen, rejected))


def apo_down_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    *,
    beta: float = 0.1,
) -> PairLoss:
    """APO-down (D'Oosterlinck et al. 2024, arXiv:2408.06266, eq. 8): lower both likelihoods, the
    rejected one more.

        L = sigmoid(beta * (pi_w - ref_w)) + (1 - sigmoid(beta * h))
    """
    chosen, rejected = _logratios(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    losses = torch.sigmoid(beta * chosen) + (1 - torch.sigmoid(beta * (chosen - rejected)))
    return PairLoss(losses, *_rewards(beta, chosen, rejected))


def dpop_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    *,
    beta: float = 0.1,
    lam: float = 50.0,
) -> PairLoss:
    """DPO-Positive (Pal et al. 2024, "Smaug", arXiv:2402.13228, eq. 3): DPO that also penalises the
    chosen likelihood falling below the reference's.

        L = -log sigmoid(beta * (h - lam * max(0, ref_w - pi_w)))
    """
    chosen, rejected = _logratios(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    penalty = torch.relu(-chosen)
    losses = -F.logsigmoid(beta * (chosen - rejected - lam * penalty))
    return PairLoss(losses, *_rewards(beta, chosen, rejected), {"penalty": penalty.detach()})


def nca_pair_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    *,
    beta: float = 0.1,
) -> PairLoss:
    """NCA for pairs (Chen et al. 2024, arXiv:2402.05369, eq. 12), with r = beta * (pi - ref):

    L = -log sigmoid(r_w) - 0.5 * log sigmoid(-r_w) - 0.5 * log sigmoid(-r_l)
    """
    chosen, rejected = _logratios(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    chosen_rewards, rejected_rewards = beta * chosen, beta * rejected
    losses = (
        -F.logsigmoid(chosen_rewards)
        - 0.5 * F.logsigmoid(-chosen_rewards)
        - 0.5 * F.logsigmoid(-rejected_rewards)
    )
    return PairLoss(losses, *_rewards(beta, chosen, rejected))


@dataclass(frozen=True)
class LossSpec:
    function: Callable[..., PairLoss]
    average_log_prob: bool  # log-probs averaged over the answer tokens (else summed)


LOSSES: dict[str, LossSpec] = {
    "sigmoid": LossSpec(sigmoid_loss, False),
    "sigmoid_with_margin": LossSpec(sigmoid_with_margin_loss, False),
    "hinge": LossSpec(hinge_loss, False),
    "ipo": LossSpec(ipo_loss, True),
    "kto": LossSpec(kto_pair_loss, False),
    "slic_hf": LossSpec(slic_hf_loss, False),
    "cpo": LossSpec(cpo_loss, False),
    "orpo": LossSpec(orpo_loss, True),
    "simpo": LossSpec(simpo_loss, True),
    "asft": LossSpec(asft_loss, True),
    "apo_zero": LossSpec(apo_zero_loss, False),
    "apo_down": LossSpec(apo_down_loss, False),
    "dpop": LossSpec(dpop_loss, False),
    "nca_pair": LossSpec(nca_pair_loss, False),
}
