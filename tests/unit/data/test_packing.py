import itertools
import json

import pytest
import torch

from turbo.data.chat import build_chat_samples
from turbo.data.packing import FlatCollator, pack_features, pack_lengths
from turbo.labels import IGNORE_INDEX
from turbo.settings.datasets import ChatDatasetSettings

from ...helpers import CONFIGS


def test_pack_lengths_fills_bins_best_fit_and_keeps_every_sample_once() -> None:
    lengths = [7, 3, 9, 2, 5, 8, 1]
    bins = pack_lengths(lengths, 10)
    assert sorted(i for group in bins for i in group) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in group) <= 10 for group in bins)
    assert len(bins) == 4  # 35 tokens need at least 4 rows of 10
    assert all(group == sorted(group) for group in bins)


def test_pack_lengths_rejects_a_sample_longer_than_a_row() -> None:
    with pytest.raises(ValueError, match="12 tokens"):
        pack_lengths([3, 12], 10)


def test_packed_rows_restart_positions_and_ignore_each_first_label() -> None:
    features = [
        {"input_ids": [5, 6, 7], "labels": [5, 6, 7]},
        {"input_ids": [8, 9], "labels": [IGNORE_INDEX, 9]},
    ]
    [row] = pack_features(features, 8)
    assert row["input_ids"] == [5, 6, 7, 8, 9]
    assert row["position_ids"] == [0, 1, 2, 0, 1]
    assert row["labels"] == [IGNORE_INDEX, 6, 7, IGNORE_INDEX, 9]


@pytest.fixture(scope="module")
def model_and_features(fixture_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(fixture_models / "llama_tiny")
    data = json.loads((CONFIGS / "train" / "sft" / "lora.json").read_text())["train_dataset_settings"]
    samples, _ = build_chat_samples(ChatDatasetSettings.model_validate(data), tokenizer, seed=0)
    model = AutoModelForCausalLM.from_pretrained(fixture_models / "llama_tiny", dtype=torch.float32)
    model.resize_token_embeddings(len(tokenizer))
    return model.train(), tokenizer, [sample.features() for sample in samples[:10]]


def test_packed_loss_equals_the_unpacked_loss_of_the_same_samples(model_and_features) -> None:
    from transformers import DataCollatorForSeq2Seq

    model, tokenizer, features = model_and_features
    rows = pack_features(features, 120)
    assert len(rows) < len(features)
    unpacked = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)(features)
    packed = FlatCollator()(rows)  # the packed rows one after another: positions restart per sample
    assert (packed["labels"] != IGNORE_INDEX).sum() == (unpacked["labels"] != IGNORE_INDEX).sum()
    torch.manual_seed(0)  # (no dropout in the fixture; seeded anyway)
    expected = model(**unpacked).loss
    actual = model(**packed).loss
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_no_sample_attends_to_another_in_a_packed_row(model_and_features) -> None:
    model, tokenizer, features = model_and_features
    row = pack_features(features, 120)[0]
    packed = FlatCollator()([row])
    with torch.no_grad():
        logits = model(**{k: v for k, v in packed.items() if k != "labels"}).logits[0]
        starts = [i for i, position in enumerate(row["position_ids"]) if position == 0]
        assert len(starts) > 1
        for start, end in zip(starts, [*starts[1:], len(row["input_ids"])], strict=True):
            alone = model(input_ids=torch.tensor([row["input_ids"][start:end]])).logits[0]
            torch.testing.assert_close(logits[start:end], alone, atol=1e-5, rtol=0)


def test_flat_batches_with_varlen_attention_give_the_unpacked_loss_and_gradients(model_and_features) -> None:
    from transformers import DataCollatorForSeq2Seq

    from turbo.data.packing import FlatCollator
    from turbo.modeling.varlen import NAME, use_varlen_attention

    model, tokenizer, features = model_and_features
    unpacked = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)(features)
    expected = model(**unpacked).loss
    expected.backward()
    expected_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()

    assert use_varlen_attention(model)
    assert model.config._attn_implementation == NAME
    flat = FlatCollator()(pack_features(features, 120))
    assert flat["input_ids"].shape == (1, sum(len(f["input_ids"]) for f in features))  # no padding at all
    assert flat["cu_seq_lens_q"].tolist()[-1] == flat["input_ids"].shape[1]
    assert len(flat["cu_seq_lens_q"]) == len(features) + 1
    actual = model(**flat).loss
    actual.backward()
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    actual_grads = [p.grad for p in model.parameters() if p.grad is not None]
    for got, want in zip(actual_grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    model.set_attn_implementation("sdpa")


def test_length_groups_keep_every_sample_once_and_bound_the_padding() -> None:
    from turbo.modeling.varlen import length_groups

    segments = [(0, 5), (5, 100), (105, 90), (195, 7), (202, 60), (262, 1)]
    groups = length_groups(segments)
    assert sorted(segment for group in groups for segment in group) == segments
    for group in groups:
        longest = group[0][1]
        assert all(length <= longest for _, length in group)
        assert sum(length for _, length in group) >= 0.5 * longest * len(group)
    assert len(groups) < len(segments)  # similar lengths share one call


@pytest.mark.parametrize("lengths", [[7, 3, 12, 1, 9], [4], [2, 2, 2]])
def test_varlen_attention_equals_one_causal_attention_per_sample(lengths) -> None:
    from turbo.modeling.varlen import varlen_attention

    torch.manual_seed(0)
    total = sum(lengths)
    query = torch.randn(1, 4, total, 8, requires_grad=True)
    key = torch.randn(1, 2, total, 8, requires_grad=True)  # grouped-query attention
    value = torch.randn(1, 2, total, 8, requires_grad=True)
    bounds = [0, *itertools.accumulate(lengths)]
    expected = torch.cat(
        [
            torch.nn.functional.scaled_dot_product_attention(
                query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], is_causal=True, enable_gqa=True
            )
            for s, e in zip(bounds, bounds[1:], strict=False)
        ],
        dim=2,
    ).transpose(1, 2)
    weights = torch.randn_like(expected)
    grads = torch.autograd.grad((expected * weights).sum(), (query, key, value))
    module = torch.nn.Module().eval()
    actual, _ = varlen_attention(module, query, key, value, None, cu_seq_lens_q=torch.tensor(bounds))
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)
    actual_grads = torch.autograd.grad((actual * weights).sum(), (query, key, value))
    for got, want in zip(actual_grads, grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
