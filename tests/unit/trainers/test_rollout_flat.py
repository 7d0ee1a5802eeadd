"""Padding-free scoring of rollouts: the answers' per-token log-probs, entropies, values and gradients
in one row without padding equal those of the padded rows, on the tiny fixture llama."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from turbo.labels import IGNORE_INDEX
from turbo.modeling.varlen import NAME, use_varlen_attention
from turbo.trainers.logps import answer_rows, output_weight, token_logps
from turbo.trainers.rollout import Rollout, flatten, frozen_token_logps, policy_token_logps, unflatten

# (prompt, answer) token ids of different lengths, as a rollout's rows (prompt-major)
SAMPLES = [
    ([1, 40, 41, 42, 43, 44], [50, 51]),
    ([1, 60], [61, 62, 63, 64, 65, 66, 67]),
    ([1, 70, 71], [72]),
    ([1, 80, 81, 82], [83, 84, 85, 86]),
]


def load(path: Path, seq_cls: bool = False) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForSequenceClassification if seq_cls else AutoModelForCausalLM
    model = auto.from_pretrained(path, dtype=torch.float32, **({"num_labels": 1} if seq_cls else {}))
    assert use_varlen_attention(model)  # what train_grpo and train_ppo do when padding_free applies
    return model.eval()


@pytest.fixture(scope="module")
def policy(fixture_models: Path) -> torch.nn.Module:
    return load(fixture_models / "llama_tiny")


def rollout_of(samples: list[tuple[list[int], list[int]]]) -> Rollout:
    """A rollout's scoring rows as `collect` builds them (right-padded prompt + answer)."""
    batch = answer_rows([prompt for prompt, _ in samples], [answer for _, answer in samples], pad_token_id=3)
    return Rollout(
        batch=batch,
        starts=torch.tensor([len(prompt) - 1 for prompt, _ in samples]),
        lengths=torch.tensor([len(answer) for _, answer in samples]),
        prompts=[{} for _ in samples],
        answers=["" for _ in samples],
        finished=[True for _ in samples],
        engine_logps=[[] for _ in samples],
        rewards=torch.zeros(len(samples)),
        per_function={},
        seconds=0.0,
    )


