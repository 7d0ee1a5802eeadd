"""Shared prompts (GRPO): a group's answers scored over one copy of their prompt give the log-probs,
entropies and gradients of each prompt + answer scored as its own row; the layout of that row; and the
pipeline's decision."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.unit.trainers.test_rollout_flat import rollout_of  # a rollout's rows as `collect` builds them
from turbo.data.shared_prompts import SharedPrompts
from turbo.modeling.varlen import matmul_attention, use_varlen_attention
from turbo.trainers.rollout import frozen_token_logps, policy_token_logps

# two groups of a rollout (prompt-major), answers of different lengths, and a third prompt
GROUPS = {
    (1, 40, 41, 42, 43, 44): [[50, 51], [52, 53, 54, 55], [56]],
    (1, 60): [[61, 62, 63, 64, 65, 66, 67], [68, 69]],
    (1, 70, 71, 72): [[73, 74, 75]],
}
SAMPLES = [(list(prompt), answer) for prompt, answers in GROUPS.items() for answer in answers]


def grouped_query_llama() -> torch.nn.Module:
    """A tiny random llama with grouped-query attention (4 query heads over 2 key/value heads)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config).float()


@pytest.fixture(scope="module", params=["llama_tiny", "grouped_query"])
def policy(request, fixture_models: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    if request.param == "grouped_query":
        model = grouped_query_llama()
    else:
        model = AutoModelForCausalLM.from_pretrained(fixture_models / "llama_tiny", dtype=torch.float32)
    assert use_varlen_attention(model)  # what train_grpo does when padding_free applies
    return model.eval()


def test_the_row_holds_each_prompt_once_with_its_answers_after_it() -> None:
    prompts = [[1, 2, 3], [4, 5], [1, 2, 3]]
    answers = [[7, 8], [6, 6, 6], [9]]
    shared = SharedPrompts.build(prompts, answers, "cpu")
    assert shared.input_ids.tolist() == [[1, 2, 3, 7, 8, 9, 4, 5, 6, 6, 6]]
    assert shared.position_ids.tolist() == [[0, 1, 2, 3, 4, 3, 0, 1, 2, 3, 4]]
    assert shared.answer_prompt.tolist() == [0, 1, 0]
    assert shared.answer_index.tolist() == [[3, 4, 4], [8, 9, 10], [5, 5, 5]]
    assert shared.answer_real.tolist() == [[True, True, False], [True, True, True], [True, False, False]]
    # the output before each answer token predicts it: the prompt's last token, then the answer's own
    assert shared.source.tolist() == [[2, 3, 4], [7, 8, 9], [2, 5, 5]]
    assert (shared.targets * shared.answer_real).tolist() == [[7, 8, 0], [6, 6, 6], [9, 0, 0]]
    # answer 1 (second prompt, 2 tokens padded to 3) sees its prompt, then itself causally
    assert shared.visible[1].int().tolist() == [[1, 1, 0, 1, 0, 0], [1, 1, 0, 1, 1, 0], [1, 1, 0, 1, 1, 1]]
    padded = torch.cat([shared.prompt_index.flatten(), shared.answer_index.flatten()])
    assert padded[shared.unpad].tolist() == list(range(11))  # each row position's padded place
    assert shared.unpad.tolist() == [0, 1, 2, 6, 7, 12, 3, 4, 9, 10, 11]


def scored(policy, rollout, rows: torch.Tensor, shared: bool, weights: torch.Tensor) -> tuple:
    policy.zero_grad(set_to_none=True)
    logps, entropy = policy_token_logps(policy, rollout, rows, entropy=True, flat=True, shared=shared)
    (logps * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in policy.named_parameters() if p.grad is not None}
    return logps.detach(), entropy, grads


@pytest.mark.parametrize("order", ["grouped", "shuffled"])
def test_shared_prompt_logps_entropy_and_gradients_equal_one_row_per_answer(policy, order: str) -> None:
    rollout = rollout_of(SAMPLES)
    rows = torch.arange(len(SAMPLES)) if order == "grouped" else torch.tensor([4, 0, 5, 2, 1, 3])
    width = int(rollout.lengths[rows].max())
    mask = torch.arange(width) < rollout.lengths[rows, None]
    weights = torch.randn(len(rows), width, generator=torch.Generator().manual_seed(0)) * mask  # as the loss
    apart, apart_entropy, apart_grads = scored(policy, rollout, rows, False, weights)
    shared, shared_entropy, shared_grads = scored(policy, rollout, rows, True, weights)
    assert shared.shape == apart.shape == (6, 7)
    torch.testing.assert_close(shared[mask], apart[mask], atol=1e-5, rtol=0)
    assert bool((shared[~mask] == 0).all()) and bool((shared[mask] < 0).all())
    torch.testing.assert_close(shared_entropy[mask], apart_entropy[mask], atol=1e-5, rtol=0)
    assert shared_grads.keys() == apart_grads.keys() and len(apart_grads) == len(list(policy.parameters()))
    for name, grad in apart_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    policy.zero_grad(set_to_none=True)


def test_frozen_logps_with_shared_prompts_equal_one_row_per_answer(policy) -> None:
    rollout = rollout_of(SAMPLES)
    apart = frozen_token_logps(policy, rollout, chunk=4, reference=False, flat=True)
    shared = frozen_token_logps(policy, rollout, chunk=4, reference=False, flat=True, shared=True)
    mask = torch.arange(apart.shape[1]) < rollout.lengths[:, None]
    torch.testing.assert_close(shared[mask], apart[mask], atol=1e-5, rtol=0)
    assert rollout.old_logps_seconds > 0


@pytest.mark.parametrize("shared", [True, False])
def test_the_models_own_output_layer_projects_no_position(policy, shared: bool) -> None:
    """Only the chunked head projects hidden states onto the vocabulary: the model's lm_head runs on
    no position (logits_to_keep=1 would project one, after copying the transposed weight)."""
    rows: list[int] = []
    hook = policy.get_output_embeddings().register_forward_hook(
        lambda module, args, output: rows.append(args[0].shape[-2])
    )
    try:
        rollout = rollout_of(SAMPLES)
        logps, _ = policy_token_logps(policy, rollout, torch.arange(len(SAMPLES)), flat=True, shared=shared)
    finally:
        hook.remove()
    assert rows == [0]
    assert bool((logps[0, : len(GROUPS[(1, 40, 41, 42, 43, 44)][0])] < 0).all())  # the answer still scored


def test_matmul_attention_with_a_mask_equals_sdpa() -> None:
    """The trained bfloat16 path of the answers' attention (matmul_attention with a bias) against SDPA."""
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(3, 4, 5, 8, generator=generator)
    key, value = (torch.randn(3, 2, 9, 8, generator=generator) for _ in range(2))
    visible = torch.rand(3, 5, 9, generator=generator) > 0.4
    visible[..., 0] = True  # every query sees a key
    bias = torch.zeros(visible.shape).masked_fill_(~visible, float("-inf"))
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=visible[:, None], scale=0.3, enable_gqa=True
    )
    torch.testing.assert_close(matmul_attention(query, key, value, 0.3, bias), expected, atol=1e-5, rtol=0)


