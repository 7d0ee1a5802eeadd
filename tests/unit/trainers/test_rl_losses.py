"""PPO and GRPO losses and advantages against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from turbo.trainers.losses.grpo import aggregate, clipped_ratio_loss, group_advantages, grpo_loss, k3_kl
from turbo.trainers.losses.ppo import (
    gae,
    kl_penalised_rewards,
    masked_whiten,
    policy_loss,
    ppo_loss,
    value_loss,
)


def test_gae_on_a_fixed_trajectory() -> None:
    # one answer of 3 tokens (then padding), gamma 0.9, lambda 0.8
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.4, 0.3, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    d2 = 1.0 + 0.9 * 0.0 - 0.3  # the value after the last token is 0
    d1 = 0.0 + 0.9 * 0.3 - 0.4
    d0 = 0.0 + 0.9 * 0.4 - 0.5
    a2 = d2
    a1 = d1 + 0.9 * 0.8 * a2
    a0 = d0 + 0.9 * 0.8 * a1
    assert advantages.tolist()[0][:3] == pytest.approx([a0, a1, a2])
    assert advantages[0, 3] == 0  # padding neither gets nor gives advantage
    assert returns.tolist()[0][:3] == pytest.approx([a0 + 0.5, a1 + 0.4, a2 + 0.3])


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value() -> None:
    rewards = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    values = torch.tensor([[0.5, 0.25, 0.0], [1.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert returns[0].tolist() == pytest.approx([6.0, 5.0, 3.0])
    assert advantages[0].tolist() == pytest.approx([5.5, 4.75, 3.0])
    assert advantages[1].tolist() == pytest.approx([3.0, 0.0, 0.0])


def test_kl_penalty_per_token_and_score_at_the_last_answer_token() -> None:
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -3.0], [-2.0, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards, kl = kl_penalised_rewards(torch.tensor([2.0, -1.0]), logps, ref, mask, kl_coef=0.1)
    assert kl.flatten().tolist() == pytest.approx([0.5, -1.0, 0.0, 1.0, 0.0, 0.0])
    assert rewards.flatten().tolist() == pytest.approx([-0.05, 0.1, 2.0, -0.1, -1.0, 0.0])


def test_masked_whiten() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    whitened = masked_whiten(values, mask)
    # mean 2, unbiased variance 1
    assert whitened[0, :3].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-6)
    assert masked_whiten(values, mask, shift_mean=False)[0, :3].tolist() == pytest.approx(
        [1.0, 2.0, 3.0], abs=1e-6
    )


def test_ppo_clipped_policy_loss() -> None:
    old = torch.zeros(1, 3)
    logps = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))  # ratios 1.5, 0.5, 1.1
    advantages = torch.tensor([[1.0, 1.0, -2.0]])
    mask = torch.ones(1, 3)
    loss, clipped = policy_loss(logps, old, advantages, mask, cliprange=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(-0.5, -0.8) = -0.5; token 2: max(2.2, 2.2) = 2.2
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 2.2) / 3)
    assert clipped.item() == pytest.approx(1 / 3)


def test_ppo_clipped_value_loss_and_total() -> None:
    values = torch.tensor([[1.0, 0.0]])
    old_values = torch.tensor([[0.5, 0.0]])
    returns = torch.tensor([[2.0, 1.0]])
    mask = torch.tensor([[1, 1]])
    loss, clipped = value_loss(values, old_values, returns, mask, cliprange=0.2)
    # token 0: V_clip = 0.7: max(1, 1.69) = 1.69; token 1: max(1, 1) = 1
    assert loss.item() == pytest.approx(0.5 * (1.69 + 1.0) / 2)
    assert clipped.item() == pytest.approx(0.5)
    logps = torch.zeros(1, 2)
    total = ppo_loss(
        logps,
        logps,
        values,
        old_values,
        torch.ones(1, 2),
        returns,
        mask,
        cliprange=0.2,
        cliprange_value=0.2,
        vf_coef=0.5,
    )
    assert total.loss.item() == pytest.approx(-1.0 + 0.5 * loss.item())
    halves = [
        ppo_loss(
            logps[:, :1],
            logps[:, :1],
            values[:, i : i + 1],
            old_values[:, i : i + 1],
            torch.ones(1, 1),
            returns[:, i : i + 1],
            mask[:, i : i + 1],
            cliprange=0.2,
            cliprange_value=0.2,
            vf_coef=0.5,
            count=2,
        ).loss.item()
        for i in range(2)
    ]
    assert sum(halves) == pytest.approx(total.loss.item())  # split passes add up to the whole


def test_group_normalisation() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    advantages = group_advantages(rewards, group_size=3, eps=0.0 + 1e-4)
    std = 1.0  # unbiased std of 1, 2, 3
    assert advantages[:3].tolist() == pytest.approx([-1 / (std + 1e-4), 0.0, 1 / (std + 1e-4)])
    assert advantages[3:].tolist() == [0.0, 0.0, 0.0]  # a group with equal rewards teaches nothing
    centred = group_advantages(rewards, group_size=3, scale=False)
    assert centred.tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0])


def test_k3_kl() -> None:
    logps = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-2.0, -2.0])
    assert k3_kl(logps, ref).tolist() == pytest.approx([math.exp(-1) + 1 - 1, 0.0])


def test_clipped_ratio_with_clip_higher() -> None:
    old = torch.zeros(2, 1)
    logps = torch.log(torch.tensor([[1.5], [0.5]]))
    loss, clipped = clipped_ratio_loss(logps, old, torch.tensor([1.0, -1.0]), 0.2, 0.28)
    # answer 0: -min(1.5, 1.28) = -1.28 (clipped high); answer 1: -min(-0.5, -0.8) = 0.8 (clipped low)
    assert loss.flatten().tolist() == pytest.approx([-1.28, 0.8])
    assert clipped.flatten().tolist() == [True, True]


PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [
        ("grpo", ((1 + 2 + 3) / 3 + 4 / 1) / 2),  # mean per answer, then over answers
        ("dr_grpo", (1 + 2 + 3 + 4) / (2 * 8)),  # sum / (answers * max_new_tokens)
        ("dapo", (1 + 2 + 3 + 4) / 4),  # sum / tokens
    ],
)
def test_each_grpo_aggregation(loss_type: str, expected: float) -> None:
    assert aggregate(PER_TOKEN, MASK, loss_type, max_tokens=8).item() == pytest.approx(expected)
    # split into two passes normalised over the whole batch, the parts add up to the whole
    parts = [
        aggregate(PER_TOKEN[i : i + 1], MASK[i : i + 1], loss_type, max_tokens=8, answers=2, tokens=4).item()
        for i in range(2)
    ]
    assert sum(parts) == pytest.approx(expected)


def test_grpo_loss_on_policy_is_minus_the_mean_advantage_plus_beta_kl() -> None:
    logps = torch.tensor([[-1.0, -1.0], [-2.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-1.0, -2.0], [-2.0, -2.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    advantages = torch.tensor([1.0, -1.0])
    result = grpo_loss(
        logps,
        logps.detach(),
        ref,
        advantages,
        mask,
        loss_type="dapo",
        epsilon=0.2,
        epsilon_high=None,
        beta=0.5,
        max_tokens=2,
    )
    kl = math.exp(-1) + 1 - 1  # token (0, 1): delta -1
    assert result.policy_loss.item() == pytest.approx((-1 - 1 + 1) / 3)
    assert result.kl.item() == pytest.approx(kl / 3)
    assert result.loss.item() == pytest.approx((-1 - 1 + 1) / 3 + 0.5 * kl / 3)
    assert result.clip_fraction.item() == 0.0
    result.loss.backward()
    # d/dlogp of -ratio * A at ratio 1 is -A (/ 3 tokens), plus beta * d k3 = beta * (1 - exp(ref - logp))
    expected = [-1 / 3, (-1 + 0.5 * (1 - math.exp(-1))) / 3, 1 / 3, 0.0]
    assert logps.grad.flatten().tolist() == pytest.approx(expected)
    no_reference = grpo_loss(
        logps,
        logps.detach(),
        None,
        advantages,
        mask,
        loss_type="dapo",
        epsilon=0.2,
        epsilon_high=None,
        beta=0.0,
        max_tokens=2,
    )
    assert no_reference.kl.item() == 0.0
