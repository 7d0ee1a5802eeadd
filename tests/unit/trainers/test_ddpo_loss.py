"""The distillation-DPO loss against a hand computation."""

import math

import pytest
import torch

from turbo.trainers.losses.ddpo import ddpo_loss


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _kl(a: float, b: float) -> float:
    return a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b))


PAIRS = [  # pi_c, pi_r, ref_c, ref_r, r_c, r_r
    (-4.0, -6.0, -5.0, -5.5, 1.2, -0.3),
    (-10.0, -3.0, -9.0, -4.0, -0.5, 0.7),
    (-2.0, -2.0, -2.0, -2.0, 0.0, 0.0),
]


@pytest.mark.parametrize("forward_kl", [False, True])
def test_ddpo_loss_is_the_kl_between_the_two_bernoullis(forward_kl: bool) -> None:
    beta = 0.5
    columns = [torch.tensor(column, dtype=torch.float64) for column in zip(*PAIRS, strict=True)]
    result = ddpo_loss(*columns, beta=beta, forward_kl=forward_kl)
    expected = []
    for pi_c, pi_r, ref_c, ref_r, r_c, r_r in PAIRS:
        p_policy = _sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))
        p_rm = _sigmoid(r_c - r_r)
        expected.append(_kl(p_rm, p_policy) if forward_kl else _kl(p_policy, p_rm))
    assert result.losses.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # hand values of the first pair: h = 1.5, p = sigmoid(0.75) = 0.679179, q = sigmoid(1.5) = 0.817574
    if not forward_kl:
        assert result.losses[0].item() == pytest.approx(
            0.679179 * math.log(0.679179 / 0.817574) + 0.320821 * math.log(0.320821 / 0.182426), abs=1e-5
        )
    assert result.losses[2].item() == 0.0  # equal preferences: no loss
    assert result.chosen_rewards.tolist() == pytest.approx([beta * 1.0, beta * -1.0, 0.0])
    assert result.rejected_rewards.tolist() == pytest.approx([beta * -0.5, beta * 1.0, 0.0])


def test_ddpo_loss_pulls_the_policy_towards_the_reward_model_only() -> None:
    policy = torch.tensor([-3.0], requires_grad=True)
    rm_chosen = torch.tensor([2.0], requires_grad=True)
    zero = torch.zeros(1)
    loss = ddpo_loss(policy, zero - 3.0, zero, zero, rm_chosen, zero, beta=1.0).losses.sum()
    loss.backward()
    assert policy.grad is not None and policy.grad.item() < 0  # raising log pi_c lowers the loss
    assert rm_chosen.grad is None  # the reward model is frozen


def test_ddpo_loss_stays_finite_at_saturated_preferences() -> None:
    big = torch.tensor([400.0])
    zero = torch.zeros(1)
    for forward_kl in (False, True):
        loss = ddpo_loss(big, zero, zero, zero, zero, big, beta=1.0, forward_kl=forward_kl).losses
        assert torch.isfinite(loss).all() and loss.item() > 100
