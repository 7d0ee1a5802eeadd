"""preprocess_multimodal_dataset, train_multimodal and inference_multimodal end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ..helpers import CONFIGS, DATASETS, REPO, losses, read_jsonl, run_turbo

LLAVA = CONFIGS / "train" / "multimodal" / "llava_lora.json"
MIXED = CONFIGS / "train" / "multimodal" / "mixed_c_abs.json"
PREPROCESS = CONFIGS / "preprocessing" / "clip.json"
INFERENCE = CONFIGS / "inference" / "multimodal" / "llava.json"
MEDIA = DATASETS / "multimodal" / "media"


def run_in_process(capsys, monkeypatch, *args: str | Path) -> str:
    """The CLI's main() in this process (no second interpreter start) for runs that must fail fast."""
    from turbo.cli import main

    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in args])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def changed(before: Path, after: Path) -> dict[str, bool]:
    old, new = load_file(before), load_file(after)
    assert old.keys() == new.keys() and new
    return {name: not torch.equal(old[name], new[name]) for name in new}


@pytest.fixture(scope="module")
def preprocessed(multimodal_models, tmp_path_factory) -> Path:
    """The media folder (plus one broken image) encoded by the tiny CLIP."""
    import shutil

    media = tmp_path_factory.mktemp("media")
    shutil.copytree(MEDIA / "images", media / "images")
    (media / "images" / "broken.png").write_bytes(b"not a png")
    out = tmp_path_factory.mktemp("preprocessed")
    run_turbo(
        "preprocess_multimodal_dataset", "--settings_path", PREPROCESS,
        "--set", f"dataset_path={media}", "--set", f"output_file_path={out}",
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def llava_run(multimodal_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mm") / "llava"
    run_turbo("train_multimodal", "--experiment_settings_path", LLAVA, "--set", f"log_path={folder}")
    return folder


def test_preprocess_writes_one_tensor_per_readable_file(preprocessed: Path) -> None:
    features = load_file(preprocessed / "image.clip.safetensors")
    assert sorted(features) == sorted(f"images/{p.name}" for p in (MEDIA / "images").glob("*.png"))
    assert all(tensor.shape == (16, 32) for tensor in features.values())
    config = json.loads((preprocessed / "image.clip.json").read_text())
    assert config["encoded"] == 6 and list(config["skipped"]) == ["images/broken.png"]
    assert config["tokens_per_item"] == 16 and config["width"] == 32


def test_llava_training_learns_and_writes_the_experiment_folder(llava_run: Path) -> None:
    values = losses(llava_run)
    assert len(values) == 24 and sum(values[-3:]) / 3 < 0.5 * sum(values[:3]) / 3, values
    final = llava_run / "final"
    for name in (
        "projectors.safetensors",
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
    ):
        assert (final / name).is_file(), name
    assert not (final / "encoders").exists() and not (final / "training_args.bin").exists()
    parameters = json.loads((llava_run / "parameters.json").read_text())
    assert parameters["encoders.image"]["trainable"] == 0 and parameters["encoders.image"]["frozen"] > 0
    assert parameters["projectors.image"]["frozen"] == 0
    projectors = changed(
        llava_run / "checkpoints/checkpoint-12/projectors.safetensors", final / "projectors.safetensors"
    )
    assert all(projectors.values()) and len(projectors) == 4
    adapter = changed(
        llava_run / "checkpoints/checkpoint-12/adapter_model.safetensors", final / "adapter_model.safetensors"
    )
    assert all(value for name, value in adapter.items() if "lora_" in name)
    assert len([name for name in adapter if "lora_B" in name]) == 8


def test_raw_media_and_pre_encoded_features_give_the_same_first_loss(
    llava_run: Path, preprocessed: Path, tmp_path: Path
) -> None:
    features = preprocessed / "image.clip.safetensors"
    reader = json.dumps({"reader_type": "pickle", "reader_path": str(features)})
    run_turbo(
        "train_multimodal", "--experiment_settings_path", LLAVA, "--set", f"log_path={tmp_path}",
        "--set", "trainer_settings.max_steps=1",
        "--set", f"train_dataset_settings.modality_reader_settings_mapping.image={reader}",
        "--set", "modality_encoder_settings_mapping.image.is_pickle=true",
    )  # fmt: skip
    assert losses(tmp_path)[0] == pytest.approx(losses(llava_run)[0], abs=1e-5)


def test_inference_answers_every_record(llava_run: Path, tmp_path: Path) -> None:
    final = llava_run / "final"
    run_turbo(
        "inference_multimodal", "--inference_settings_path", INFERENCE, "--set", f"save_path={tmp_path}",
        "--set", f"inference_settings.0.model_settings.adapter_path={final}",
        "--set", f"inference_settings.0.tokenizer_settings.tokenizer_path={final}",
        "--set", f"inference_settings.0.projections_path={final / 'projectors.safetensors'}",
    )  # fmt: skip
    rows = read_jsonl(tmp_path / "model_0" / "generation_0" / "images.jsonl")
    assert [row["id"] for row in rows] == [f"img-{i}" for i in range(6)]
    assert all(len(row["answers"]) == 1 and row["answers"][0]["content"] for row in rows)
    assert rows[1]["messages"][0] == {
        "role": "user",
        "type": "image",
        "content": "images/red_1.png",
        "disable_loss": False,
    }


def test_both_projectors_and_trained_encoders_train_on_images_and_audio(
    multimodal_models, tmp_path: Path
) -> None:
    run_turbo("train_multimodal", "--experiment_settings_path", MIXED, "--set", f"log_path={tmp_path}")
    final, middle = tmp_path / "final", tmp_path / "checkpoints" / "checkpoint-3"
    projectors = changed(middle / "projectors.safetensors", final / "projectors.safetensors")
    assert {name.split(".")[0] for name in projectors} == {"image", "audio"}
    assert all(projectors.values()), [name for name, value in projectors.items() if not value]
    lora = changed(
        middle / "encoders/image/adapter_model.safetensors",
        final / "encoders/image/adapter_model.safetensors",
    )
    assert lora and all(lora.values())
    whisper = changed(middle / "encoders/audio/model.safetensors", final / "encoders/audio/model.safetensors")
    assert any(whisper.values())
    assert losses(tmp_path)[-1] < losses(tmp_path)[0]


def test_a_wrong_n_modality_embeddings_fails_before_any_weights_load(
    multimodal_models, tmp_path: Path
) -> None:
    empty_model = tmp_path / "no_weights"
    empty_model.mkdir()  # loading weights from here would fail with another message
    result = run_turbo(
        "train_multimodal", "--experiment_settings_path", LLAVA, "--set", f"log_path={tmp_path / 'run'}",
        "--set", "train_dataset_settings.n_modality_embeddings=9",
        "--set", f"model_settings.model_path={empty_model}",
        expect=2,
    )  # fmt: skip
    assert "train_dataset_settings.n_modality_embeddings: 9, but" in result.stderr
    assert "set n_modality_embeddings: 16" in result.stderr
    assert f"model_settings.model_path: {empty_model} has no config.json" in result.stderr  # all at once
    assert not (tmp_path / "run").exists()


def test_a_missing_image_names_file_and_line(multimodal_models, tmp_path: Path, capsys, monkeypatch) -> None:
    records = DATASETS / "multimodal" / "missing_image.jsonl"
    stderr = run_in_process(
        capsys, monkeypatch,
        "train_multimodal", "--experiment_settings_path", LLAVA, "--set", f"log_path={tmp_path}",
        "--set", f"train_dataset_settings.sources.0.records_path={records}",
    )  # fmt: skip
    assert f"{records}:3: image 'images/purple_0.png': not found" in stderr


def test_cherry_picks_are_answered_with_their_images(multimodal_models, tmp_path: Path) -> None:
    dataset = json.loads(LLAVA.read_text())["train_dataset_settings"]
    cherry_dataset = {**dataset, "sources": [{**dataset["sources"][0], "name": "pictures", "num_samples": 2}]}
    cherry_dataset["sources"][0].pop("sample_rate", None)
    cherry = {
        "dataset_settings": cherry_dataset,
        "generator_transformers_settings": {"max_new_tokens": 4},
        "metric_settings": [
            {"type": "length"},
            {"type": "rouge", "parameters": {"need_average": [True, False]}},
        ],
    }
    run_turbo(
        "train_multimodal",
        *("--experiment_settings_path", LLAVA, "--set", f"log_path={tmp_path}"),
        *(
            "--set",
            f"val_dataset_settings={json.dumps(dataset)}",
            "--set",
            "trainer_settings.eval_strategy=steps",
        ),
        *("--set", "trainer_settings.max_steps=2", "--set", "trainer_settings.eval_steps=2"),
        *("--set", f"cherry_pick_settings={json.dumps(cherry)}"),
    )
    (row,) = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "cherry_pick/pictures/rouge1" in r]
    answers = read_jsonl(tmp_path / "cherry_picks" / "step_2.jsonl")
    assert row["step"] == 2 and len(answers) == 2
    assert all(a["messages"][0]["type"] == "image" and a["answers"][0]["content"] for a in answers)
    assert row["cherry_pick/pictures/rouge1"] == pytest.approx(
        sum(a["metrics"]["rouge1"] for a in answers) / 2
    )
