"""The answer-log-prob seam against hand computations (log_softmax, gather) on a tiny llama: padded
rows, packed rows, prompt tuning, sum and mean, entropy, and the three reference modes."""

import copy

import pytest
import torch
from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from turbo.data.kto import KtoCollator
from turbo.data.packing import FlatCollator, pack_features, pack_lengths
from turbo.data.pair_preferences import PairCollator
from turbo.labels import IGNORE_INDEX
from turbo.trainers.dpo import REFERENCE_KEYS as DPO_KEYS
from turbo.trainers.kto import REFERENCE_KEYS as KTO_KEYS
from turbo.trainers.logps import (
    answer_logps,
    answer_rows,
    precompute_reference_logps,
    reference_logps,
    token_logps,
)

VOCAB = 23
# (prompt, answer) token ids
SAMPLES = [
    ([1, 2, 3], [4, 5]),
    ([1, 7], [8, 9, 10, 11]),
    ([1, 12, 13, 14, 15], [6]),
    ([1, 3], [16, 17, 18]),
]


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config).eval()


def hand_logps(logits: torch.Tensor, prompt: list[int], answer: list[int]) -> torch.Tensor:
    """log p of each answer token from the logits of one unpadded sequence [length, vocab]."""
    log_probs = logits.float().log_softmax(-1)
    return torch.stack([log_probs[len(prompt) - 1 + i, token] for i, token in enumerate(answer)])


def unpadded_logits(model: torch.nn.Module, prompt: list[int], answer: list[int]) -> torch.Tensor:
    return model(input_ids=torch.tensor([prompt + answer])).logits[0]


def padded_batch(samples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    width = max(len(p) + len(a) for p, a in samples)
    input_ids = torch.zeros((len(samples), width), dtype=torch.long)
    labels = torch.full((len(samples), width), IGNORE_INDEX)
    attention_mask = torch.zeros((len(samples), width), dtype=torch.long)
    for row, (prompt, answer) in enumerate(samples):
        length = len(prompt) + len(answer)
        input_ids[row, :length] = torch.tensor(prompt + answer)
        labels[row, len(prompt) : length] = torch.tensor(answer)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@torch.no_grad()
def test_padded_rows_equal_the_hand_computation_sum_and_mean() -> None:
    model = tiny_llama()
    result = answer_logps(model, padded_batch(SAMPLES))
    tokens = token_logps(model, padded_batch(SAMPLES))
    for row, (prompt, answer) in enumerate(SAMPLES):
        expected = hand_logps(unpadded_logits(model, prompt, answer), prompt, answer)
        torch.testing.assert_close(result.sums[row], expected.sum(), atol=1e-5, rtol=0)
        torch.testing.assert_close(result.means[row], expected.mean(), atol=1e-5, rtol=0)
        assert result.counts[row] == len(answer)
        # per token: target position t predicts token t + 1; only the answer's positions count
        start = len(prompt) - 1
        assert tokens.mask[row].nonzero().flatten().tolist() == list(range(start, start + len(answer)))
        torch.testing.assert_close(
            tokens.logps[row, start : start + len(answer)], expected, atol=1e-5, rtol=0
        )
        assert tokens.logps[row][~tokens.mask[row]].abs().sum() == 0


def test_answer_rows_put_the_labels_on_the_answers() -> None:
    batch = answer_rows([p for p, _ in SAMPLES], [a for _, a in SAMPLES], pad_token_id=0)
    expected = padded_batch(SAMPLES)
    assert batch.keys() == expected.keys()
    assert all(torch.equal(batch[key], expected[key]) for key in batch)


@torch.no_grad()
def test_entropy_per_token_equals_the_hand_computation() -> None:
    model = tiny_llama()
    tokens = token_logps(model, padded_batch(SAMPLES), entropy=True)
    prompt, answer = SAMPLES[1]
    log_probs = unpadded_logits(model, prompt, answer).float().log_softmax(-1)[:-1]
    expected = -(log_probs.exp() * log_probs).sum(-1)
    assert tokens.entropy is not None
    torch.testing.assert_close(tokens.entropy[1, : len(expected)], expected, atol=1e-5, rtol=0)
    assert token_logps(model, padded_batch(SAMPLES)).entropy is None


@torch.no_grad()
def test_packed_rows_equal_the_unpacked_rows() -> None:
    model = tiny_llama()
    features = [{"input_ids": p + a, "labels": [IGNORE_INDEX] * len(p) + a} for p, a in SAMPLES]
    capacity = 12
    packed = pack_features(features, capacity)
    assert any(sum(1 for position in row["position_ids"] if position == 0) > 1 for row in packed)
    batch = FlatCollator()(packed)  # the packed rows one after another, positions restarting per sample
    batch.pop("use_cache")
    result = answer_logps(model, batch)
    order = [
        index for group in pack_lengths([len(f["input_ids"]) for f in features], capacity) for index in group
    ]
    unpacked = answer_logps(model, padded_batch(SAMPLES))
    assert result.counts.tolist() == [len(SAMPLES[i][1]) for i in order]
    torch.testing.assert_close(result.sums, unpacked.sums[order], atol=1e-5, rtol=0)
    torch.testing.assert_close(result.means, unpacked.means[order], atol=1e-5, rtol=0)
    torch.testing.assert_close(result.mean_logits, unpacked.mean_logits[order], atol=1e-5, rtol=0)


def prompt_tuned(virtual: int) -> torch.nn.Module:
    config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=virtual)
    model = get_peft_model(tiny_llama(), config)
    with torch.no_grad():  # a prompt far from the (random) initial one
        model.prompt_encoder["default"].embedding.weight.normal_(0, 3)
    return model.eval()


