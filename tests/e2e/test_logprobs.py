"""`logprobs` in transformers_settings through the real CLI (vLLM's side: tests/e2e/test_vllm.py): the rows
of inference_chat and inference_multimodal (whose metrics rewrite the rows) carry each answer's token ids,
their log-probs and the top-k tokens of each step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..helpers import CONFIGS, read_jsonl, run_turbo

CHAT = CONFIGS / "inference" / "chat" / "base.json"
MULTIMODAL = CONFIGS / "original" / "inference" / "multimodal" / "llama_llava_clip_pickle.json"
GREEDY = {"transformers_settings": {"max_new_tokens": 5, "logprobs": 2}}
SAMPLED = {
    "transformers_settings": {
        "max_new_tokens": 5,
        "do_sample": True,
        "num_return_sequences": 2,
        "logprobs": 0,
    }
}


def check_answer(answer: dict, tokenizer, greedy: bool) -> None:
    ids, logprobs = answer["token_ids"], answer["logprobs"]
    assert 1 <= len(ids) <= 5
    assert len(logprobs) == len(ids)
    assert all(value <= 0 for value in logprobs)
    assert answer["cumulative_logprob"] == pytest.approx(sum(logprobs))
    assert tokenizer.decode(ids, skip_special_tokens=True) == answer["content"]  # the tokens of this text
    if not greedy:
        assert "top_logprobs" not in answer
        return
    assert len(answer["top_logprobs"]) == len(ids)
    for token, logprob, top in zip(ids, logprobs, answer["top_logprobs"], strict=True):
        assert len(top) == 2 and top[0]["logprob"] >= top[1]["logprob"]
        assert top[0]["token_id"] == token and top[0]["logprob"] == pytest.approx(logprob)
        assert top[0]["token"] == tokenizer.convert_ids_to_tokens(token)


def test_inference_chat_rows_carry_logprobs(fixture_models: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    out = tmp_path / "out"
    run_turbo(
        "inference_chat", "--inference_settings_path", CHAT, "--set", f"save_path={out}",
        "--set", f"inference_settings.0.generation_settings={json.dumps([GREEDY, SAMPLED])}",
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(fixture_models / "llama_tiny")
    for generation, per_row in ((0, 1), (1, 2)):
        rows = read_jsonl(out / "model_0" / f"generation_{generation}" / "val_chat.jsonl")
        assert rows and all(len(row["answers"]) == per_row for row in rows)
        for row in rows:
            for answer in row["answers"]:
                check_answer(answer, tokenizer, greedy=generation == 0)


def test_inference_multimodal_rows_keep_logprobs_beside_their_metrics(
    multimodal_models: Path, pre_encoded_images: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    out = tmp_path / "out"
    run_turbo(
        "inference_multimodal", "--inference_settings_path", MULTIMODAL, "--set", f"save_path={out}",
        "--set", f"inference_settings.0.generation_settings={json.dumps([GREEDY])}",
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(
        multimodal_models / "llama_tiny_multimodal_clip_mlp" / "tokenizer"
    )
    rows = read_jsonl(out / "model_0" / "generation_0" / "chat_test.jsonl")
    assert rows and all("meteor" in row["metrics"] for row in rows)
    for row in rows:
        (answer,) = row["answers"]
        check_answer(answer, tokenizer, greedy=True)
