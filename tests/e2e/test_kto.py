"""train_kto end to end through the CLI: full fine-tuning with a reference model, LoRA with the
adapter disabled as the reference, and precomputed reference log-probs."""

import pytest
import torch
from safetensors.torch import load_file

from ..conftest import CONFIGS, read_jsonl, run_turbo

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
