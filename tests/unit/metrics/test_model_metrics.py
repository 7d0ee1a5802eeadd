"""perplexity, kl and retrieval_utility against the model's own loss (transformers' labels path)."""

from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
import torch

from turbo.data.records import ChatMessage
from turbo.metrics.base import EvalSample, ModelContext
from turbo.metrics.model import kl, perplexity, retrieval_utility
from turbo.settings.metrics import KlParameters, MetricParameters, RetrievalUtilityParameters


@pytest.fixture(scope="module")
def lm(fixture_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(fixture_models / "llama_tiny")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(fixture_models / "llama_tiny").eval()
    return model, tokenizer


def answer_loss(model, tokenizer, prompt: list[int], answer: str) -> tuple[float, int]:
    """Mean cross-entropy of the answer tokens given the prompt, from the model's own loss."""
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    input_ids = torch.tensor([prompt + ids])
    labels = torch.tensor([[-100] * len(prompt) + ids])
    with torch.no_grad():
        return float(model(input_ids=input_ids, labels=labels).loss), len(ids)


def encode(tokenizer, messages: list[ChatMessage]) -> list[int]:
    return tokenizer("\n".join(m.content for m in messages), add_special_tokens=False)["input_ids"]


def test_perplexity_is_exp_of_the_answer_loss(lm) -> None:
    model, tokenizer = lm
    prompts = [encode(tokenizer, [ChatMessage(role="user", content=t)]) for t in ("What color is the sky?", "Hi")]
    samples = [EvalSample(source="d", row={}, prompt_ids=p) for p in prompts]
    answers = [["The sky is blue."], ["Hello there, friend", "Hi"]]
    ctx = ModelContext(model=model, tokenizer=tokenizer, batch=2)
    result = perplexity(MetricParameters(), samples, answers, ctx)["perplexity"]
    expected = [
        math.exp(answer_loss(model, tokenizer, prompts[0], answers[0][0])[0]),
        sum(math.exp(answer_loss(model, tokenizer, prompts[1], a)[0]) for a in answers[1]) / 2,
    ]
    assert result == pytest.approx(expected, rel=1e-4)


def test_kl_is_the_summed_log_ratio_and_zero_against_itself(lm) -> None:
    model, tokenizer = lm
    prompt = encode(tokenizer, [ChatMessage(role="user", content="What color is the grass?")])
    samples = [EvalSample(source="d", row={}, prompt_ids=prompt)]
    answers = [["The grass is green."]]
    itself = ModelContext(model=model, tokenizer=tokenizer, reference=lambda: nullcontext(model))
    assert kl(KlParameters(), samples, answers, itself)["kl"] == [pytest.approx(0.0, abs=1e-5)]

    import copy

    other = copy.deepcopy(model)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    ctx = ModelContext(model=model, tokenizer=tokenizer, reference=lambda: nullcontext(other))
    policy_loss, count = answer_loss(model, tokenizer, prompt, answers[0][0])
    ref_loss, _ = answer_loss(other, tokenizer, prompt, answers[0][0])
    expected = count * (ref_loss - policy_loss)  # sum log p - sum log p_ref
    assert kl(KlParameters(), samples, answers, ctx)["kl"] == [pytest.approx(expected, rel=1e-3, abs=1e-4)]


def test_retrieval_utility_is_the_drop_in_answer_cross_entropy(lm) -> None:
    model, tokenizer = lm
    with_docs = [ChatMessage(role="user", content="The sky is blue today.<doc_sep>What color is the sky?")]
    plain = [ChatMessage(role="user", content="What color is the sky?")]
    samples = [
        EvalSample(source="d", row={}, messages=with_docs, prompt_ids=encode(tokenizer, with_docs)),
        EvalSample(source="d", row={}, messages=plain, prompt_ids=encode(tokenizer, plain)),
    ]
    answers = [["The sky is blue."], ["The sky is blue."]]
    ctx = ModelContext(model=model, tokenizer=tokenizer, encode_prompt=lambda m: encode(tokenizer, m))
    result = retrieval_utility(RetrievalUtilityParameters(), samples, answers, ctx)["retrieval_utility"]
    loss_with, _ = answer_loss(model, tokenizer, encode(tokenizer, with_docs), answers[0][0])
    loss_without, _ = answer_loss(model, tokenizer, encode(tokenizer, plain), answers[0][0])
    assert result[0] == pytest.approx(loss_without - loss_with, rel=1e-4, abs=1e-5)
    assert result[1] is None  # no documents in that prompt