@torch.no_grad()
def test_prompt_tuning_drops_the_virtual_tokens() -> None:
    virtual = 4
    model = prompt_tuned(virtual)
    result = answer_logps(model, padded_batch(SAMPLES))
    base = model.get_base_model()
    prompt_embeddings = model.get_prompt(batch_size=1)  # [1, virtual, hidden]
    for row, (prompt, answer) in enumerate(SAMPLES):
        embeddings = base.get_input_embeddings()(torch.tensor([prompt + answer]))
        logits = base(inputs_embeds=torch.cat([prompt_embeddings, embeddings], 1)).logits[0]
        expected = hand_logps(logits[virtual:], prompt, answer)  # strip the virtual tokens' logits
        torch.testing.assert_close(result.sums[row], expected.sum(), atol=1e-5, rtol=0)
        torch.testing.assert_close(result.means[row], expected.mean(), atol=1e-5, rtol=0)
    # the virtual tokens matter: the base model alone scores the answers otherwise
    plain = answer_logps(base, padded_batch(SAMPLES))
    assert (plain.sums - result.sums).abs().max() > 1e-2


def test_packed_rows_with_prompt_tuning_are_refused() -> None:
    batch = FlatCollator()([{"input_ids": [1, 2, 3], "labels": [IGNORE_INDEX, 2, 3]}])
    with pytest.raises(ValueError, match="prompt-learning"):
        answer_logps(prompt_tuned(2), batch)


