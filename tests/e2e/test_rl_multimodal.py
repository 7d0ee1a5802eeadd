"""train_grpo on multimodal prompts (image + text) with the model train_multimodal wrote (tiny llama, CLIP
tower, LLaVA projector): transformers rollouts, the images spliced in both when sampling and when the
training model scores the answers (their log-probs agree), the reference is the LM's adapter disabled,
the adapter trains, the projectors stay as trained; and vLLM rollouts are refused in the settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ..helpers import CONFIGS, read_jsonl, run_turbo

LLAVA = CONFIGS / "train" / "multimodal" / "llava_lora.json"
GRPO = CONFIGS / "train" / "grpo" / "lora.json"


@pytest.fixture(scope="module")
def multimodal_final(multimodal_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("llava") / "run"
    run_turbo(
        "train_multimodal", "--experiment_settings_path", LLAVA,
        "--set", f"log_path={folder}", "--set", "trainer_settings.max_steps=2",
    )  # fmt: skip
    return folder / "final"


def grpo_settings(final: Path, folder: Path, *more: str) -> list[str]:
    llava = json.loads(LLAVA.read_text())
    dataset = {**llava["train_dataset_settings"], "max_tokens_count": 160}
    parts = {
        "modality_encoder_settings_mapping": llava["modality_encoder_settings_mapping"],
        "modality_projector_mapping": llava["modality_projector_mapping"],
        "projections_path": str(final / "projectors.safetensors"),
    }
    model = {
        "model_path": "tests/fixtures/models/llama_tiny",
        "resize_token_embeddings": True,
        "adapter_path": str(final),
        "is_trainable": True,
    }
    return [
        "train_grpo", "--experiment_settings_path", str(GRPO),
        "--set", f"log_path={folder}",
        "--set", f"model_settings={json.dumps(model)}",
        "--set", f"tokenizer_settings={json.dumps({'tokenizer_path': str(final)})}",
        "--set", f"train_dataset_settings={json.dumps(dataset)}",
        "--set", f"val_dataset_settings={json.dumps(dataset)}",
        "--set", "trainer_settings.eval_strategy=steps",
        "--set", "trainer_settings.eval_steps=3",
        "--set", f"multimodal_settings={json.dumps(parts)}",
        "--set", "trainer_settings.rollout_batch_size=3",
        "--set", "trainer_settings.num_generations=2",
        "--set", "trainer_settings.max_steps=3",
        "--set", "trainer_settings.beta=0.04",
        *more,
    ]  # fmt: skip


def test_grpo_on_image_prompts(multimodal_final: Path, tmp_path: Path) -> None:
    folder = tmp_path / "grpo_mm"
    run_turbo(*grpo_settings(multimodal_final, folder))
    rows = [row for row in read_jsonl(folder / "metrics.jsonl") if "reward/mean" in row]
    assert [row["step"] for row in rows] == [1, 2, 3]
    # the training model scores what generate sampled with the same images spliced in
    assert all(row["rollout/logp_gap"] < 1e-4 for row in rows), [row["rollout/logp_gap"] for row in rows]
    assert rows[-1]["kl"] > 0  # the reference (the LM's adapter disabled) ran and the policy moved
    final = folder / "final"
    assert (
        load_file(final / "projectors.safetensors").keys()
        == load_file(multimodal_final / "projectors.safetensors").keys()
    )
    for key, tensor in load_file(multimodal_final / "projectors.safetensors").items():
        assert load_file(final / "projectors.safetensors")[key].equal(tensor), key  # frozen
    start = load_file(multimodal_final / "adapter_model.safetensors")
    trained = load_file(final / "adapter_model.safetensors")
    assert start.keys() == trained.keys()
    assert any(not trained[key].equal(start[key]) for key in start if "lora_B" in key)
    answers = read_jsonl(folder / "eval_answers" / "step_3.jsonl")  # greedy answers to the held-out images
    assert [row["id"] for row in answers] == [f"img-{i}" for i in range(6)]
    preview = (folder / "samples_preview.txt").read_text()
    assert "(record img-0)" in preview and "<img>" in preview


def test_vllm_rollouts_are_refused_for_image_prompts(multimodal_final: Path, tmp_path: Path) -> None:
    result = run_turbo(
        *grpo_settings(multimodal_final, tmp_path / "refused", "--set", "rollout_settings.use_vllm=true"),
        expect=2,
    )
    assert "torchvision" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_resumed_image_run_continues_as_the_uninterrupted_one(
    multimodal_final: Path, tmp_path: Path
) -> None:
    """The adapter and projectors (save_parts / load_parts), optimiser, RNG and data position come back."""
    import shutil

    short = ("--set", "trainer_settings.max_steps=4", "--set", "trainer_settings.save_steps=2")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_turbo(*grpo_settings(multimodal_final, straight, *short))
    run_turbo(*grpo_settings(multimodal_final, resumed, *short))
    shutil.rmtree(resumed / "checkpoints" / "checkpoint-4")
    shutil.rmtree(resumed / "final")
    assert (resumed / "checkpoints" / "checkpoint-2" / "projectors.safetensors").is_file()
    run_turbo(
        *grpo_settings(
            multimodal_final, resumed, *short, "--set", "trainer_settings.resume_from_checkpoint=true"
        )
    )
    rows = [row for row in read_jsonl(resumed / "metrics.jsonl") if "reward/mean" in row]
    expected = [row for row in read_jsonl(straight / "metrics.jsonl") if "reward/mean" in row]
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    for name in ("reward/mean", "loss", "kl"):
        assert [row[name] for row in rows] == pytest.approx(
            [row[name] for row in expected], rel=1e-4, abs=1e-5
        )
    final, reference = (
        load_file(folder / "final" / "adapter_model.safetensors") for folder in (resumed, straight)
    )
    for key, tensor in reference.items():
        assert final[key].allclose(tensor, atol=1e-4), key
