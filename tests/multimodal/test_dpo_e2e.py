"""train_multimodal_dpo end to end through the CLI on the tiny CLIP + llama fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ..helpers import CONFIGS, read_jsonl, run_turbo

CONFIG = CONFIGS / "train" / "multimodal_dpo" / "llava_lora.json"
VAL = {**json.loads(CONFIG.read_text())["train_dataset_settings"]}
VAL["sources"] = [{**VAL["sources"][0], "name": "held_out", "num_samples": 3, "sample_rate": None}]


def _steps(folder: Path) -> list[dict]:
    return [row for row in read_jsonl(folder / "metrics.jsonl") if "loss" in row]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_multimodal_dpo_learns_the_preferences_and_writes_the_experiment_folder(
    multimodal_models: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    run_turbo(
        "train_multimodal_dpo", "--experiment_settings_path", CONFIG,
        "--set", f"log_path={folder}", "--set", "trainer_settings.save_steps=4",
        "--set", "trainer_settings.save_total_limit=2",
        "--set", "val_dataset_settings=" + json.dumps(VAL),
        "--set", "trainer_settings.eval_strategy=steps", "--set", "trainer_settings.eval_steps=4",
    )  # fmt: skip
    evals = [row for row in read_jsonl(folder / "metrics.jsonl") if "eval_loss" in row]
    assert [row["step"] for row in evals] == [4, 8]
    # the reference keeps the starting projector while the policy's moves: same pairs, same reference
    for name in ("chosen", "rejected"):
        assert evals[0][f"eval_logps/ref_{name}"] == pytest.approx(
            evals[1][f"eval_logps/ref_{name}"], abs=1e-5
        )
    assert evals[1]["eval_logps/chosen"] != pytest.approx(evals[0]["eval_logps/chosen"], abs=1e-3)
    rows = _steps(folder)
    assert [row["step"] for row in rows] == list(range(1, 9))
    # at the start the reference (adapter disabled, the starting projector) is the policy
    assert rows[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert rows[0]["logps/ref_chosen"] == pytest.approx(rows[0]["logps/chosen"], abs=1e-4)
    losses = [row["loss"] for row in rows]
    assert _mean(losses[-3:]) < 0.85 * losses[0], losses
    accuracies = [row["rewards/accuracies"] for row in rows]
    assert _mean(accuracies[-3:]) > accuracies[0], accuracies
    margins = [row["logps/chosen"] - row["logps/rejected"] for row in rows]  # the policy's own margin
    assert _mean(margins[-3:]) > margins[0] + 0.3, margins

    final = folder / "final"
    for name in ("projectors.safetensors", "adapter_model.safetensors", "tokenizer.json"):
        assert (final / name).is_file(), sorted(final.iterdir())
    middle, last = folder / "checkpoints" / "checkpoint-4", folder / "checkpoints" / "checkpoint-8"
    for name in ("projectors.safetensors", "adapter_model.safetensors"):  # both parts train
        before, after = load_file(middle / name), load_file(last / name)
        assert any(not torch.equal(before[key], after[key]) for key in after), name
    assert (
        load_file(final / "projectors.safetensors").keys()
        == load_file(last / "projectors.safetensors").keys()
    )


def test_multimodal_dpo_precomputes_the_reference_with_the_images(
    multimodal_models: Path, tmp_path: Path
) -> None:
    """ipo (log-probs averaged) on reference log-probs computed once, before training, with the images."""
    folder = tmp_path / "ipo"
    run_turbo(
        "train_multimodal_dpo", "--experiment_settings_path", CONFIG,
        "--set", f"log_path={folder}", "--set", "trainer_settings.max_steps=2",
        "--set", 'trainer_settings.loss_settings={"loss_type": "ipo", "beta": 0.1}',
        "--set", "trainer_settings.precompute_ref_log_probs=true",
    )  # fmt: skip
    first, second = _steps(folder)
    assert "loss/ipo" in first and first["logps/ref_chosen"] == pytest.approx(first["logps/chosen"], abs=1e-4)
    assert second["logps/ref_chosen"] != pytest.approx(second["logps/chosen"], abs=1e-6)
    assert (folder / "final" / "projectors.safetensors").is_file()


def test_multimodal_dpo_resumed_from_a_checkpoint_ends_as_the_uninterrupted_run(
    multimodal_models: Path, tmp_path: Path
) -> None:
    """A run resumed from checkpoint-3 of a 6-step run (adapter, projectors, optimizer, RNG and data
    position come back) logs steps 4-6 as that run did and ends with its weights."""
    import shutil

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    steps = ("--set", "trainer_settings.max_steps=6", "--set", "trainer_settings.save_steps=3")
    steps += ("--set", "trainer_settings.save_total_limit=2")
    command = ("train_multimodal_dpo", "--experiment_settings_path", CONFIG, *steps)
    run_turbo(*command, "--set", f"log_path={straight}")
    shutil.copytree(straight / "checkpoints" / "checkpoint-3", resumed / "checkpoints" / "checkpoint-3")
    shutil.copy(straight / "experiment_settings.json", resumed)  # an experiment folder, as the run left it
    resume = ("--set", "trainer_settings.resume_from_checkpoint=true")
    run_turbo(*command, "--set", f"log_path={resumed}", *resume)
    rows, expected = _steps(resumed), _steps(straight)[3:]
    assert [row["step"] for row in rows] == [4, 5, 6]
    for name in ("loss", "logps/chosen", "logps/ref_chosen"):
        assert [row[name] for row in rows] == pytest.approx([row[name] for row in expected], abs=1e-5)
    for name in ("projectors.safetensors", "adapter_model.safetensors"):
        final, reference = load_file(resumed / "final" / name), load_file(straight / "final" / name)
        assert final.keys() == reference.keys()
        for key, tensor in reference.items():
            torch.testing.assert_close(final[key], tensor, atol=1e-6, rtol=0, msg=f"{name}: {key}")


def test_use_sft_model_is_refused_where_it_would_be_ignored(tmp_path: Path) -> None:
    data = json.loads(CONFIG.read_text())
    data["trainer_settings"]["use_sft_model"] = True
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    result = run_turbo("validate", path, "--command", "train_multimodal_dpo", expect=2)
    assert "trainer_settings.use_sft_model: is not available in train_multimodal_dpo" in result.stderr
