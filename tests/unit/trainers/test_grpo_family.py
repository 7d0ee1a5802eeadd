"""The GRPO family's pure functions against hand computations and against TRL 1.16 on the same tensors:
loss types (grpo, dr_grpo, dapo, bnpo, cispo) at the token and sequence level through TRL's own
GRPOTrainer._compute_loss (a stub trainer feeding it fixed log-probs), advantages, rollout correction
weights, the overlong penalty (TRL's get_soft_overlong_punishment), dynamic sampling's group filter."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from trl import GRPOTrainer
from trl.rewards import get_soft_overlong_punishment

from turbo.trainers.losses.advantages import (
    advantages,
    informative_groups,
    overlong_penalty,
    reinforce_pp_advantages,
    rloo_advantages,
)
from turbo.trainers.losses.correction import correction_weights, pad_rows
from turbo.trainers.losses.grpo import (
    aggregate,
    cispo_loss,
    clipped_ratio_loss,
    grpo_loss,
    log_importance_weights,
)

TOL = {"atol": 1e-6, "rtol": 1e-6}
PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])


# ----------------------------------------------------------------------------- hand computations


def test_bnpo_normalises_each_forward_pass_by_its_own_tokens() -> None:
    assert aggregate(PER_TOKEN, MASK, "bnpo", max_tokens=8).item() == pytest.approx(10 / 4)  # one pass: dapo
    parts = [
        aggregate(PER_TOKEN[i : i + 1], MASK[i : i + 1], "bnpo", max_tokens=8, answers=2, tokens=4).item()
        for i in range(2)
    ]
    # each pass: its sum / its tokens, times its share of the mini-batch's answers (TRL's local batch)
    assert parts == pytest.approx([6 / 3 / 2, 4 / 1 / 2])
    assert aggregate(PER_TOKEN, MASK, "cispo", max_tokens=8).item() == pytest.approx(10 / 4)


def test_sequence_level_ratio_is_the_geometric_mean_of_the_token_ratios() -> None:
    logps = torch.log(torch.tensor([[1.5, 0.5, 2.0, 9.0], [1.1, 7.0, 7.0, 7.0]]))
    old = torch.zeros(2, 4)
    log_weights = log_importance_weights(logps, old, MASK, "sequence")
    geometric = [(1.5 * 0.5 * 2.0) ** (1 / 3), 1.1]  # padding (9.0, 7.0) is not counted
    assert log_weights.exp().flatten().tolist() == pytest.approx(geometric)
    loss, clipped = clipped_ratio_loss(logps, old, torch.tensor([1.0, -1.0]), 0.2, 0.2, MASK, "sequence")
    # answer 0: ratio 1.1447, inside the clip; answer 1: ratio 1.1 -> -min(-1.1, -1.1)
    assert loss[0].tolist() == pytest.approx([-geometric[0]] * 4)
    assert loss[1].tolist() == pytest.approx([1.1] * 4)
    assert not clipped.any()
    loss, clipped = clipped_ratio_loss(logps, old, torch.tensor([1.0, -1.0]), 0.05, 0.05, MASK, "sequence")
    assert loss[:, 0].tolist() == pytest.approx([-1.05, 1.1])  # answer 0 clipped at 1.05 as one
    assert clipped[:, 0].tolist() == [True, False]


def test_cispo_weights_are_capped_and_detached_and_every_token_gets_a_gradient() -> None:
    logps = torch.log(torch.tensor([[0.5, 0.25]])).requires_grad_(True)
    old = torch.log(torch.tensor([[0.1, 0.25]]))  # ratios 5 and 1
    loss, capped = cispo_loss(logps, old, torch.tensor([2.0]), cap=3.0)
    expected = [-3.0 * 2.0 * math.log(0.5), -1.0 * 2.0 * math.log(0.25)]
    assert loss.flatten().tolist() == pytest.approx(expected)
    assert capped.flatten().tolist() == [True, False]
    loss.sum().backward()
    assert logps.grad.flatten().tolist() == pytest.approx([-3.0 * 2.0, -1.0 * 2.0])  # -sg(w) * A


def test_grpo_loss_reads_the_correction_weights_before_the_kl() -> None:
    logps = torch.tensor([[-1.0, -1.0]])
    ref = torch.tensor([[-1.0, -2.0]])
    weights = torch.tensor([[0.5, 2.0]])
    result = grpo_loss(
        logps, logps, ref, torch.tensor([1.0]), torch.ones(1, 2), loss_type="dapo", epsilon=0.2,
        epsilon_high=None, beta=0.5, max_tokens=2, weights=weights,
    )  # fmt: skip
    kl = math.exp(-1) + 1 - 1
    assert result.loss.item() == pytest.approx((-0.5 - 2.0 + 0.5 * kl) / 2)
    assert result.policy_loss.item() == pytest.approx((-0.5 - 2.0) / 2)


def test_advantage_estimators_by_hand() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 0.0, 0.0])
    # rloo: r - mean of the other three of its group
    assert rloo_advantages(rewards, 4).tolist() == pytest.approx(
        [1 - 11 / 3, 2 - 10 / 3, 3 - 3, 6 - 2, 0, 0, 0, 0]
    )
    # reinforce_pp: group-centred (-2, -1, 0, 3, 0, 0, 0, 0) over the std of the whole rollout
    centred = torch.tensor([-2.0, -1.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0])
    std = math.sqrt(sum(value**2 for value in centred.tolist()) / 7)
    assert reinforce_pp_advantages(rewards, 4).tolist() == pytest.approx(
        (centred / (std + 1e-4)).tolist(), abs=1e-6
    )
    assert advantages(rewards, 4, "group", scale=False).tolist() == pytest.approx(centred.tolist())


def test_correction_weights_of_a_sampler_shifted_by_a_known_amount() -> None:
    train = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    shift = torch.tensor([[0.5, -0.2, 1.0], [0.1, 0.1, 0.0]])  # sampler = train - shift
    sampler = (train - shift) * mask
    token = correction_weights(train, sampler, mask, "token", "truncate", cap=2.0)
    expected = [[min(math.exp(s), 2.0) for s in row] for row in shift.tolist()]
    assert token.weights[0].tolist() == pytest.approx(expected[0])
    assert token.weights[1, :2].tolist() == pytest.approx(expected[1][:2])
    assert token.truncated_fraction == pytest.approx(1 / 5)  # exp(1.0) > 2
    assert token.weight_mean == pytest.approx((sum(expected[0]) + sum(expected[1][:2])) / 5)
    masked = correction_weights(train, sampler, mask, "token", "mask", cap=2.0)
    assert masked.weights[0].tolist() == pytest.approx([math.exp(0.5), math.exp(-0.2), 0.0])
    assert masked.masked_fraction == pytest.approx(1 / 5) and masked.truncated_fraction == 0.0
    sequence = correction_weights(train, sampler, mask, "sequence", "truncate", cap=2.0)
    assert sequence.weights.flatten().tolist() == pytest.approx([min(math.exp(1.3), 2.0), math.exp(0.2)])
    same = correction_weights(train, train * mask, mask, "sequence", "mask", cap=2.0)
    assert same.weights.flatten().tolist() == [1.0, 1.0] and same.weight_mean == 1.0  # identical engines


def test_pad_rows() -> None:
    assert pad_rows([[-1.0, -2.0], [-3.0], []], 3).tolist() == [[-1, -2, 0], [-3, 0, 0], [0, 0, 0]]


def test_overlong_penalty_matches_trl_soft_overlong_punishment() -> None:
    lengths = torch.tensor([10, 12, 13, 15, 16])
    ours = overlong_penalty(lengths, max_tokens=16, buffer=4, penalty=1.0)
    assert ours.tolist() == pytest.approx([0.0, 0.0, -0.25, -0.75, -1.0])
    trl = get_soft_overlong_punishment(max_completion_len=16, soft_punish_cache=4)
    assert ours.tolist() == pytest.approx(trl([[1] * int(n) for n in lengths]), abs=1e-6)
    assert overlong_penalty(lengths, 16, 4, penalty=0.5).tolist() == pytest.approx(
        [0, 0, -0.125, -0.375, -0.5]
    )


def test_informative_groups() -> None:
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 2.0, 2.0, -1.0, 0.5, 0.5])
    assert informative_groups(rewards, 3).tolist() == [False, True, True]


# ----------------------------------------------------------------------------- TRL on the same tensors


def trl_grpo_loss(
    loss_type: str, level: str, logps: torch.Tensor, old: torch.Tensor, ref: torch.Tensor,
    advantages: torch.Tensor, mask: torch.Tensor, *, epsilon: float, epsilon_high: float, beta: float,
    max_tokens: int, is_ratio: torch.Tensor | None,
) -> torch.Tensor:  # fmt: skip
    """TRL's GRPOTrainer._compute_loss on fixed per-token log-probs (a stub trainer whose forward returns
    them): one process, no gradient accumulation, steps_per_generation 1."""
    entropies = torch.zeros_like(logps)
    accelerator = SimpleNamespace(
        num_processes=1, gather=lambda x: x, reduce=lambda x, reduction: x, sync_gradients=True
    )
    stub = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *args, **kwargs: (logps, entropies, None),
        aux_loss_enabled=False, top_entropy_quantile=1.0, off_policy_mask_threshold=None,
        importance_sampling_level=level, beta=beta, loss_type=loss_type, epsilon_low=epsilon,
        epsilon_high=epsilon_high, use_vllm=is_ratio is not None,
        vllm_importance_sampling_correction=is_ratio is not None, model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, max_completion_length=max_tokens, accelerator=accelerator,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        _entropy_bonus_enabled=False, _metrics={"train": defaultdict(list)},
    )  # fmt: skip
    rows, width = logps.shape
    inputs = {
        "prompt_ids": torch.zeros(rows, 1, dtype=torch.long),
        "prompt_mask": torch.ones(rows, 1, dtype=torch.long),
        "completion_ids": torch.zeros(rows, width, dtype=torch.long),
        "completion_mask": mask,
        "advantages": advantages,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum(),
        "importance_sampling_ratio": is_ratio,
    }
    return GRPOTrainer._compute_loss(stub, None, inputs)


def fixed_tensors(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logps = -torch.rand(6, 5, generator=generator, dtype=torch.float64) * 3
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]] * 2)
    return {
        "logps": logps,
        "old": (logps + torch.randn(6, 5, generator=generator, dtype=torch.float64) * 0.3) * mask,
        "ref": (logps + torch.randn(6, 5, generator=generator, dtype=torch.float64) * 0.3) * mask,
        "advantages": torch.randn(6, generator=generator, dtype=torch.float64),
        "mask": mask,
    }


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo", "bnpo", "cispo"])
@pytest.mark.parametrize("corrected", [False, True])
def test_loss_and_gradient_match_trl(loss_type: str, level: str, corrected: bool) -> None:
    t = fixed_tensors(3)
    weights = torch.rand(6, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 2
    weights = weights if corrected else None
    epsilon, epsilon_high, beta = 0.2, 0.28, 0.04
    ours_logps = t["logps"].clone().requires_grad_(True)
    ours = grpo_loss(
        ours_logps, t["old"], t["ref"], t["advantages"], t["mask"], loss_type=loss_type, epsilon=epsilon,
        epsilon_high=epsilon_high, beta=beta, max_tokens=5, level=level, weights=weights,
    ).loss  # fmt: skip
    ours.backward()
    trl_logps = t["logps"].clone().requires_grad_(True)
    # TRL's cispo caps the ratio at epsilon_high itself; turbo caps it at 1 + epsilon_high (as its clip)
    theirs = trl_grpo_loss(
        loss_type, level, trl_logps, t["old"], t["ref"], t["advantages"], t["mask"], epsilon=epsilon,
        epsilon_high=1 + epsilon_high if loss_type == "cispo" else epsilon_high, beta=beta, max_tokens=5,
        is_ratio=weights,
    )  # fmt: skip
    theirs.backward()
    torch.testing.assert_close(ours, theirs, **TOL)
    torch.testing.assert_close(ours_logps.grad, trl_logps.grad, **TOL)


def trl_is_ratio(train: torch.Tensor, sampler: torch.Tensor, mask: torch.Tensor, mode: str, cap: float):
    """TRL 1.16 GRPOTrainer._generate_and_score_completions' vLLM importance-sampling ratio (with
    vllm_importance_sampling_clip_min None), copied from its source: it is reachable only inside a full
    generation step, not as a function of tensors."""
    diff = torch.nan_to_num((train - sampler) * mask, nan=0.0)
    if mode.startswith("sequence"):
        diff = diff.sum(dim=-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode.endswith("truncate"):
        return torch.clamp(ratio, min=None, max=cap)
    return ratio.masked_fill((ratio < -math.inf) | (ratio > cap), value=0.0)


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("mode", ["truncate", "mask"])
def test_correction_weights_match_trl(level: str, mode: str) -> None:
    t = fixed_tensors(5)
    ours = correction_weights(t["logps"], t["old"], t["mask"], level, mode, cap=1.3)
    theirs = trl_is_ratio(t["logps"], t["old"], t["mask"], f"{level}_{mode}", 1.3)
    keep = t["mask"] if level == "token" else torch.ones(6, 1)  # TRL leaves 1 at padding, turbo exp(0) too
    torch.testing.assert_close(ours.weights * keep, theirs * keep, **TOL)


def trl_group_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: str) -> torch.Tensor:
    """TRL 1.16 GRPOTrainer's advantages (sum_then_normalize), copied from _generate_and_score_completions."""
    mean = rewards.view(-1, group_size).mean(dim=1).repeat_interleave(group_size, dim=0)
    std = rewards.view(-1, group_size).std(dim=1).repeat_interleave(group_size, dim=0)
    out = rewards - mean
    return out if scale_rewards == "none" else out / (std + 1e-4)


def trl_rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """TRL 1.16 RLOOTrainer's advantages (normalize_advantages False), copied from its source."""
    grouped = rewards.view(-1, group_size)
    baselines = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    return rewards - baselines.view(-1)


def test_advantages_match_trl() -> None:
    rewards = torch.randn(24, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(
        advantages(rewards, 6, "group"), trl_group_advantages(rewards, 6, "group"), **TOL
    )
    torch.testing.assert_close(
        advantages(rewards, 6, "group", scale=False), trl_group_advantages(rewards, 6, "none"), **TOL
    )
    torch.testing.assert_close(advantages(rewards, 6, "rloo"), trl_rloo_advantages(rewards, 6), **TOL)