def test_bfloat16_shared_prompt_steps_stay_near_float32(fixture_models: Path) -> None:
    """In bfloat16 with gradients (matmul_attention) the shared log-probs stay near float32's."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(fixture_models / "llama_tiny", dtype=torch.float32)
    assert use_varlen_attention(model)
    rollout = rollout_of(SAMPLES)
    rows = torch.arange(len(SAMPLES))
    expected, _ = policy_token_logps(model, rollout, rows, flat=True, shared=True)
    logps, _ = policy_token_logps(model.to(torch.bfloat16), rollout, rows, flat=True, shared=True)
    assert logps.requires_grad
    torch.testing.assert_close(logps, expected, atol=0.05, rtol=0)


def test_shared_prompts_are_scored_only_where_every_model_runs_turbo_varlen(fixture_models: Path) -> None:
    from transformers import AutoModelForCausalLM

    from turbo.trainers.logps import scores_shared_prompts

    policy = AutoModelForCausalLM.from_pretrained(fixture_models / "llama_tiny", attn_implementation="sdpa")
    assert not scores_shared_prompts(policy)  # sdpa: padding_free switches it to turbo_varlen first
    assert use_varlen_attention(policy)
    assert scores_shared_prompts(policy, None)
    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    assert not scores_shared_prompts(policy, flash)


def test_dpo_pairs_with_shared_prompts_score_as_padding_free_rows(policy) -> None:
    """train_dpo's collator: a pair's prompt once, its chosen and rejected answers after it; the summed
    answer log-probs (chosen rows, then rejected), their counts and gradients equal the padding-free
    batch's, and the reference's precomputed sums too."""
    from turbo.data.pair_preferences import PairCollator
    from turbo.trainers.logps import answer_logps, precompute_reference_logps

    features = [
        {"prompt_ids": [1, 40, 41, 42], "chosen_ids": [50, 51, 2], "rejected_ids": [52, 2]},
        {"prompt_ids": [1, 60], "chosen_ids": [61, 62, 63, 64, 2], "rejected_ids": [65, 66, 2]},
    ]
    results = {}
    for shared in (False, True):
        policy.zero_grad(set_to_none=True)
        batch = PairCollator(3, flat=True, shared=shared)(features)
        assert ("shared_prompts" in batch) == shared
        scores = answer_logps(policy, batch)
        scores.sums.sum().backward()
        grads = {name: p.grad.clone() for name, p in policy.named_parameters() if p.grad is not None}
        with torch.no_grad():
            reference = precompute_reference_logps(
                features, policy, PairCollator(3, flat=True, shared=shared), 2, False,
                {"": ("ref_chosen_logps", "ref_rejected_logps")},
            )  # fmt: skip
        results[shared] = scores, grads, reference
    (flat, flat_grads, flat_ref), (shared, shared_grads, shared_ref) = results[False], results[True]
    assert shared.counts.tolist() == flat.counts.tolist() == [3, 5, 2, 3]
    torch.testing.assert_close(shared.sums, flat.sums, atol=1e-5, rtol=0)
    torch.testing.assert_close(shared.mean_logits, flat.mean_logits, atol=1e-5, rtol=0)
    for name, grad in flat_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    for got, expected in zip(shared_ref, flat_ref, strict=True):
        assert got["ref_chosen_logps"] == pytest.approx(expected["ref_chosen_logps"], abs=1e-5)
        assert got["ref_rejected_logps"] == pytest.approx(expected["ref_rejected_logps"], abs=1e-5)
    policy.zero_grad(set_to_none=True)


def test_a_sharded_output_layer_scores_through_its_head_module(policy, monkeypatch) -> None:
    """Under ZeRO-3 the output weight is a shard (output_weight None): the head module computes the
    logits (DeepSpeed gathers its weight); the same log-probs, entropies and gradients."""
    import turbo.trainers.logps as logps_module

    rollout = rollout_of(SAMPLES)
    rows = torch.tensor([4, 0, 5, 2, 1, 3])
    mask = torch.arange(7) < rollout.lengths[rows, None]
    weights = torch.randn(6, 7, generator=torch.Generator().manual_seed(1)) * mask
    plain = scored(policy, rollout, rows, True, weights)
    monkeypatch.setattr(logps_module, "output_weight", lambda model: None)
    sharded = scored(policy, rollout, rows, True, weights)
    torch.testing.assert_close(sharded[0], plain[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(sharded[1][mask], plain[1][mask], atol=1e-5, rtol=0)
    for name, grad in plain[2].items():
        torch.testing.assert_close(sharded[2][name], grad, atol=1e-5, rtol=1e-4, msg=name)
    policy.zero_grad(set_to_none=True)
