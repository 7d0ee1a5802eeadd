"""PPO with tools: the score lands on the policy's last token and GAE runs over the policy's tokens only,
as over the same answer with its tool results taken out (policy_tokens_first packs them in order)."""

from __future__ import annotations

import torch

from turbo.trainers.losses.ppo import gae, kl_penalised_rewards
from turbo.trainers.rollout import policy_tokens_first


def test_policy_tokens_first_keeps_their_order_and_is_the_identity_without_tools() -> None:
    mask = torch.tensor([[True, True, False, False, True, False], [True, True, True, False, False, False]])
    assert policy_tokens_first(mask).tolist() == [[0, 1, 4, 2, 3, 5], [0, 1, 2, 3, 4, 5]]


def test_gae_over_packed_policy_tokens_equals_gae_without_the_tool_tokens() -> None:
    generator = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True, True, False, False, True, True, False]])
    logps, ref, values = (torch.randn(1, 7, generator=generator) for _ in range(3))
    score = torch.tensor([1.5])
    order = policy_tokens_first(mask)
    packed = [torch.gather(tensor, 1, order) for tensor in (logps, ref, values)]
    packed_mask = torch.gather(mask, 1, order)
    rewards, _ = kl_penalised_rewards(score, packed[0], packed[1], packed_mask, 0.1)
    advantages, _ = gae(rewards, packed[2], packed_mask, 1.0, 0.95)
    advantages = torch.zeros_like(advantages).scatter(1, order, advantages)
    # the same answer without its tool tokens
    keep = mask[0]
    plain_rewards, _ = kl_penalised_rewards(score, logps[:, keep], ref[:, keep], mask[:, keep], 0.1)
    plain, _ = gae(plain_rewards, values[:, keep], mask[:, keep], 1.0, 0.95)
    assert torch.allclose(advantages[:, keep], plain)
    assert (advantages[:, ~keep] == 0).all()
    assert plain_rewards[0, -1] > 1.0  # the score sits on the policy's last token
