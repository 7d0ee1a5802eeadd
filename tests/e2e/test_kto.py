"""train_kto end to end through the CLI: full fine-tuning with a reference model, LoRA with the
adapter disabled as the reference, precomputed reference log-probs, and prompt tuning."""

import copy
import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from turbo.data.kto import build_kto_samples
from turbo.settings.loading import load_settings
from turbo.settings.pipelines.train.kto import KtoExperimentSettings

from ..helpers import CONFIGS, read_jsonl, run_turbo

STEP_METRICS = ("loss", "kl", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected")


def train(config: str, log_path, *overrides: str) -> list[dict]:
    sets = [arg for value in (f"log_path={log_path}", *overrides) for arg in ("--set", value)]
    run_turbo("train_kto", "--experiment_settings_path", CONFIGS / "train" / "kto" / config, *sets)
    return [row for row in read_jsonl(log_path / "metrics.jsonl") if "loss" in row]


def assert_reference_fixed(steps: list[dict]) -> None:
    """Every step sees the whole set, so a frozen reference gives the same log-probs each step."""
    for name in ("logps/ref_chosen", "logps/ref_rejected"):
        assert max(row[name] for row in steps) - min(row[name] for row in steps) < 1e-4


def test_full_fine_tuning_with_a_reference_model(fixture_models, tmp_path) -> None:
    log_path = tmp_path / "full"
    steps = train("base.json", log_path)
    assert len(steps) == 12 and all(name in row for row in steps for name in STEP_METRICS)
    assert steps[-1]["loss"] < 0.75 * steps[0]["loss"]
    assert steps[-1]["rewards/chosen"] > 0 > steps[-1]["rewards/rejected"]
    assert_reference_fixed(steps)
    evals = [row for row in read_jsonl(log_path / "metrics.jsonl") if "eval_loss" in row]
    assert len(evals) == 2 and "eval_rewards/chosen" in evals[-1] and "eval_kl" in evals[-1]

    before = load_file(fixture_models / "llama_tiny" / "model.safetensors")
    after = load_file(log_path / "final" / "model.safetensors")
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"parameters that did not train: {unchanged}"

    # precomputed reference log-probs (no reference model kept) equal the reference model's
    precomputed = train(
        "base.json",
        tmp_path / "precomputed",
        "trainer_settings.use_ref_model=false",
        "trainer_settings.precompute_ref_log_probs=true",
        "trainer_settings.max_steps=2",
        "trainer_settings.eval_strategy=no",
    )
    for name in ("logps/ref_chosen", "logps/ref_rejected"):
        assert precomputed[-1][name] == pytest.approx(steps[0][name], abs=1e-3)
    assert precomputed[-1]["loss"] == pytest.approx(steps[1]["loss"], abs=1e-4)


def test_lora_with_the_adapter_disabled_as_reference(fixture_models, tmp_path) -> None:
    log_path = tmp_path / "lora"
    steps = train("lora.json", log_path)
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.01
    assert_reference_fixed(steps)
    assert steps[0]["logps/ref_chosen"] == pytest.approx(steps[0]["logps/chosen"], abs=1e-4)  # B = 0 at start
    adapter = load_file(log_path / "final" / "adapter_model.safetensors")
    lora = [name for name in adapter if "lora_" in name]
    assert lora and all(adapter[name].abs().sum() > 0 for name in lora if "lora_B" in name)


PROMPT_TUNING = {
    "name": "PROMPT_TUNING",
    "num_virtual_tokens": 8,
    "prompt_tuning_init_text": "What is the capital",
}


def test_prompt_tuning_scores_the_answers_without_the_virtual_tokens(fixture_models, tmp_path) -> None:
    """The logged policy log-probs of a step are those of the previous step's checkpoint computed by
    hand: the logits of the 8 virtual tokens dropped, so position t predicts token t + 1."""
    log_path = tmp_path / "prompt_tuning"
    steps = train(
        "lora.json",
        log_path,
        f"model_settings.peft_settings={json.dumps(PROMPT_TUNING)}",
        "trainer_settings.learning_rate=0.1",
        "trainer_settings.beta=1.0",
        "trainer_settings.max_steps=6",
        "trainer_settings.save_strategy=steps",
        "trainer_settings.save_steps=3",
    )
    assert len(steps) == 6 and steps[-1]["loss"] < steps[0]["loss"] - 0.03
    assert steps[-1]["rewards/chosen"] > 0 > steps[-1]["rewards/rejected"]
    assert_reference_fixed(steps)
    checkpoint = log_path / "checkpoints" / "checkpoint-3"
    before = load_file(checkpoint / "adapter_model.safetensors")
    after = load_file(log_path / "final" / "adapter_model.safetensors")
    assert before.keys() == after.keys() and all(not torch.equal(before[k], after[k]) for k in before)

    # every step sees the whole set (8 samples, batch 8): step 4 scores it with checkpoint-3's prompt
    settings = load_settings(log_path / "experiment_settings.json", KtoExperimentSettings)
    tokenizer = AutoTokenizer.from_pretrained(log_path / "final")
    samples, _ = build_kto_samples(settings.train_dataset_settings, tokenizer, seed=settings.seed)
    assert len(samples) == 8
    base = AutoModelForCausalLM.from_pretrained(fixture_models / "llama_tiny").eval()
    policy = PeftModel.from_pretrained(copy.deepcopy(base), checkpoint).eval()
    expected: dict[str, list[float]] = {}
    with torch.no_grad():
        for sample in samples:
            ids = torch.tensor([sample.prompt_ids + sample.answer_ids])
            for name, model, virtual in (("", policy, 8), ("ref_", base, 0)):
                log_probs = model(input_ids=ids).logits[0, virtual:].float().log_softmax(-1)
                start = len(sample.prompt_ids) - 1
                total = sum(log_probs[start + i, token].item() for i, token in enumerate(sample.answer_ids))
                kind = "chosen" if sample.is_desirable else "rejected"
                expected.setdefault(f"logps/{name}{kind}", []).append(total)
    for name, values in expected.items():
        row = steps[3] if "ref_" not in name else steps[0]
        assert row[name] == pytest.approx(sum(values) / len(values), abs=1e-3), name
