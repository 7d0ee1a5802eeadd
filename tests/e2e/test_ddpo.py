"""train_ddpo end to end through the CLI: a LoRA policy learns the pair preferences of a frozen reward
model (the tiny one with its head scaled up, so that it prefers decisively); evaluation runs on the
training pairs, which the policy can fit."""

import math
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from ..helpers import CONFIGS, read_jsonl, run_turbo

LORA = CONFIGS / "train" / "ddpo" / "lora.json"
PAIR_KEYS = ("chosen", "rejected", "margins", "accuracies")


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture(scope="module")
def decisive_rm(fixture_models: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rm") / "llama_rm_x30"
    shutil.copytree(fixture_models / "llama_rm", folder)
    weights = load_file(folder / "model.safetensors")
    weights["score.weight"] = weights["score.weight"] * 30
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module")
def ddpo_run(decisive_rm: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ddpo") / "lora"
    run_turbo(
        "train_ddpo",
        *("--experiment_settings_path", LORA),
        *("--set", f"log_path={folder}"),
        *("--set", f"rm_settings.model_path={decisive_rm}"),
    )
    return folder


def test_ddpo_policy_learns_the_reward_models_preferences(ddpo_run: Path) -> None:
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json"):
        assert (ddpo_run / "final" / name).is_file(), name
    rows = read_jsonl(ddpo_run / "metrics.jsonl")
    train = [row for row in rows if "loss" in row]
    evals = [row for row in rows if "eval_loss" in row]
    assert [row["step"] for row in train] == list(range(1, 25))
    for row in train:
        for prefix in ("rewards", "rm_rewards"):
            assert all(f"{prefix}/{key}" in row for key in PAIR_KEYS), row
    # step 1: the fresh LoRA is its reference, so p_policy = 1/2 and the loss is KL(1/2 || p_rm)
    first = train[0]
    p_rm = _sigmoid(first["rm_rewards/margins"])
    expected = 0.5 * math.log(0.5 / p_rm) + 0.5 * math.log(0.5 / (1 - p_rm))
    assert first["loss"] == pytest.approx(expected, rel=1e-4)
    assert first["rewards/margins"] == 0.0
    # the reward model is frozen: the same validation pairs get the same rewards at every evaluation
    assert [row["step"] for row in evals] == [0, 12, 24]
    for key in PAIR_KEYS:
        assert evals[0][f"eval_rm_rewards/{key}"] == pytest.approx(evals[-1][f"eval_rm_rewards/{key}"])
    assert abs(evals[0]["eval_rm_rewards/margins"]) > 0.1  # the scaled head prefers decisively
    # the policy moved towards the reward model's preferences on the pairs it trains on (evaluated on
    # the same pairs; the third epoch sees the first one's pairs again)
    assert evals[-1]["eval_loss"] < 0.5 * evals[0]["eval_loss"], evals
    losses = [row["loss"] for row in train]
    assert sum(losses[16:]) < 0.5 * sum(losses[:8]), losses


def test_ddpo_validate_names_a_reward_model_with_two_outputs(fixture_models: Path) -> None:
    result = run_turbo(
        "validate",
        LORA,
        *("--command", "train_ddpo"),
        *("--set", "rm_settings.model_path=tests/fixtures/models/llama_seq_cls"),
        expect=2,
    )
    assert "rm_settings.model_path" in result.stderr and "2 outputs" in result.stderr, result.stderr
