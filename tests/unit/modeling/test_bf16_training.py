"""bfloat16 training on a CPU: the matmul attention of padding-free batches, and a LoRA run whose losses
follow the float32 run's on the same data."""

import itertools

import pytest
import torch

from turbo.data.packing import FlatCollator
from turbo.labels import IGNORE_INDEX
from turbo.modeling.varlen import matmul_attention, use_matmul_attention, varlen_attention


@pytest.mark.parametrize(
    ("samples", "heads", "kv_heads", "length"), [(3, 4, 2, 9), (5, 6, 2, 4), (1, 2, 2, 7)]
)
def test_matmul_attention_equals_causal_sdpa_and_its_gradients(
    monkeypatch, samples, heads, kv_heads, length
) -> None:
    monkeypatch.setattr("turbo.modeling.varlen.SCORES_PER_CALL", 2 * heads * length * length)  # in pieces
    torch.manual_seed(0)
    query = torch.randn(samples, heads, length, 8, dtype=torch.float64, requires_grad=True)
    key = torch.randn(samples, kv_heads, length, 8, dtype=torch.float64, requires_grad=True)
    value = torch.randn(samples, kv_heads, length, 8, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, is_causal=True, enable_gqa=True, scale=0.3
    )
    weights = torch.randn_like(expected)
    grads = torch.autograd.grad((expected * weights).sum(), (query, key, value))
    actual = matmul_attention(query, key, value, 0.3)
    torch.testing.assert_close(actual, expected)
    for got, want in zip(
        torch.autograd.grad((actual * weights).sum(), (query, key, value)), grads, strict=True
    ):
        torch.testing.assert_close(got, want)


def test_bfloat16_varlen_attention_takes_the_matmul_path_and_matches_float32() -> None:
    lengths = [7, 3, 12, 1, 9]
    torch.manual_seed(0)
    total = sum(lengths)
    query, key, value = (torch.randn(1, h, total, 16) for h in (4, 2, 2))
    bounds = torch.tensor([0, *itertools.accumulate(lengths)])
    module = torch.nn.Module().train()
    assert use_matmul_attention(query.bfloat16(), 0.0)
    assert not use_matmul_attention(query, 0.0)  # float32 keeps SDPA
    assert not use_matmul_attention(query.bfloat16(), 0.1)  # dropout keeps SDPA
    with torch.no_grad():
        assert not use_matmul_attention(query.bfloat16(), 0.0)  # a forward without gradients keeps SDPA
    expected, _ = varlen_attention(module, query, key, value, None, cu_seq_lens_q=bounds)
    actual, _ = varlen_attention(
        module, query.bfloat16(), key.bfloat16(), value.bfloat16(), None, cu_seq_lens_q=bounds
    )
    assert actual.dtype == torch.bfloat16
    torch.testing.assert_close(actual.float(), expected, atol=3e-2, rtol=0)


def lora_losses(fixture_models, dtype: str, steps: int) -> list[float]:
    """The training losses of `steps` LoRA steps on llama_tiny, padding-free batches, as train_sft runs
    them: weights in `dtype`, adapters in float32, bfloat16 autocast when dtype is bfloat16."""
    from turbo.modeling.loading import load_base_model
    from turbo.modeling.peft import apply_peft
    from turbo.modeling.varlen import use_varlen_attention
    from turbo.settings.model import ModelSettings
    from turbo.trainers.losses.chunked_ce import chunked_cross_entropy

    settings = ModelSettings.model_validate(
        {
            "model_path": str(fixture_models / "llama_tiny"),
            "peft_settings": {
                "name": "LORA",
                "r": 8,
                "lora_alpha": 16,
                "target_modules": ["q_proj", "v_proj"],
            },
            "transformers_settings": {"dtype": dtype},
        }
    )
    torch.manual_seed(0)
    model = apply_peft(load_base_model(settings), settings, fixture_models / "llama_tiny").train()
    assert use_varlen_attention(model)
    adapters = [p for p in model.parameters() if p.requires_grad]
    assert {p.dtype for p in adapters} == {torch.float32}
    optimizer = torch.optim.AdamW(adapters, lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    features = []
    for length in (23, 9, 31, 16):
        ids = torch.randint(4, 200, (length,), generator=generator).tolist()
        features.append({"input_ids": ids, "labels": [IGNORE_INDEX] * 4 + ids[4:]})
    batch = FlatCollator()(features)
    labels = batch.pop("labels")
    weight = model.get_output_embeddings().weight
    losses = []
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            hidden = model(**batch, output_hidden_states=True, logits_to_keep=1).hidden_states[-1]
            loss = chunked_cross_entropy(hidden, weight, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_bfloat16_lora_losses_follow_float32_on_the_same_steps(fixture_models) -> None:
    steps = 6
    reference = lora_losses(fixture_models, "float32", steps)
    fast = lora_losses(fixture_models, "bfloat16", steps)
    assert reference[-1] < reference[0] - 0.1  # the steps learn: 0.01 is a tenth of what they move
    for got, want in zip(fast, reference, strict=True):
        assert abs(got - want) <= 0.01, (fast, reference)  # measured 5e-4


def test_float32_adapters_under_autocast_skip_the_input_casts_with_the_same_values(fixture_models) -> None:
    """peft casts a LoRA layer's bfloat16 input to its float32 adapter and autocast casts it back: under
    autocast turbo skips both copies, with the same outputs and gradients; outside autocast (generation)
    a bfloat16 model with float32 adapters still runs."""
    from peft import LoraConfig, get_peft_model
    from torch.utils._python_dispatch import TorchDispatchMode
    from transformers import AutoModelForCausalLM

    from turbo.modeling.peft import no_casts_under_autocast

    class Copies(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.count += func is torch.ops.aten._to_copy.default
            return func(*args, **(kwargs or {}))

    def scored(skip: bool) -> tuple[torch.Tensor, list[torch.Tensor], int]:
        base = AutoModelForCausalLM.from_pretrained(fixture_models / "llama_tiny", dtype=torch.bfloat16)
        torch.manual_seed(0)
        config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        model = get_peft_model(base, config)
        if skip:
            no_casts_under_autocast(model)
        ids = torch.arange(4, 20)[None]
        with Copies() as copies, torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=ids).logits
        logits.float().square().mean().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        with torch.no_grad():
            assert model(input_ids=ids).logits.dtype == torch.bfloat16  # no autocast: peft casts as before
        return logits, grads, copies.count

    logits, grads, copies = scored(skip=False)
    fast_logits, fast_grads, fast_copies = scored(skip=True)
    torch.testing.assert_close(fast_logits, logits, atol=0, rtol=0)
    for got, want in zip(fast_grads, grads, strict=True):
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    layers = 2 * len(AutoModelForCausalLM.from_pretrained(fixture_models / "llama_tiny").model.layers)
    assert copies - fast_copies == 2 * layers  # each adapted layer's input, to float32 and back