def lora_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A LoRA policy whose adapter changes the outputs, and a separate copy of its base model."""
    base = tiny_llama()
    separate = copy.deepcopy(base)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(base, config).eval(), separate


PAIRS = [
    {"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5], "rejected_ids": [6]},
    {"prompt_ids": [1, 7], "chosen_ids": [8, 9, 10], "rejected_ids": [4, 4, 2]},
    {"prompt_ids": [1, 12, 13], "chosen_ids": [14], "rejected_ids": [15, 16]},
]


def test_the_three_reference_modes_agree_for_dpo_rows() -> None:
    policy, separate = lora_pair()
    collator = PairCollator(pad_token_id=0)
    batch = collator(PAIRS)
    disabled = reference_logps(policy, batch, DPO_KEYS[""])
    from_model = reference_logps(policy, batch, DPO_KEYS[""], ref_model=separate)
    features = precompute_reference_logps(PAIRS, policy, collator, 2, True, DPO_KEYS)
    carried = collator(features)
    assert set(carried) >= {"ref_chosen_logps", "ref_rejected_logps"}
    precomputed = reference_logps(policy, carried, DPO_KEYS[""])
    torch.testing.assert_close(disabled, from_model, atol=1e-6, rtol=0)
    torch.testing.assert_close(precomputed, disabled, atol=1e-6, rtol=0)
    # the reference is the base model, not the policy
    with torch.no_grad():
        torch.testing.assert_close(disabled, answer_logps(separate, batch).sums, atol=1e-6, rtol=0)
        assert (answer_logps(policy, batch).sums - disabled).abs().max() > 1e-3
    assert not disabled.requires_grad and policy.training is False


def test_the_three_reference_modes_agree_for_kto_rows_and_their_kl_pairs() -> None:
    policy, separate = lora_pair()
    features = [
        {"input_ids": p + a, "labels": [IGNORE_INDEX] * len(p) + a, "is_desirable": i % 2 == 0}
        for i, (p, a) in enumerate(SAMPLES)
    ]
    for i, feature in enumerate(features):  # the KL pair: the next sample's answer after this prompt
        prompt, _ = SAMPLES[i]
        answer = SAMPLES[(i + 1) % len(SAMPLES)][1]
        feature.update(kl_input_ids=prompt + answer, kl_labels=[IGNORE_INDEX] * len(prompt) + answer)
    collator = KtoCollator(pad_token_id=0)
    batch = collator(features)
    carried = collator(precompute_reference_logps(features, policy, collator, 3, True, KTO_KEYS))
    for prefix, keys in KTO_KEYS.items():
        disabled = reference_logps(policy, batch, keys, prefix)
        from_model = reference_logps(policy, batch, keys, prefix, ref_model=separate)
        precomputed = reference_logps(policy, carried, keys, prefix)
        torch.testing.assert_close(disabled, from_model, atol=1e-6, rtol=0)
        torch.testing.assert_close(precomputed, disabled, atol=1e-6, rtol=0)
    # the KL rows are scored on their own answers, not the main ones
    kl_expected = []
    for i, (prompt, _) in enumerate(SAMPLES):
        answer = SAMPLES[(i + 1) % len(SAMPLES)][1]
        with torch.no_grad():
            kl_expected.append(hand_logps(unpadded_logits(separate, prompt, answer), prompt, answer).sum())
    torch.testing.assert_close(carried["reference_kl_logps"], torch.stack(kl_expected), atol=1e-5, rtol=0)


def test_no_adapter_and_no_reference_model_is_an_error() -> None:
    with pytest.raises(ValueError, match="no reference"):
        reference_logps(tiny_llama(), padded_batch(SAMPLES), DPO_KEYS[""])


@torch.no_grad()
def test_length_desensitised_pairs_weight_the_tokens_past_the_shorter_answer() -> None:
    """LD-DPO (arXiv:2409.06411, eq. 8): rows [chosen 0, chosen 1; rejected 0, rejected 1]; pair 0 has
    answers of 2 and 4 tokens (l = 2), pair 1 of 1 and 3 tokens (l = 1)."""
    model = tiny_llama()
    alpha = 0.3
    pairs = [SAMPLES[0], SAMPLES[2], SAMPLES[1], SAMPLES[3]]  # [chosen; rejected]
    result = answer_logps(model, padded_batch(pairs), lc_alpha=alpha)
    for row, (prompt, answer) in enumerate(pairs):
        per_token = hand_logps(unpadded_logits(model, prompt, answer), prompt, answer)
        other = pairs[(row + 2) % 4][1]
        shorter = min(len(answer), len(other))
        expected = per_token[:shorter].sum() + alpha * per_token[shorter:].sum()
        assert result.sums[row] == pytest.approx(float(expected), abs=1e-5)
        assert int(result.counts[row]) == len(answer)
    plain = answer_logps(model, padded_batch(pairs))
    assert torch.allclose(answer_logps(model, padded_batch(pairs), lc_alpha=1.0).sums, plain.sums)
    batch = padded_batch(pairs)
    assert torch.allclose(
        reference_logps(model, batch, DPO_KEYS[""], ref_model=model, lc_alpha=alpha), result.sums
    )


@pytest.mark.parametrize("full_model", [False, True])
def test_chunked_answer_logps_equal_the_full_logits_and_their_gradients(full_model) -> None:
    """Only the answer positions reach the output layer, with the same log-probs and gradients
    (LoRA: the output layer frozen; full fine-tuning: it trains too)."""
    policy = tiny_llama() if full_model else lora_pair()[0]
    batch = PairCollator(pad_token_id=0)(PAIRS)
    trained = [p for p in policy.parameters() if p.requires_grad]
    upstream = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0, 0.25])  # a loss weighs each sample differently
    results, grads = [], []
    for chunked in (False, True):
        result = answer_logps(policy, batch, chunked=chunked)
        (result.sums * upstream).sum().backward()
        results.append(result)
        grads.append([p.grad.clone() for p in trained])
        policy.zero_grad()
    full, chunked = results
    torch.testing.assert_close(chunked.sums, full.sums, atol=1e-5, rtol=0)
    assert torch.equal(chunked.counts, full.counts)
    torch.testing.assert_close(chunked.mean_logits, full.mean_logits, atol=1e-5, rtol=0)
    for expected, actual in zip(*grads, strict=True):
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)
    assert any(g.abs().sum() > 0 for g in grads[1])


def test_padding_free_pair_batches_give_the_padded_log_probs_and_references() -> None:
    """[chosen; rejected] in one row without padding (varlen attention): the same per-answer log-probs,
    gradients and reference log-probs (adapter disabled, precomputed) as padded rows."""
    from turbo.modeling.varlen import use_varlen_attention

    policy, _ = lora_pair()
    padded = PairCollator(pad_token_id=0)(PAIRS)
    flat = PairCollator(pad_token_id=0, flat=True)(PAIRS)
    assert flat["input_ids"].shape[0] == 1 and (flat["input_ids"] == 0).sum() == 0
    trained = [p for p in policy.parameters() if p.requires_grad]
    expected = answer_logps(policy, padded)
    expected.sums.sum().backward()
    expected_grads = [p.grad.clone() for p in trained]
    policy.zero_grad()
    assert use_varlen_attention(policy)
    actual = answer_logps(policy, flat)
    actual.sums.sum().backward()
    torch.testing.assert_close(actual.sums, expected.sums, atol=1e-5, rtol=0)
    assert torch.equal(actual.counts, expected.counts)
    for got, want in zip((p.grad for p in trained), expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    reference = reference_logps(policy, padded, DPO_KEYS[""])
    torch.testing.assert_close(reference_logps(policy, flat, DPO_KEYS[""]), reference, atol=1e-5, rtol=0)
    features = precompute_reference_logps(PAIRS, policy, PairCollator(0, flat=True), 2, True, DPO_KEYS)
    carried = PairCollator(0, flat=True)(features)
    torch.testing.assert_close(reference_logps(policy, carried, DPO_KEYS[""]), reference, atol=1e-5, rtol=0)