def left_padded(samples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    width = max(len(prompt) + len(answer) for prompt, answer in samples)
    input_ids = torch.full((len(samples), width), 3)
    labels = torch.full((len(samples), width), IGNORE_INDEX)
    attention_mask = torch.zeros((len(samples), width), dtype=torch.long)
    for row, (prompt, answer) in enumerate(samples):
        pad = width - len(prompt) - len(answer)
        input_ids[row, pad:] = torch.tensor(prompt + answer)
        labels[row, pad + len(prompt) :] = torch.tensor(answer)
        attention_mask[row, pad:] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def test_the_flat_row_is_each_rows_tokens_with_positions_restarting() -> None:
    batch = left_padded(SAMPLES)
    flat = flatten(batch)
    lengths = [len(prompt) + len(answer) for prompt, answer in SAMPLES]
    assert flat["input_ids"].tolist() == [[token for prompt, answer in SAMPLES for token in prompt + answer]]
    assert flat["position_ids"].tolist() == [[i for length in lengths for i in range(length)]]
    assert flat["cu_seq_lens_q"].tolist() == [0, 6 + 2, 8 + 9, 17 + 4, 21 + 8]
    assert flat["max_length_q"] == 9
    answers = [label for label in flat["labels"][0].tolist() if label != IGNORE_INDEX]
    assert answers == [token for _, answer in SAMPLES for token in answer]
    assert flat["input_ids"].dtype == torch.long and flat["cu_seq_lens_q"].dtype == torch.int32
    # a value per target position comes back to its row and column; the padding gets 0
    values = torch.arange(1.0, sum(lengths))[None]
    back = unflatten(values, batch["attention_mask"])
    assert back.shape == (len(SAMPLES), batch["input_ids"].shape[1] - 1)
    assert back[0].tolist() == [0.0] * 1 + [float(v) for v in range(1, 8)]  # row 0: one pad on the left
    assert back[1].tolist() == [float(v) for v in range(9, 17)]


@pytest.mark.parametrize("layout", ["rollout", "left_padded"])
def test_flat_token_logps_and_entropy_equal_the_padded_rows(policy, layout: str) -> None:
    batch = rollout_of(SAMPLES).batch if layout == "rollout" else left_padded(SAMPLES)
    with torch.no_grad():
        padded = token_logps(policy, batch, entropy=True)
        flat = token_logps(policy, flatten(batch), entropy=True)
    logps = unflatten(flat.logps, batch["attention_mask"])
    entropy = unflatten(flat.entropy, batch["attention_mask"])
    answers = padded.mask
    assert int(answers.sum()) == sum(len(answer) for _, answer in SAMPLES)
    torch.testing.assert_close(logps, padded.logps, atol=1e-5, rtol=0)  # 0 off the answers in both
    torch.testing.assert_close(entropy[answers], padded.entropy[answers], atol=1e-5, rtol=0)
    assert bool((padded.logps[answers] < 0).all())


def assert_same_gradients(policy, got: dict, expected: dict) -> None:
    """Every parameter has a gradient in both, equal to float32 tolerance; the policy's are cleared."""
    assert got.keys() == expected.keys() and len(expected) == len(list(policy.parameters()))
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    policy.zero_grad(set_to_none=True)


@pytest.mark.parametrize("flat", [False, True])
def test_answer_positions_only_equal_the_full_logits(policy, flat: bool) -> None:
    """RL scoring projects only the answer positions through the output layer (chunked, not the prompt's):
    log-probs, entropies and gradients equal those of the full logits."""
    assert output_weight(policy) is not None  # else both would take the full-logits path
    batch = rollout_of(SAMPLES).batch
    batch = flatten(batch) if flat else batch
    results = {}
    for chunked in (False, True):
        policy.zero_grad(set_to_none=True)
        tokens = token_logps(policy, batch, entropy=True, chunked=chunked)
        weights = torch.randn(tokens.logps.shape, generator=torch.Generator().manual_seed(0))
        (tokens.logps * weights).sum().backward()
        grads = {name: p.grad.clone() for name, p in policy.named_parameters() if p.grad is not None}
        results[chunked] = tokens, grads
    (full, full_grads), (chunked, chunked_grads) = results[False], results[True]
    answers = full.mask
    assert int(answers.sum()) == sum(len(answer) for _, answer in SAMPLES)
    torch.testing.assert_close(chunked.logps, full.logps, atol=1e-5, rtol=0)  # 0 off the answers in both
    torch.testing.assert_close(chunked.entropy[answers], full.entropy[answers], atol=1e-5, rtol=0)
    assert bool((chunked.entropy[answers] > 0).all())
    assert_same_gradients(policy, chunked_grads, full_grads)


def test_policy_token_logps_and_gradients_equal_the_padded_rows(policy) -> None:
    rollout = rollout_of(SAMPLES)
    rows = torch.tensor([3, 0, 1])  # a forward pass's rows, in the shuffled order of a mini-batch
    weights = torch.randn(3, int(rollout.lengths[rows].max()), generator=torch.Generator().manual_seed(0))
    results = {}
    for flat in (False, True):
        policy.zero_grad(set_to_none=True)
        logps, entropy = policy_token_logps(policy, rollout, rows, entropy=True, flat=flat)
        (logps * weights).sum().backward()
        grads = {name: p.grad.clone() for name, p in policy.named_parameters() if p.grad is not None}
        results[flat] = logps.detach(), entropy, grads
    (padded, padded_entropy, padded_grads), (flat, flat_entropy, flat_grads) = results[False], results[True]
    mask = torch.arange(padded.shape[1]) < rollout.lengths[rows, None]
    assert flat.shape == padded.shape == (3, 7)
    torch.testing.assert_close(flat, padded, atol=1e-5, rtol=0)
    assert bool((flat[~mask] == 0).all()) and bool((flat[mask] < 0).all())
    torch.testing.assert_close(flat_entropy[mask], padded_entropy[mask], atol=1e-5, rtol=0)
    assert_same_gradients(policy, flat_grads, padded_grads)


def test_frozen_token_logps_in_chunks_equal_the_padded_rows(policy) -> None:
    rollout = rollout_of(SAMPLES)
    padded = frozen_token_logps(policy, rollout, chunk=3, reference=False)
    flat = frozen_token_logps(policy, rollout, chunk=3, reference=False, flat=True)
    assert flat.shape == (4, 7)
    torch.testing.assert_close(flat, padded, atol=1e-5, rtol=0)


def test_ppo_token_values_equal_the_padded_rows(fixture_models: Path) -> None:
    from turbo.trainers.ppo import token_values

    value_model = load(fixture_models / "llama_rm", seq_cls=True)  # one output, as a value model
    rollout = rollout_of(SAMPLES)
    rows = torch.tensor([1, 2, 3])
    with torch.no_grad():
        padded = token_values(value_model, rollout, rows)
        flat = token_values(value_model, rollout, rows, flat=True)
    mask = torch.arange(padded.shape[1]) < rollout.lengths[rows, None]
    torch.testing.assert_close(flat[mask], padded[mask], atol=1e-5, rtol=0)
    assert float(padded[mask].abs().min()) > 0


def decision(padding_free: bool = True, virtual_tokens: bool | None = None, media: bool = False):
    peft = None if virtual_tokens is None else SimpleNamespace(virtual_tokens=virtual_tokens)
    return SimpleNamespace(
        trainer_settings=SimpleNamespace(padding_free=padding_free),
        model_settings=SimpleNamespace(peft_settings=peft),
        multimodal_settings=SimpleNamespace() if media else None,
    )


def test_the_pipelines_score_padding_free_only_where_every_model_reads_offsets(fixture_models) -> None:
    from transformers import AutoModelForCausalLM

    from turbo.pipelines.train.rollout import padding_free

    path = fixture_models / "llama_tiny"
    policy = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    assert padding_free(decision(virtual_tokens=False), policy, None)
    assert policy.config._attn_implementation == NAME  # switched once, for every step
    assert not padding_free(decision(padding_free=False), policy, None)
    assert not padding_free(decision(virtual_tokens=True), policy, None)
    assert not padding_free(decision(media=True), policy, None)
    no_offsets = SimpleNamespace(config=SimpleNamespace(_attn_implementation="custom"))
    assert not padding_free(decision(), policy, no_offsets)
