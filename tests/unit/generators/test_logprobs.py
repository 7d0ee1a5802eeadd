"""logprobs in transformers_settings: each answer's token ids, their log-probs under the model's raw logits
(equal to a forward pass over prompt + answer), and the top-k tokens of each step, likeliest first."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from turbo.generators.transformers import generate_answers_with_extras
from turbo.settings.generation import CustomGenerationSettings, GeneratorTransformersSettings


@pytest.fixture(scope="module")
def tiny(fixture_models: Path) -> tuple[torch.nn.Module, object]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = fixture_models / "llama_tiny"
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def forward_logprobs(model: torch.nn.Module, prompt: list[int], answer: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits = model(torch.tensor([prompt + answer])).logits[0, len(prompt) - 1 : -1]
    return logits.log_softmax(-1)


@pytest.mark.parametrize(
    "settings",
    [
        {"max_new_tokens": 6, "logprobs": 3},
        {"max_new_tokens": 6, "logprobs": 2, "num_beams": 3, "num_return_sequences": 2},
        {"max_new_tokens": 6, "logprobs": 0, "do_sample": True, "num_return_sequences": 2},
    ],
    ids=["greedy", "beams", "sampled"],
)
def test_logprobs_are_the_models_and_top_k_is_sorted(tiny, settings: dict) -> None:
    model, tokenizer = tiny
    prompts = [tokenizer("what color is the snow? it is")["input_ids"], tokenizer("hello")["input_ids"]]
    generation = GeneratorTransformersSettings(**settings)
    answers, extras = generate_answers_with_extras(
        model, tokenizer, prompts, generation, CustomGenerationSettings(), batch=2
    )
    n = generation.num_return_sequences
    assert [len(row) for row in extras] == [len(row) for row in answers] == [n, n]
    for prompt, row in zip(prompts, extras, strict=True):
        for answer in row:
            ids = answer["token_ids"]
            reference = forward_logprobs(model, prompt, ids)
            assert 1 <= len(ids) <= 6
            assert len(answer["logprobs"]) == len(ids)
            expected = reference.gather(1, torch.tensor(ids)[:, None])[:, 0].tolist()
            assert answer["logprobs"] == pytest.approx(expected, abs=1e-5)
            assert answer["cumulative_logprob"] == pytest.approx(sum(expected), abs=1e-4)
            if not generation.logprobs:
                assert "top_logprobs" not in answer
                continue
            assert len(answer["top_logprobs"]) == len(ids)
            for step, (token, top) in enumerate(zip(ids, answer["top_logprobs"], strict=True)):
                values, indices = reference[step].topk(generation.logprobs)
                assert [t["token_id"] for t in top] == indices.tolist()
                assert [t["logprob"] for t in top] == pytest.approx(values.tolist(), abs=1e-5)
                assert [t["token"] for t in top] == tokenizer.convert_ids_to_tokens(indices.tolist())
                if not generation.do_sample and generation.num_beams == 1:
                    assert top[0]["token_id"] == token  # greedy picks the likeliest


def test_without_logprobs_answers_have_no_extra_fields(tiny) -> None:
    model, tokenizer = tiny
    prompts = [tokenizer("hello")["input_ids"]]
    settings = GeneratorTransformersSettings(max_new_tokens=4)
    answers, extras = generate_answers_with_extras(
        model, tokenizer, prompts, settings, CustomGenerationSettings(), batch=1
    )
    assert extras == [[{}]] and len(answers[0]) == 1


def test_cherry_picks_refuse_logprobs() -> None:
    from pydantic import ValidationError

    from turbo.settings.cherry_pick import ChatCherryPickSettings

    with pytest.raises(ValidationError, match="only the inference commands write log-probs"):
        ChatCherryPickSettings.model_validate(
            {
                "dataset_settings": {"sources": [], "dataset_type": "chat"},
                "generator_transformers_settings": {"logprobs": 2},
            }
        )
